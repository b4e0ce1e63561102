"""LMS imports: a good file adds its records (and one import record and one audit record with
the counts); the same file again adds nothing; a file with bad rows writes nothing and names each
row, column, value and why; an oversize file, a binary file and a file without the columns are
refused; common header spellings are accepted; the CLI imports with the same rules."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.training.models import TrainingCompletion, TrainingImport

GOOD = (
    "employee_id,course_code,completed_on\n"
    "N-GUARD,ASR,2025-06-01\n"
    "N-GUARD,deesc,2025-07-01\n"
    "N-STAFF,ASR,2025-02-03\n"
    "B-STAFF,Active-shooter response,2025-09-09T10:00:00Z\n"
)


async def _count(db: Any, model: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


def _file(text: str | bytes, name: str = "lms.csv") -> dict[str, Any]:
    data = text.encode() if isinstance(text, str) else text
    return {"file": (name, data, "text/csv")}


async def test_good_file_then_the_same_file_again_adds_nothing(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    pm = await make_token("programme_manager", org=True)
    r = await client.post("/api/v1/training/imports", files=_file(GOOD), headers=pm)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["rows"], body["added"], body["skipped"], body["facility_count"]) == (4, 4, 0, 2)
    assert await _count(db, TrainingCompletion) == 4
    again = await client.post("/api/v1/training/imports", files=_file(GOOD), headers=pm)
    assert again.status_code == 201
    assert (again.json()["added"], again.json()["skipped"]) == (0, 4)
    assert await _count(db, TrainingCompletion) == 4
    history = (await client.get("/api/v1/training/imports", headers=pm)).json()
    assert [h["added"] for h in history] == [0, 4]
    audits = (
        (await db.execute(select(AuditRecord).where(AuditRecord.action == "training.import")))
        .scalars()
        .all()
    )
    assert len(audits) == 2 and audits[0].details["added"] == 4
    rec = (await client.get("/api/v1/training/completions?employee_id=B-STAFF", headers=pm)).json()
    assert rec["items"][0]["source"] == "lms_import"
    assert rec["items"][0]["completed_on"] == "2025-09-09"
    assert rec["items"][0]["expires_on"] == "2026-09-09"


async def test_a_file_with_bad_rows_writes_nothing_and_names_every_bad_row(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    pm = await make_token("programme_manager", org=True)
    text = (
        "Employee ID;Course;Completion Date\n"  # other spellings, semicolons
        "N-GUARD;ASR;2025-06-01\n"
        "NOBODY;ASR;2025-06-01\n"
        "N-STAFF;JUGGLING;2025-06-01\n"
        "N-STAFF;ASR;2027-01-01\n"
        "N-STAFF;ASR;01/02/2025\n"
        ";ASR;2025-13-40\n"
    )
    r = await client.post("/api/v1/training/imports", files=_file(text), headers=pm)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert "Nothing was imported" in problem["detail"]
    got = {(e["row"], e["column"]): (e["value"], e["msg"]) for e in problem["errors"]}
    assert got[(3, "employee_id")][0] == "NOBODY"
    assert "no person" in got[(3, "employee_id")][1]
    assert (
        got[(4, "course_code")][0] == "JUGGLING" and "unknown course" in got[(4, "course_code")][1]
    )
    assert "in the future" in got[(5, "completed_on")][1]
    assert "not a date" in got[(6, "completed_on")][1]
    assert got[(7, "employee_id")] == ("", "empty")
    assert "not a date" in got[(7, "completed_on")][1]
    assert (2, "employee_id") not in got  # the good row is not blamed
    assert await _count(db, TrainingCompletion) == 0
    assert await _count(db, TrainingImport) == 0


async def test_an_export_larger_than_the_general_body_limit_is_taken(
    client: httpx.AsyncClient, make_token, estate, db, settings
) -> None:
    pm = await make_token("programme_manager", org=True)
    text = "employee_id,course_code,completed_on\n" + "N-GUARD,ASR,2025-06-01\n" * 46_000
    assert len(text) > settings.max_body_bytes  # the import route has a limit of its own
    r = await client.post("/api/v1/training/imports", files=_file(text), headers=pm)
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 1 and r.json()["skipped"] == 45_999
    assert await _count(db, TrainingCompletion) == 1


async def test_oversize_binary_and_columnless_files_are_refused(
    client: httpx.AsyncClient, make_token, estate, db, settings
) -> None:
    pm = await make_token("programme_manager", org=True)
    settings.training_import_max_bytes = 2048
    big = "employee_id,course_code,completed_on\n" + "N-GUARD,ASR,2025-06-01\n" * 200
    r = await client.post("/api/v1/training/imports", files=_file(big), headers=pm)
    assert r.status_code == 413, r.text
    assert r.json()["errors"][0]["loc"] == ["file"]
    xlsx = await client.post(
        "/api/v1/training/imports", files=_file(b"PK\x03\x04\x00\x00binary", "lms.xlsx"), headers=pm
    )
    assert xlsx.status_code == 422 and "binary" in xlsx.json()["detail"]
    cols = await client.post(
        "/api/v1/training/imports", files=_file("name,score\nGina,10\n"), headers=pm
    )
    assert cols.status_code == 422
    assert "no column employee_id, course_code, completed_on" in cols.json()["detail"]
    empty = await client.post("/api/v1/training/imports", files=_file(""), headers=pm)
    assert empty.status_code == 422
    assert await _count(db, TrainingCompletion) == 0


async def test_a_facility_manager_imports_only_their_own_people(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    mgr = await make_token("facility_manager", facility="NYC-FO")
    r = await client.post("/api/v1/training/imports", files=_file(GOOD), headers=mgr)
    assert r.status_code == 422
    bad = [(e["row"], e["column"]) for e in r.json()["errors"]]
    assert bad == [(5, "employee_id")]  # Boston's Bea is not theirs: "no person"
    assert await _count(db, TrainingCompletion) == 0
    guard = await make_token("guard", facility="NYC-FO")
    denied = await client.post("/api/v1/training/imports", files=_file(GOOD), headers=guard)
    assert denied.status_code == 403


def test_cli_import_with_progress(tmp_path, settings, estate, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from watchfloor.cli import app
    from watchfloor.training import cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    good = tmp_path / "lms.csv"
    good.write_text(GOOD)
    runner = CliRunner()
    first = runner.invoke(app, ["training", "import", str(good)])
    assert first.exit_code == 0, first.output
    assert "4 new records" in first.output
    second = runner.invoke(app, ["training", "import", str(good)])
    assert "0 new records, 4 already on record" in second.output
    bad = tmp_path / "bad.csv"
    bad.write_text("employee_id,course_code,completed_on\nNOBODY,ASR,2025-01-01\n")
    refused = runner.invoke(app, ["training", "import", str(bad)])
    assert refused.exit_code == 1
    assert "row 2, employee_id = 'NOBODY'" in refused.output
