"""Import and export a whole organisation as YAML (one file) or CSV (one file per table).

The formats are described in docs/import-format.md. In short:

YAML::

    organisation: {code: FPA, name: Federal Protective Agency}
    regions:
      - {code: R06, name: Region 6}
    facilities:
      - code: DAL-FO
        name: Dallas Field Office
        region: R06
        kind: field_office          # field_office | detention | holding | courthouse | ...
        timezone: America/Chicago
        operating_hours: {mon: ["08:00", "18:00"], sat: null}
        zones:          [{code: LOBBY, name: Lobby, kind: lobby}]
        devices:        [{code: D-1, name: Front door, kind: door, zone: LOBBY,
                          protocol: osdp, address: "osdp://controller-1/3"}]
        response_units: [{code: POLICE, name: Dallas PD, kind: police,
                          contacts: [{channel: phone, value: "+1 214 555 0100"}]}]
        staff:          [{employee_id: E-1, given_name: Ada, family_name: Byron}]

CSV: organisation.csv, regions.csv, facilities.csv, zones.csv, devices.csv, response_units.csv
and people.csv (any subset), each with a header row; see COLUMNS below.

Every record is validated with the same pydantic models the REST API uses. Nothing is written
unless every record is valid and every reference (region, facility, zone) resolves: the importer
collects *every* problem, with file, line/row and field, and raises ImportFailed. Records are
matched by code (facility code; zone, device and response-unit code within their facility;
employee_id for people): a re-import updates what changed and never duplicates. Records missing
from the file are left alone. On an update, fields a record leaves out keep their current value.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.clock import Clock
from watchfloor.people.models import Person
from watchfloor.people.schemas import PersonCreate
from watchfloor.people.service import bulk_upsert_people
from watchfloor.sites.models import Device, Facility, Organisation, Region, ResponseUnit, Zone
from watchfloor.sites.schemas import (
    WEEKDAYS,
    Code,
    DeviceCreate,
    FacilityCreate,
    Name,
    RegionCreate,
    ResponseUnitCreate,
    SitesModel,
    ZoneCreate,
    hours_to_db,
)
from watchfloor.sites.service import Actor, apply_changes

M = TypeVar("M", bound=BaseModel)
ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called as records are checked and written."""

_LENIENT = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


class OrganisationRecord(SitesModel):
    model_config = _LENIENT
    code: Code
    name: Name


class RegionRecord(RegionCreate):
    model_config = _LENIENT


class FacilityRecord(FacilityCreate):
    model_config = _LENIENT


class ZoneRecord(ZoneCreate):
    model_config = _LENIENT


class DeviceRecord(DeviceCreate):
    model_config = _LENIENT


class UnitRecord(ResponseUnitCreate):
    model_config = _LENIENT


class StaffRecord(PersonCreate):
    model_config = _LENIENT


# -- problems -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """One thing wrong with the input: where it is and what to fix."""

    file: str
    where: str  # "line 12" (YAML), "row 4" (CSV) or "" for the whole file
    field: str
    message: str

    def __str__(self) -> str:
        parts = [self.file]
        if self.where:
            parts.append(self.where)
        if self.field:
            parts.append(self.field)
        return ": ".join(parts) + f": {self.message}"


