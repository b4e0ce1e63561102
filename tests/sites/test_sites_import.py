"""Import and export of a whole organisation: YAML and CSV, idempotent, all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete, func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.people.models import Person
from watchfloor.sites.importer import (
    ImportFailed,
    dump_yaml,
    export_document,
    import_paths,
    read_csv,
    read_yaml,
    write_csv,
)
from watchfloor.sites.models import Device, Facility, Organisation, Region, ResponseUnit, Zone

TABLES = (Organisation, Region, Facility, Zone, Device, ResponseUnit, Person)


async def _counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {m.__tablename__: await db.scalar(select(func.count()).select_from(m)) for m in TABLES}


async def _import(sessionmaker, clock, *paths: Path):  # type: ignore[no-untyped-def]
    async with sessionmaker() as db:
        result = await import_paths(db, clock, "system:test", list(paths))
        await db.commit()
    return result


async def _export(sessionmaker):  # type: ignore[no-untyped-def]
    async with sessionmaker() as db:
        return await export_document(db)


def _write(tmp_path: Path, data: object, name: str = "org.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_yaml_import_is_idempotent_and_updates(org_data, sessionmaker, clock, tmp_path, db):
    path = _write(tmp_path, org_data())
    first = await _import(sessionmaker, clock, path)
    assert first.created["facilities"] == 3 and first.created["devices"] == 4
    assert first.created["people"] == 1 and first.created["zones"] == 3
    counts = await _counts(db)
    assert counts["facilities"] == 3 and counts["people"] == 1

    again = await _import(sessionmaker, clock, path)
    assert sum(again.created.values()) == 0 and sum(again.updated.values()) == 0
    assert await _counts(db) == counts

    data = org_data()
    data["facilities"][0]["name"] = "Alpha Field Office (renamed)"
    data["facilities"][0]["devices"][0]["zone"] = "SECURE"
    data["facilities"][0]["staff"][0]["vetting_status"] = "expired"
    data["facilities"][1]["zones"].append({"code": "PERIM", "name": "Perimeter"})
    third = await _import(sessionmaker, clock, _write(tmp_path, data))
    assert third.updated["facilities"] == 1 and third.updated["devices"] == 1
    assert third.updated["people"] == 1 and third.created["zones"] == 1
    assert (await _counts(db))["zones"] == counts["zones"] + 1
    exported = await _export(sessionmaker)
    alpha = exported["facilities"][0]
    assert alpha["name"] == "Alpha Field Office (renamed)"
    assert alpha["devices"][1]["code"] == "DOOR-1" and alpha["devices"][1]["zone"] == "SECURE"
    assert alpha["staff"][0]["vetting_status"] == "expired"

    # one audit record per import, with the counts
    audits = (
        await db.execute(select(AuditRecord).where(AuditRecord.action == "organisation.import"))
    ).scalars().all()  # fmt: skip
    assert len(audits) == 3
    assert audits[0].details["created"]["facilities"] == 3


async def test_unquoted_yaml_times_and_postal_codes(sessionmaker, clock, tmp_path):
    text = """
organisation: {code: TEST, name: Test}
regions: [{code: R1, name: One}]
facilities:
  - code: F1
    name: One
    region: R1
    postal_code: 02134
    operating_hours: {mon: [08:00, 18:00]}
"""
    path = tmp_path / "org.yaml"
    path.write_text(text)
    await _import(sessionmaker, clock, path)
    [f] = (await _export(sessionmaker))["facilities"]
    assert f["postal_code"] == "02134"
    assert f["operating_hours"]["mon"] == ["08:00", "18:00"]


async def test_bad_rows_import_nothing_and_are_all_named(
    org_data, sessionmaker, clock, tmp_path, db
):
    data = org_data()
    data["facilities"][0]["latitude"] = 123  # facilities[0].latitude
    data["facilities"][1]["devices"][0]["kind"] = "toaster"  # facilities[1].devices[0].kind
    data["facilities"][2]["timezone"] = "Nowhere/Land"  # facilities[2].timezone
    path = _write(tmp_path, data)
    with pytest.raises(ImportFailed) as info:
        await _import(sessionmaker, clock, path)
    issues = info.value.issues
    assert [(i.file, i.field) for i in issues] == [
        ("org.yaml", "facilities[0].latitude"),
        ("org.yaml", "facilities[1].devices[0].kind"),
        ("org.yaml", "facilities[2].timezone"),
    ]
    lines = path.read_text().splitlines()
    for issue in issues:  # each names the line the bad value is on
        n = int(issue.where.removeprefix("line "))
        assert issue.field.rsplit(".", 1)[-1] in lines[n - 1], issue
    assert "Nowhere/Land" in issues[2].message
    assert all(v == 0 for v in (await _counts(db)).values())


async def test_reference_errors_import_nothing(org_data, sessionmaker, clock, tmp_path, db):
    data = org_data()
    data["facilities"][0]["region"] = "R404"
    data["facilities"][0]["devices"][0]["zone"] = "NOWHERE"
    data["facilities"][1]["code"] = "ALPHA"  # duplicate
    with pytest.raises(ImportFailed) as info:
        await _import(sessionmaker, clock, _write(tmp_path, data))
    text = "\n".join(str(i) for i in info.value.issues)
    assert "facilities[0].region: unknown region 'R404'" in text
    assert "facilities[0].devices[0].zone: facility 'ALPHA' has no zone 'NOWHERE'" in text
    assert "facilities[1].code: duplicate" in text
    assert all(v == 0 for v in (await _counts(db)).values())


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("organisation: {code: X, name: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("regions: {code: R1}\n", "'regions' must be a list"),
        ("facilities:\n  - 42\n", "expected a mapping of fields"),
        ("facilities:\n  - {code: F, name: F, region: R, population: lots}\n", "population"),
        ("fac1lities: []\n", "unknown section"),
    ],
)
def test_malformed_yaml(tmp_path, text, expect):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ImportFailed) as info:
        read_yaml(path)
    assert expect in "\n".join(str(i) for i in info.value.issues)
    assert all(i.file == "bad.yaml" for i in info.value.issues)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("regions:\n  - code: R1\n    name: 'unterminated\n")
    with pytest.raises(ImportFailed) as info:
        read_yaml(path)
    [issue] = info.value.issues
    assert issue.where.startswith("line ")


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def test_csv_import_and_reimport(sessionmaker, clock, tmp_path, db):
    d = tmp_path / "csv"
    d.mkdir()
    _csv(d, "organisation.csv", "code,name\nTEST,Test Agency\n")
    _csv(d, "regions.csv", "code,name\nR1,Region One\n")
    _csv(
        d, "facilities.csv",
        "code,name,region,kind,timezone,population,hours_mon,hours_sat\n"
        "F1,First,R1,courthouse,America/New_York,10,08:00-17:00,closed\n"
        "F2,Second,R1,,UTC,,,\n",
    )  # fmt: skip
    _csv(d, "zones.csv", "facility,code,name,kind\nF1,LOBBY,Lobby,lobby\n")
    _csv(
        d, "devices.csv",
        "facility,code,name,kind,zone,protocol,address\n"
        "F1,D1,Door,door,LOBBY,osdp,osdp://controller-1/1\nF2,D1,Door,door,,,\n",
    )  # fmt: skip
    _csv(
        d, "response_units.csv",
        "facility,code,name,kind,contacts\n"
        'F1,PD,Police,police,"phone:+1 555 0100; email:pd@city.example"\n',
    )  # fmt: skip
    _csv(
        d, "people.csv",
        "facility,employee_id,given_name,family_name,role,vetting_status,vetting_expires_on,active\n"
        "F1,E1,Ada,Byron,guard,cleared,2027-05-01,true\n",
    )  # fmt: skip
    result = await _import(sessionmaker, clock, d)
    assert result.created["facilities"] == 2 and result.created["devices"] == 2
    out = await _export(sessionmaker)
    f1 = out["facilities"][0]
    assert (
        f1["operating_hours"]["mon"] == ["08:00", "17:00"] and f1["operating_hours"]["sat"] is None
    )
    assert f1["response_units"][0]["contacts"] == [
        {"channel": "phone", "value": "+1 555 0100"},
        {"channel": "email", "value": "pd@city.example"},
    ]
    assert f1["staff"][0]["role"] == "guard"
    assert out["facilities"][1]["kind"] == "field_office"  # the default

    # a partial re-import (one file) updates just what it names
    _csv(d, "devices.csv", "facility,code,name,kind\nF1,D1,Front door,door\n")
    again = await _import(sessionmaker, clock, d / "devices.csv")
    assert again.updated["devices"] == 1 and sum(again.created.values()) == 0
    out = await _export(sessionmaker)
    assert out["facilities"][0]["devices"][0]["name"] == "Front door"
    assert out["facilities"][0]["devices"][0]["zone"] == "LOBBY"  # left out: kept


def test_csv_bad_rows_all_named(tmp_path):
    d = tmp_path / "csv"
    d.mkdir()
    _csv(d, "regions.csv", "code,name\nR1,One\n")
    _csv(
        d, "facilities.csv",
        "code,name,region,latitude,timezone,hours_mon\n"
        "F1,Good,R1,10,UTC,08:00-17:00\n"
        "F2,Bad lat,R1,95,UTC,\n"
        "F3,Bad tz,R1,10,Atlantis/City,\n"
        "F4,Bad hours,R1,10,UTC,8am-5pm\n",
    )  # fmt: skip
    with pytest.raises(ImportFailed) as info:
        read_csv([d])
    assert [(i.file, i.where, i.field) for i in info.value.issues] == [
        ("facilities.csv", "row 3", "latitude"),
        ("facilities.csv", "row 4", "timezone"),
        ("facilities.csv", "row 5", "hours_mon"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("facilities.csv", "code,name\nF1,One\n", "region: required column is missing"),
        ("zones.csv", "facility,code,name,colour\nF,Z,Z,red\n", "colour: unknown column"),
        ("zones.csv", "facility,code,name\nF,Z\n", "has 2 cells but the header has 3"),
        ("zones.csv", 'facility,code,name\nF,"Z,Zone\n', "not valid CSV"),
        ("zones.csv", "", "is empty"),
        ("zones.csv", "facility,code,name\n,Z,Zone\n", "facility: required field is missing"),
        ("devices.csv", "facility,code,name,kind,supervision_seconds\nF,D,D,door,often\n",
         "supervision_seconds"),
        ("things.csv", "a,b\n1,2\n", "unknown file name"),
    ],
)  # fmt: skip
def test_malformed_csv(tmp_path, name, text, expect):
    path = _csv(tmp_path, name, text)
    with pytest.raises(ImportFailed) as info:
        read_csv([path])
    assert expect in "\n".join(str(i) for i in info.value.issues)


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "zones.csv"
    path.write_bytes(b"facility,code,name\nF,Z,\xff\xfe\n")
    with pytest.raises(ImportFailed) as info:
        read_csv([path])
    assert "not UTF-8" in str(info.value.issues[0])


async def _wipe(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    async with sessionmaker() as db:
        for model in reversed(TABLES):
            await db.execute(delete(model))
        await db.commit()


async def test_export_import_round_trip(sessionmaker, clock, tmp_path, org):
    original = await _export(sessionmaker)
    assert original["organisation"] == {"code": "TEST", "name": "Test Agency"}

    # YAML: export, wipe, import, export again
    path = tmp_path / "export.yaml"
    path.write_text(dump_yaml(original))
    await _wipe(sessionmaker)
    await _import(sessionmaker, clock, path)
    assert await _export(sessionmaker) == original

    # CSV: the same
    files = write_csv(original, tmp_path / "csv")
    assert {f.name for f in files} >= {"facilities.csv", "devices.csv", "people.csv"}
    await _wipe(sessionmaker)
    await _import(sessionmaker, clock, tmp_path / "csv")
    assert await _export(sessionmaker) == original