class ImportFailed(Exception):
    """The input has problems; nothing was imported."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__(f"{len(issues)} problem(s); nothing was imported")


@dataclass
class Item(Generic[M]):
    """A validated record and where it came from."""

    rec: M
    file: str
    where: str
    path: str  # how to name a field of this record: "facilities[3]" or "" (CSV: the column)
    facility: str = ""  # the facility code a zone, device, unit or person belongs to

    def field_name(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name


@dataclass
class OrgDocument:
    """An organisation (or part of one) read from a file, flattened and validated."""

    organisation: Item[OrganisationRecord] | None = None
    regions: list[Item[RegionRecord]] = field(default_factory=list)
    facilities: list[Item[FacilityRecord]] = field(default_factory=list)
    zones: list[Item[ZoneRecord]] = field(default_factory=list)
    devices: list[Item[DeviceRecord]] = field(default_factory=list)
    units: list[Item[UnitRecord]] = field(default_factory=list)
    people: list[Item[StaffRecord]] = field(default_factory=list)
    # problems found while reading; apply_document adds reference problems and refuses
    issues: list[Issue] = field(default_factory=list)
    # ("region", code), ("facility", code), ("zone", facility, code) of records that were
    # invalid: references to them are not reported again
    invalid: set[tuple[str, ...]] = field(default_factory=set)

    def size(self) -> int:
        return sum(
            len(x)
            for x in (
                self.regions,
                self.facilities,
                self.zones,
                self.devices,
                self.units,
                self.people,
            )
        ) + (1 if self.organisation else 0)


@dataclass
class ImportResult:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        kinds = ["organisation", "regions", "facilities", "zones", "devices", "units", "people"]
        parts = []
        for k in kinds:
            c, u, n = self.created[k], self.updated[k], self.unchanged[k]
            if c or u or n:
                parts.append(f"{k}: {c} created, {u} updated, {n} unchanged")
        return "; ".join(parts) if parts else "nothing to import"


def _validate(
    model: type[M],
    raw: Any,
    issues: list[Issue],
    *,
    file: str,
    where: Callable[[tuple[Any, ...]], str],
    path: str,
    field_of: Callable[[tuple[Any, ...]], str] | None = None,
) -> M | None:
    """Validate one record; on failure add one Issue per bad field and return None."""
    if not isinstance(raw, dict):
        issues.append(
            Issue(file, where(()), path, f"expected a mapping of fields, got {_kind(raw)}")
        )
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        for err in exc.errors():
            loc = tuple(err["loc"])
            name = field_of(loc) if field_of else _dotted(path, loc)
            at = where(loc)
            if (at, name) not in seen:  # one problem per field is enough to fix it
                seen.add((at, name))
                issues.append(Issue(file, at, name, _message(err)))
        return None


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see docs/import-format.md)"
    if err["type"] == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return names.get(type(value), type(value).__name__)


def _dotted(path: str, loc: Iterable[Any]) -> str:
    out = path
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


# -- cross-record checks ------------------------------------------------------------------------


def _check_duplicates(doc: OrgDocument, issues: list[Issue]) -> None:
    def dupes(items: Sequence[Item[Any]], key: Callable[[Item[Any]], Any], what: str) -> None:
        seen: dict[Any, Item[Any]] = {}
        for it in items:
            k = key(it)
            if k in seen:
                first = seen[k]
                at = f"{first.file} {first.where}".strip()
                issues.append(Issue(it.file, it.where, it.field_name(what), f"duplicate: {at}"))
            else:
                seen[k] = it

    dupes(doc.regions, lambda i: i.rec.code, "code")
    dupes(doc.facilities, lambda i: i.rec.code, "code")
    dupes(doc.zones, lambda i: (i.facility, i.rec.code), "code")
    dupes(doc.devices, lambda i: (i.facility, i.rec.code), "code")
    dupes(doc.units, lambda i: (i.facility, i.rec.code), "code")
    dupes(doc.people, lambda i: i.rec.employee_id, "employee_id")


# -- YAML ---------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML without the YAML 1.1 traps: `18:00` stays a time and `02134` a postal code."""


_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0o[0-7_]+)$"),
    list("-+0123456789"),
)


class _Lines:
    """Line numbers of a parsed YAML document, found by path (keys and list indexes)."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.root = node

    def line(self, path: Sequence[Any]) -> str:
        node = self.root
        if node is None:
            return ""
        for part in path:
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if getattr(key, "value", None) == str(part):
                        nxt = value
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                nxt = node.value[part]
            if nxt is None:
                break
            node = nxt
        return f"line {node.start_mark.line + 1}"


TOP_KEYS = {"organisation", "regions", "facilities"}
CHILD_KEYS: dict[str, type[BaseModel]] = {
    "zones": ZoneRecord,
    "devices": DeviceRecord,
    "response_units": UnitRecord,
    "staff": StaffRecord,
}


def read_yaml(path: Path, *, strict: bool = True) -> OrgDocument:
    """Read and validate an organisation YAML file; raises ImportFailed naming every problem."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed([Issue(name, "", "", f"is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ImportFailed([Issue(name, "", "", f"cannot be read: {exc.strerror}")]) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ImportFailed([Issue(name, where, "", f"is not valid YAML: {problem}")]) from None
    finally:
        loader.dispose()
    return parse_mapping(data, file=name, lines=_Lines(node), strict=strict)


def parse_mapping(
    data: Any, *, file: str = "<data>", lines: _Lines | None = None, strict: bool = True
) -> OrgDocument:
    """Validate the YAML structure (already parsed into Python) into an OrgDocument.

    strict: raise ImportFailed on any problem; otherwise keep them in `doc.issues` (so that
    apply_document reports them together with the reference problems it finds).
    """
    lines = lines or _Lines(None)
    issues: list[Issue] = []
    doc = OrgDocument()
    if not isinstance(data, dict):
        raise ImportFailed(
            [
                Issue(
                    file,
                    "",
                    "",
                    "must be a mapping with 'organisation', 'regions' and 'facilities' "
                    f"(found {_kind(data)})",
                )
            ]
        )
    for key in data:
        if key not in TOP_KEYS:
            issues.append(
                Issue(
                    file,
                    lines.line([key]),
                    str(key),
                    "unknown section; expected one of " + ", ".join(sorted(TOP_KEYS)),
                )
            )

    def where_at(base: tuple[Any, ...]) -> Callable[[tuple[Any, ...]], str]:
        return lambda loc: lines.line(base + loc)

    if data.get("organisation") is not None:
        rec = _validate(
            OrganisationRecord,
            data["organisation"],
            issues,
            file=file,
            where=where_at(("organisation",)),
            path="organisation",
        )
        if rec:
            doc.organisation = Item(rec, file, lines.line(["organisation"]), "organisation")

    def as_list(key: str, value: Any, base: tuple[Any, ...], path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            issues.append(
                Issue(file, lines.line(base), path, f"'{key}' must be a list, got {_kind(value)}")
            )
            return []
        return value

    for i, raw in enumerate(as_list("regions", data.get("regions"), ("regions",), "regions")):
        base, path = ("regions", i), f"regions[{i}]"
        rrec = _validate(RegionRecord, raw, issues, file=file, where=where_at(base), path=path)
        if rrec:
            doc.regions.append(Item(rrec, file, lines.line(base), path))
        elif isinstance(raw, dict):
            doc.invalid.add(("region", str(raw.get("code", ""))))

    facilities = as_list("facilities", data.get("facilities"), ("facilities",), "facilities")
    child_lists: dict[str, list[Item[Any]]] = {
        "zones": doc.zones,
        "devices": doc.devices,
        "response_units": doc.units,
        "staff": doc.people,
    }
    for i, raw in enumerate(facilities):
        base, path = ("facilities", i), f"facilities[{i}]"
        own = dict(raw) if isinstance(raw, dict) else raw
        children = {k: own.pop(k) for k in CHILD_KEYS if k in own} if isinstance(own, dict) else {}
        frec = _validate(FacilityRecord, own, issues, file=file, where=where_at(base), path=path)
        code = str(raw.get("code", "")) if isinstance(raw, dict) else ""
        if frec:
            doc.facilities.append(Item(frec, file, lines.line(base), path))
        else:
            doc.invalid.add(("facility", code))
        for key, child_model in CHILD_KEYS.items():
            for j, child in enumerate(
                as_list(key, children.get(key), base + (key,), f"{path}.{key}")
            ):
                cbase, cpath = base + (key, j), f"{path}.{key}[{j}]"
                crec: BaseModel | None = _validate(
                    child_model, child, issues, file=file, where=where_at(cbase), path=cpath
                )
                if crec:
                    child_lists[key].append(Item(crec, file, lines.line(cbase), cpath, code))
                elif key == "zones" and isinstance(child, dict):
                    doc.invalid.add(("zone", code, str(child.get("code", ""))))
    _check_duplicates(doc, issues)
    doc.issues = issues
    if issues and strict:
        raise ImportFailed(issues)
    return doc


# -- CSV ----------------------------------------------------------------------------------------

HOURS_COLUMNS = [f"hours_{d}" for d in WEEKDAYS]
COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    # file: (required columns, optional columns); the order is the export's column order
    "organisation.csv": (["code", "name"], []),
    "regions.csv": (["code", "name"], []),
    "facilities.csv": (
        ["code", "name", "region"],
        [
            "kind",
            "address",
            "city",
            "state",
            "postal_code",
            "latitude",
            "longitude",
            "timezone",
            "population",
            "floor_area_sqft",
            *HOURS_COLUMNS,
        ],
    ),
    "zones.csv": (["facility", "code", "name"], ["kind", "floor"]),
    "devices.csv": (
        ["facility", "code", "name", "kind"],
        ["zone", "protocol", "address", "status", "supervision_seconds"],
    ),
    "response_units.csv": (["facility", "code", "name", "kind"], ["contacts", "notes"]),
    "people.csv": (
        ["facility", "employee_id", "given_name", "family_name"],
        [
            "job_title",
            "role",
            "email",
            "phone",
            "contacts",
            "vetting_status",
            "vetting_expires_on",
            "active",
        ],
    ),
}


def csv_files(paths: Sequence[Path]) -> list[Path]:
    """The CSV files named, or found in the directories named."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.csv")))
        else:
            files.append(p)
    return files


def _split_contacts(cell: str) -> list[dict[str, str]]:
    out = []
    for part in cell.split(";"):
        part = part.strip()
        if part:
            channel, _, value = part.partition(":")
            out.append({"channel": channel.strip(), "value": value.strip()})
    return out


def _hours_cell(cell: str) -> list[str] | str | None:
    if cell.lower() in {"", "closed"}:
        return None
    open_, sep, close = cell.partition("-")
    return [open_.strip(), close.strip()] if sep else cell


def _csv_field(loc: tuple[Any, ...]) -> str:
    if not loc:
        return ""
    if loc[0] == "operating_hours" and len(loc) > 1:
        return f"hours_{loc[1]}"
    return str(loc[0])


def read_csv(
    paths: Sequence[Path], progress: ProgressFn | None = None, *, strict: bool = True
) -> OrgDocument:
    """Read and validate CSV files (see COLUMNS); raises ImportFailed naming every problem."""
    issues: list[Issue] = []
    doc = OrgDocument()
    files = csv_files(paths)
    if not files:
        raise ImportFailed([Issue(", ".join(map(str, paths)), "", "", "holds no .csv files")])
    by_name: dict[str, Path] = {}
    for f in files:
        if f.name not in COLUMNS:
            issues.append(
                Issue(f.name, "", "", "unknown file name; expected " + ", ".join(COLUMNS))
            )
        elif f.name in by_name:
            issues.append(Issue(f.name, "", "", f"given twice ({by_name[f.name]} and {f})"))
        else:
            by_name[f.name] = f
    for name in COLUMNS:  # a fixed order: parents before children
        if name in by_name:
            _read_csv_file(by_name[name], doc, issues, progress)
    _check_duplicates(doc, issues)
    doc.issues = issues
    if issues and strict:
        raise ImportFailed(issues)
    return doc


def _read_csv_file(
    path: Path, doc: OrgDocument, issues: list[Issue], progress: ProgressFn | None
) -> None:
    name = path.name
    required, optional = COLUMNS[name]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        issues.append(Issue(name, "", "", f"is not UTF-8 text ({exc.reason})"))
        return
    except OSError as exc:
        issues.append(Issue(name, "", "", f"cannot be read: {exc.strerror}"))
        return
    if "\x00" in text:
        issues.append(Issue(name, "", "", "contains NUL bytes: is it really a CSV file?"))
        return
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        issues.append(Issue(name, "", "", "is empty; it needs a header row"))
        return
    except csv.Error as exc:
        issues.append(Issue(name, "row 1", "", f"is not valid CSV: {exc}"))
        return
    known = set(required) | set(optional)
    bad_header = False
    for col in header:
        if col not in known:
            issues.append(
                Issue(
                    name, "row 1", col, "unknown column; expected " + ", ".join(known_order(name))
                )
            )
            bad_header = True
    for col in required:
        if col not in header:
            issues.append(Issue(name, "row 1", col, "required column is missing"))
            bad_header = True
    if len(set(header)) != len(header):
        issues.append(Issue(name, "row 1", "", "a column name appears twice"))
        bad_header = True
    if bad_header:
        return
    total = max(len(lines) - 1, 0)
    n = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            issues.append(Issue(name, f"row {reader.line_num}", "", f"is not valid CSV: {exc}"))
            break
        n += 1
        if progress and n % 500 == 0:
            progress(f"checking {name}", n, total)
        row_no = reader.line_num
        where = f"row {row_no}"
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(header):
            issues.append(
                Issue(name, where, "", f"has {len(cells)} cells but the header has {len(header)}")
            )
            continue
        row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
        _csv_record(name, row, where, doc, issues)
    if progress:
        progress(f"checking {name}", total, total)


def known_order(name: str) -> list[str]:
    required, optional = COLUMNS[name]
    return required + optional


def _csv_record(
    name: str, row: dict[str, str], where: str, doc: OrgDocument, issues: list[Issue]
) -> None:
    facility = row.pop("facility", "")
    values: dict[str, Any] = {k: v for k, v in row.items() if v != "" and k not in HOURS_COLUMNS}
    if "contacts" in values:
        values["contacts"] = _split_contacts(values["contacts"])
    if name == "facilities.csv" and any(row.get(c) for c in HOURS_COLUMNS):
        values["operating_hours"] = {d: _hours_cell(row.get(f"hours_{d}", "")) for d in WEEKDAYS}
    models: dict[str, type[BaseModel]] = {
        "organisation.csv": OrganisationRecord,
        "regions.csv": RegionRecord,
        "facilities.csv": FacilityRecord,
        "zones.csv": ZoneRecord,
        "devices.csv": DeviceRecord,
        "response_units.csv": UnitRecord,
        "people.csv": StaffRecord,
    }
    model = models[name]
    rec = _validate(
        model, values, issues, file=name, where=lambda _loc: where, path="", field_of=_csv_field
    )
    if "facility" in known_order(name) and not facility:
        issues.append(Issue(name, where, "facility", "required field is missing"))
        return
    if rec is None:
        key = {"regions.csv": "region", "facilities.csv": "facility", "zones.csv": "zone"}
        if name in key:
            scope = (facility,) if name == "zones.csv" else ()
            doc.invalid.add((key[name], *scope, row.get("code", "")))
        return
    item: Item[Any] = Item(rec, name, where, "", facility)
    if name == "organisation.csv":
        if doc.organisation is not None:
            issues.append(Issue(name, where, "", "only one organisation row is allowed"))
        doc.organisation = item
    else:
        lists: dict[str, list[Item[Any]]] = {
            "regions.csv": doc.regions,
            "facilities.csv": doc.facilities,
            "zones.csv": doc.zones,
            "devices.csv": doc.devices,
            "response_units.csv": doc.units,
            "people.csv": doc.people,
        }
        lists[name].append(item)


def read_any(
    paths: Sequence[Path], progress: ProgressFn | None = None, *, strict: bool = True
) -> OrgDocument:
    """A YAML file, or CSV files / directories of them."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ImportFailed([Issue(str(p), "", "", "does not exist") for p in missing])
    if len(paths) == 1 and paths[0].is_file() and paths[0].suffix.lower() in {".yaml", ".yml"}:
        return read_yaml(paths[0], strict=strict)
    if any(p.is_file() and p.suffix.lower() in {".yaml", ".yml"} for p in paths):
        raise ImportFailed(
            [Issue(", ".join(map(str, paths)), "", "", "import one YAML file at a time")]
        )
    return read_csv(paths, progress, strict=strict)


# -- writing ------------------------------------------------------------------------------------


@dataclass
class _Existing:
    organisation: Organisation | None
    regions: dict[str, Region]
    facilities: dict[str, Facility]
    zones: dict[tuple[int, str], Zone]
    devices: dict[tuple[int, str], Device]
    units: dict[tuple[int, str], ResponseUnit]
    people: dict[str, Person]


async def _load_existing(db: AsyncSession) -> _Existing:
    async def all_of(model: Any) -> list[Any]:
        return list((await db.execute(select(model))).scalars().all())

    orgs = await all_of(Organisation)
    return _Existing(
        organisation=min(orgs, key=lambda o: o.id) if orgs else None,
        regions={r.code: r for r in await all_of(Region)},
        facilities={f.code: f for f in await all_of(Facility)},
        zones={(z.facility_id, z.code): z for z in await all_of(Zone)},
        devices={(d.facility_id, d.code): d for d in await all_of(Device)},
        units={(u.facility_id, u.code): u for u in await all_of(ResponseUnit)},
        people={p.employee_id: p for p in await all_of(Person)},
    )


def _check_references(doc: OrgDocument, ex: _Existing) -> list[Issue]:
    issues: list[Issue] = []
    if doc.organisation and ex.organisation and doc.organisation.rec.code != ex.organisation.code:
        oit = doc.organisation
        issues.append(
            Issue(
                oit.file,
                oit.where,
                oit.field_name("code"),
                f"this database holds organisation '{ex.organisation.code}', not "
                f"'{oit.rec.code}'; correct the code (one Watchfloor serves one organisation)",
            )
        )
    new_regions = [r for r in doc.regions if r.rec.code not in ex.regions]
    if new_regions and not doc.organisation and not ex.organisation:
        rit = new_regions[0]
        issues.append(
            Issue(
                rit.file,
                rit.where,
                "",
                "no organisation exists yet: add an 'organisation' "
                "(YAML) or organisation.csv with its code and name",
            )
        )
    region_codes = set(ex.regions) | {r.rec.code for r in doc.regions}
    for fit in doc.facilities:
        if fit.rec.region not in region_codes and ("region", fit.rec.region) not in doc.invalid:
            issues.append(
                Issue(
                    fit.file,
                    fit.where,
                    fit.field_name("region"),
                    f"unknown region '{fit.rec.region}': add it to the regions",
                )
            )
    facility_codes = set(ex.facilities) | {f.rec.code for f in doc.facilities}
    children: list[Item[Any]] = [*doc.zones, *doc.devices, *doc.units, *doc.people]
    for cit in children:
        if cit.facility not in facility_codes and ("facility", cit.facility) not in doc.invalid:
            issues.append(
                Issue(
                    cit.file,
                    cit.where,
                    cit.field_name("facility") if cit.path else "facility",
                    f"unknown facility '{cit.facility}'",
                )
            )
    zone_keys = {(zit.facility, zit.rec.code) for zit in doc.zones}
    fac_ids = {code: f.id for code, f in ex.facilities.items()}
    for it in doc.devices:
        z = it.rec.zone
        if z is None or (it.facility, z) in zone_keys:
            continue
        if ("zone", it.facility, z) in doc.invalid or ("facility", it.facility) in doc.invalid:
            continue
        fid = fac_ids.get(it.facility)
        if fid is None or (fid, z) not in ex.zones:
            issues.append(
                Issue(
                    it.file,
                    it.where,
                    it.field_name("zone"),
                    f"facility '{it.facility}' has no zone '{z}'",
                )
            )
    return issues


def _update(obj: Any, fields: set[str], values: dict[str, Any], now: Any) -> str:
    """Update the fields a record set; "updated" or "unchanged"."""
    if apply_changes(obj, {k: v for k, v in values.items() if k in fields}):
        obj.updated_at = now
        return "updated"
    return "unchanged"


async def _insert_many(db: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2000):
        await db.execute(insert(model), rows[start : start + 2000])


async def apply_document(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    doc: OrgDocument,
    *,
    source: str = "",
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Write a validated document in the caller's transaction (the caller commits).

    Checks every reference first and raises ImportFailed (having written nothing) on any problem.
    Existing rows are loaded once per table; new devices, units and people are inserted in
    batches. One audit record describes the whole import.
    """
    ex = await _load_existing(db)
    issues = doc.issues + _check_references(doc, ex)
    if issues:
        raise ImportFailed(issues)
    now = clock.now()
    result = ImportResult()
    stamps = {"created_at": now, "updated_at": now}

    def count(kind: str, what: str, n: int = 1) -> None:
        {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}[what][
            kind
        ] += n

    def tick(stage: str, done: int, total: int) -> None:
        if progress and (done % 500 == 0 or done == total):
            progress(stage, done, total)

    # organisation
    org = ex.organisation
    if doc.organisation:
        orec = doc.organisation.rec
        if org is None:
            org = Organisation(code=orec.code, name=orec.name, **stamps)
            db.add(org)
            count("organisation", "created")
        else:
            count("organisation", _update(org, orec.model_fields_set, {"name": orec.name}, now))
        await db.flush()
    # regions
    for rit in doc.regions:
        rrec = rit.rec
        region = ex.regions.get(rrec.code)
        if region is None:
            assert org is not None  # checked in _check_references
            region = Region(organisation_id=org.id, code=rrec.code, name=rrec.name, **stamps)
            db.add(region)
            ex.regions[rrec.code] = region
            count("regions", "created")
        else:
            count("regions", _update(region, rrec.model_fields_set, {"name": rrec.name}, now))
    await db.flush()
    # facilities
    for i, fit in enumerate(doc.facilities, 1):
        frec = fit.rec
        values = frec.model_dump(exclude={"region", "operating_hours", "code"})
        values["kind"] = frec.kind.value
        values["operating_hours"] = hours_to_db(frec.operating_hours)
        values["region_id"] = ex.regions[frec.region].id
        fac = ex.facilities.get(frec.code)
        if fac is None:
            fac = Facility(code=frec.code, **stamps, **values)
            db.add(fac)
            ex.facilities[frec.code] = fac
            count("facilities", "created")
        else:
            fields = set(frec.model_fields_set) | {"region_id"}
            count("facilities", _update(fac, fields, values, now))
        tick("facilities", i, len(doc.facilities))
    await db.flush()
    fid = {code: f.id for code, f in ex.facilities.items()}
    # zones (devices need their ids)
    for i, zit in enumerate(doc.zones, 1):
        zrec, f = zit.rec, fid[zit.facility]
        values = {"name": zrec.name, "kind": zrec.kind.value, "floor": zrec.floor}
        zone = ex.zones.get((f, zrec.code))
        if zone is None:
            zone = Zone(facility_id=f, code=zrec.code, **stamps, **values)
            db.add(zone)
            ex.zones[(f, zrec.code)] = zone
            count("zones", "created")
        else:
            count("zones", _update(zone, zrec.model_fields_set, values, now))
        tick("zones", i, len(doc.zones))
    await db.flush()
    # devices
    new_rows: list[dict[str, Any]] = []
    for i, dit in enumerate(doc.devices, 1):
        drec, f = dit.rec, fid[dit.facility]
        values = {
            k: getattr(v, "value", v) for k, v in drec.model_dump(exclude={"code", "zone"}).items()
        }
        values["zone_id"] = ex.zones[(f, drec.zone)].id if drec.zone else None
        device = ex.devices.get((f, drec.code))
        if device is None:
            new_rows.append({"facility_id": f, "code": drec.code, **stamps, **values})
        else:
            fields = set(drec.model_fields_set)
            if "zone" in fields:
                fields.add("zone_id")
            count("devices", _update(device, fields, values, now))
        tick("devices", i, len(doc.devices))
    await _insert_many(db, Device, new_rows)
    count("devices", "created", len(new_rows))
    # response units
    new_rows = []
    for i, uit in enumerate(doc.units, 1):
        urec, f = uit.rec, fid[uit.facility]
        values = urec.model_dump(mode="json", exclude={"code"})
        unit = ex.units.get((f, urec.code))
        if unit is None:
            new_rows.append({"facility_id": f, "code": urec.code, **stamps, **values})
        else:
            count("units", _update(unit, urec.model_fields_set, values, now))
        tick("response units", i, len(doc.units))
    await _insert_many(db, ResponseUnit, new_rows)
    count("units", "created", len(new_rows))
    # people
    if doc.people:
        people = await bulk_upsert_people(
            db,
            clock,
            [(ex.facilities[pit.facility], pit.rec) for pit in doc.people],
            known=ex.people,
        )
        for what, n in people.items():
            count("people", what, n)
        tick("people", len(doc.people), len(doc.people))
    try:
        await db.flush()
    except IntegrityError as exc:
        raise ImportFailed(
            [Issue(source or "import", "", "", f"the database refused the data: {exc.orig}")]
        ) from None
    await audit.record(
        db,
        clock,
        actor,
        "organisation.import",
        target_type="organisation",
        target_id=org.code if org else "",
        details={
            "source": source,
            "created": dict(result.created),
            "updated": dict(result.updated),
            "unchanged": sum(result.unchanged.values()),
        },
    )
    return result


async def import_paths(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    paths: Sequence[Path],
    *,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Read, validate and write YAML or CSV input (the caller commits)."""
    doc = read_any(paths, progress, strict=False)
    source = ", ".join(p.name for p in paths)
    return await apply_document(db, clock, actor, doc, source=source, progress=progress)


# -- export -------------------------------------------------------------------------------------


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


async def export_document(db: AsyncSession) -> dict[str, Any]:
    """The whole organisation in the structure read_yaml / parse_mapping take."""
    ex = await _load_existing(db)
    region_code = {r.id: r.code for r in ex.regions.values()}
    zone_code = {z.id: z.code for z in ex.zones.values()}
    by_fac: dict[int, dict[str, list[dict[str, Any]]]] = {
        f.id: {k: [] for k in CHILD_KEYS} for f in ex.facilities.values()
    }
    for z in sorted(ex.zones.values(), key=lambda z: z.code):
        by_fac[z.facility_id]["zones"].append(
            {"code": z.code, "name": z.name, "kind": z.kind, "floor": z.floor or None}
        )
    for d in sorted(ex.devices.values(), key=lambda d: d.code):
        by_fac[d.facility_id]["devices"].append(
            {
                "code": d.code,
                "name": d.name,
                "kind": d.kind,
                "zone": zone_code.get(d.zone_id) if d.zone_id else None,
                "protocol": d.protocol,
                "address": d.address or None,
                "status": d.status,
                "supervision_seconds": d.supervision_seconds,
            }
        )
    for u in sorted(ex.units.values(), key=lambda u: u.code):
        by_fac[u.facility_id]["response_units"].append(
            {
                "code": u.code,
                "name": u.name,
                "kind": u.kind,
                "contacts": list(u.contacts or []),
                "notes": u.notes or None,
            }
        )
    for p in sorted(ex.people.values(), key=lambda p: p.employee_id):
        by_fac[p.facility_id]["staff"].append(
            {
                "employee_id": p.employee_id,
                "given_name": p.given_name,
                "family_name": p.family_name,
                "job_title": p.job_title or None,
                "role": p.role,
                "email": p.email or None,
                "phone": p.phone or None,
                "contacts": list(p.contacts or []),
                "vetting_status": p.vetting_status,
                "vetting_expires_on": p.vetting_expires_on,
                "active": p.active,
            }
        )
    facilities = []
    for f in sorted(ex.facilities.values(), key=lambda f: f.code):
        row = {
            "code": f.code,
            "name": f.name,
            "region": region_code[f.region_id],
            "kind": f.kind,
            "address": f.address or None,
            "city": f.city or None,
            "state": f.state or None,
            "postal_code": f.postal_code or None,
            "latitude": f.latitude,
            "longitude": f.longitude,
            "timezone": f.timezone,
            "population": f.population,
            "floor_area_sqft": f.floor_area_sqft,
            "operating_hours": f.operating_hours or None,
        }
        facilities.append(
            {**_clean(row), **{k: [_clean(c) for c in v] for k, v in by_fac[f.id].items() if v}}
        )
    out: dict[str, Any] = {}
    if ex.organisation:
        out["organisation"] = {"code": ex.organisation.code, "name": ex.organisation.name}
    out["regions"] = [
        {"code": r.code, "name": r.name} for r in sorted(ex.regions.values(), key=lambda r: r.code)
    ]
    out["facilities"] = facilities
    return out


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def write_csv(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write an exported document as the CSV files read_csv takes; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in COLUMNS}
    if data.get("organisation"):
        rows["organisation.csv"].append(data["organisation"])
    rows["regions.csv"].extend(data.get("regions", []))
    for f in data.get("facilities", []):
        own = {k: v for k, v in f.items() if k not in CHILD_KEYS and k != "operating_hours"}
        hours = f.get("operating_hours") or {}
        for d in WEEKDAYS:
            span = hours.get(d)
            own[f"hours_{d}"] = f"{span[0]}-{span[1]}" if span else ("closed" if hours else "")
        rows["facilities.csv"].append(own)
        for key, name in (
            ("zones", "zones.csv"),
            ("devices", "devices.csv"),
            ("response_units", "response_units.csv"),
            ("staff", "people.csv"),
        ):
            for child in f.get(key, []):
                child = dict(child)
                if "contacts" in child:
                    child["contacts"] = "; ".join(
                        f"{c['channel']}:{c['value']}" for c in child["contacts"]
                    )
                rows[name].append({"facility": f["code"], **child})
    written = []
    for name, items in rows.items():
        path = out_dir / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=known_order(name), lineterminator="\n")
            writer.writeheader()
            for item in items:
                writer.writerow(
                    {
                        k: ("true" if v is True else "false" if v is False else v)
                        for k, v in item.items()
                    }
                )
        written.append(path)
    return written
