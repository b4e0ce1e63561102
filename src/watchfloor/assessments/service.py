"""Facility security assessments: the FSL standard in force, checklist templates, assessments,
findings and their evidence, the reassessment schedule and the read functions other domains use.

No HTTP here. Every change is audited in the caller's transaction; the caller commits. Times come
from the injected clock.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from watchfloor.assessments import fsl
from watchfloor.assessments.models import (
    AREA_LABELS,
    SEVERITY_RANK,
    Assessment,
    AssessmentKind,
    AssessmentStandard,
    AssessmentStatus,
    AssessmentTemplate,
    Finding,
    FindingAttachment,
    FindingStatus,
)
from watchfloor.assessments.schemas import (
    AssessmentCreate,
    AssessmentUpdate,
    FindingCreate,
    FindingUpdate,
    FSLInput,
)
from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.people.models import Person
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.sites.models import Facility
from watchfloor.sites.service import scope_filter

Actor = Principal | str

#: evidence types accepted, with the leading bytes each must start with (None: text)
ATTACHMENT_TYPES: dict[str, tuple[bytes, ...] | None] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "text/plain": None,
}


def _bad(field: str, msg: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {msg}", errors=[{"loc": ["body", field], "msg": msg, "type": "value_error"}]
    )


def _label(actor: Actor) -> str:
    return actor.label if isinstance(actor, Principal) else actor


# --- read functions for the scorecard (rollout domain) ------------------------------------


async def facility_findings_summary(
    db: AsyncSession, facility_ids: Collection[int], now: datetime
) -> dict[int, dict[str, dict[str, Any]]]:
    """Open findings per facility and area: {facility_id: {area: {"open": n, "overdue": n,
    "worst": severity}}}. Facilities and areas without open findings are absent. A finding is
    overdue when it is open and its due date is before `now`'s (UTC) date."""
    if not facility_ids:
        return {}
    today = now.date()
    overdue = func.sum(case((Finding.due_on < today, 1), else_=0))
    rank = func.min(_severity_rank_expr())
    rows = (
        await db.execute(
            select(
                Finding.facility_id,
                Finding.area,
                func.count(Finding.id),
                overdue,
                rank,
            )
            .where(
                Finding.status == FindingStatus.OPEN,
                Finding.facility_id.in_(list(facility_ids)),
            )
            .group_by(Finding.facility_id, Finding.area)
        )
    ).all()
    by_rank = {v: k for k, v in SEVERITY_RANK.items()}
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for facility_id, area, n_open, n_overdue, worst in rows:
        out.setdefault(facility_id, {})[area] = {
            "open": int(n_open),
            "overdue": int(n_overdue or 0),
            "worst": by_rank[int(worst)],
        }
    return out


def _severity_rank_expr() -> Any:
    return case(
        *[(Finding.severity == name, rank) for name, rank in SEVERITY_RANK.items()],
        else_=len(SEVERITY_RANK),
    )


async def latest_levels(db: AsyncSession, facility_ids: Collection[int]) -> dict[int, str]:
    """The FSL of each facility's most recently completed assessment (facilities never assessed
    are absent)."""
    if not facility_ids:
        return {}
    latest = (
        select(Assessment.facility_id, func.max(Assessment.completed_at).label("at"))
        .where(
            Assessment.status == AssessmentStatus.COMPLETED,
            Assessment.fsl_level.is_not(None),
            Assessment.facility_id.in_(list(facility_ids)),
        )
        .group_by(Assessment.facility_id)
        .subquery()
    )
    rows = (
        await db.execute(
            select(Assessment.facility_id, Assessment.fsl_level, Assessment.id)
            .join(
                latest,
                and_(
                    latest.c.facility_id == Assessment.facility_id,
                    latest.c.at == Assessment.completed_at,
                ),
            )
            .where(Assessment.status == AssessmentStatus.COMPLETED)
            .order_by(Assessment.id)
        )
    ).all()
    return {facility_id: level for facility_id, level, _id in rows if level}


# --- the standard -------------------------------------------------------------------------


async def active_standard_row(db: AsyncSession) -> AssessmentStandard | None:
    return (
        await db.scalars(select(AssessmentStandard).order_by(AssessmentStandard.id.desc()).limit(1))
    ).first()


async def active_standard(db: AsyncSession) -> fsl.Standard:
    """The newest standard the organisation loaded, else the packaged default."""
    row = await active_standard_row(db)
    if row is None:
        return fsl.default_standard()
    return fsl.parse_standard(row.body)


def standard_label(standard: fsl.Standard) -> str:
    return f"{standard.name} ({standard.edition})"


async def load_standard(
    db: AsyncSession, clock: Clock, actor: Actor, text: str
) -> AssessmentStandard:
    """Validate a standard written as YAML and put it in force (InvalidInput if it is not
    valid; nothing is stored then). Assessments already scored keep their level; the new
    standard applies when an assessment is next scored."""
    standard = fsl.parse_standard_yaml(text)
    body = standard.model_dump(mode="json")
    row = AssessmentStandard(
        name=standard.name,
        edition=standard.edition,
        body=body,
        loaded_by=_label(actor),
        created_at=clock.now(),
    )
    db.add(row)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "assessment.standard_loaded",
        target_type="assessment_standard",
        target_id=row.id,
        details={"name": standard.name, "edition": standard.edition},
    )
    return row


# --- templates ----------------------------------------------------------------------------


@cache
def default_template_data() -> dict[str, Any]:
    text = (
        resources.files("watchfloor.assessments").joinpath("data/default-template.yaml").read_text()
    )
    data: dict[str, Any] = yaml.safe_load(text)
    return data


async def ensure_default_template(db: AsyncSession, clock: Clock) -> AssessmentTemplate:
    """The default checklist template, created from the packaged data on first use."""
    data = default_template_data()
    found = (
        await db.scalars(select(AssessmentTemplate).where(AssessmentTemplate.code == data["code"]))
    ).first()
    if found is not None:
        return found
    now = clock.now()
    template = AssessmentTemplate(
        code=data["code"], name=data["name"], areas=data["areas"], created_at=now, updated_at=now
    )
    db.add(template)
    await db.flush()
    return template


async def get_template(db: AsyncSession, clock: Clock, code: str) -> AssessmentTemplate:
    if code == default_template_data()["code"]:
        return await ensure_default_template(db, clock)
    found = (
        await db.scalars(select(AssessmentTemplate).where(AssessmentTemplate.code == code))
    ).first()
    if found is None:
        raise _bad("template", f"there is no assessment template '{code}'")
    return found


def question_keys(template: AssessmentTemplate) -> set[str]:
    return {q["key"] for area in template.areas for q in area.get("questions", [])}


def checklist(assessment: Assessment) -> list[dict[str, Any]]:
    """The template's areas with each question's answer on this assessment."""
    out = []
    for area in assessment.template.areas:
        questions = []
        for q in area.get("questions", []):
            given = assessment.answers.get(q["key"]) or {}
            questions.append(
                {
                    "key": q["key"],
                    "text": q["text"],
                    "answer": given.get("answer"),
                    "note": given.get("note", ""),
                }
            )
        out.append(
            {
                "area": area["area"],
                "label": AREA_LABELS.get(area["area"], area["area"]),
                "questions": questions,
            }
        )
    return out


# --- assessments --------------------------------------------------------------------------


async def active_staff(db: AsyncSession, facility_id: int) -> int:
    count = await db.scalar(
        select(func.count(Person.id)).where(
            Person.facility_id == facility_id, Person.active.is_(True)
        )
    )
    return int(count or 0)


async def default_population(db: AsyncSession, facility: Facility) -> int:
    """People at the facility: the registry's figure when one is recorded, else the count of
    its active staff."""
    if facility.population and facility.population > 0:
        return facility.population
    return await active_staff(db, facility.id)


def _snapshot(a: Assessment) -> dict[str, Any]:
    return {
        "status": a.status,
        "kind": a.kind,
        "directive_ref": a.directive_ref,
        "scheduled_for": a.scheduled_for.isoformat() if a.scheduled_for else None,
        "assessor": a.assessor,
        "population": a.population,
        "floor_area_sqft": a.floor_area_sqft,
        "factors": dict(a.factor_scores),
        "intangible_adjustment": a.intangible_adjustment,
        "agency_level": a.agency_level,
        "fsl_level": a.fsl_level,
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def _apply_fsl_inputs(a: Assessment, data: FSLInput) -> bool:
    """Copy FSL inputs that were sent; True if any was."""
    sent = data.model_fields_set & {
        "population",
        "floor_area_sqft",
        "factors",
        "intangible_adjustment",
        "agency_level",
        "justification",
    }
    if "population" in sent:
        a.population = data.population
    if "floor_area_sqft" in sent:
        a.floor_area_sqft = data.floor_area_sqft
    if "factors" in sent:
        merged = dict(a.factor_scores)
        for key, value in (data.factors or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        a.factor_scores = merged
    if "intangible_adjustment" in sent:
        a.intangible_adjustment = data.intangible_adjustment or 0
    if "agency_level" in sent:
        a.agency_level = bool(data.agency_level)
    if "justification" in sent:
        a.justification = (data.justification or "").strip()
    return bool(sent)


def drop_stale_derived(standard: fsl.Standard, a: Assessment, data: FSLInput) -> None:
    """A derived factor's score entered by hand gives way to its input (people, floor area)
    once that input is known, unless the same request sends both (then they must agree)."""
    sent = set((data.factors or {}) if "factors" in data.model_fields_set else {})
    inputs = {"population": a.population, "floor_area_sqft": a.floor_area_sqft}
    stale = [
        f.key
        for f in standard.factors
        if f.derived_from
        and inputs.get(f.derived_from) is not None
        and f.key in a.factor_scores
        and f.key not in sent
    ]
    if stale:
        a.factor_scores = {k: v for k, v in a.factor_scores.items() if k not in stale}


def _fsl_ready(standard: fsl.Standard, a: Assessment) -> bool:
    inputs = {"population": a.population, "floor_area_sqft": a.floor_area_sqft}
    for f in standard.factors:
        if f.derived_from and inputs.get(f.derived_from) is not None:
            continue
        if a.factor_scores.get(f.key) is None:
            return False
    return True


def score(standard: fsl.Standard, a: Assessment, *, require: bool) -> fsl.FSLResult | None:
    """Compute the assessment's FSL into it. With `require` False, incomplete inputs just leave
    the level unset; impossible values always raise."""
    if not require and not _fsl_ready(standard, a):
        # still reject impossible values that were given
        for key, value in a.factor_scores.items():
            try:
                f = standard.factor(key)
            except KeyError:
                raise _bad(key, "is not a factor of this standard") from None
            if value is not None and not 1 <= int(value) <= f.max_score:
                raise _bad(key, f"must be from 1 to {f.max_score}; {value} is impossible")
        if (a.intangible_adjustment or a.agency_level) and not a.justification:
            raise _bad("justification", "a written justification is required")
        a.fsl_total = a.fsl_computed = a.fsl_level = None
        return None
    given = dict(a.factor_scores)
    result = fsl.compute(
        standard,
        given,
        population=a.population,
        floor_area_sqft=a.floor_area_sqft,
        adjustment=a.intangible_adjustment,
        justification=a.justification,
        agency_level=a.agency_level,
    )
    a.fsl_total = result.total
    a.fsl_computed = result.computed_level
    a.fsl_level = result.level
    a.standard_name = standard_label(standard)
    return result


def fsl_of(standard: fsl.Standard, a: Assessment) -> dict[str, Any] | None:
    """The FSL breakdown of a scored assessment (recomputed from its stored inputs)."""
    if a.fsl_level is None:
        return None
    try:
        result = score(standard, _copy_inputs(a), require=True)
    except InvalidInput:
        result = None
    if result is None:
        return None
    body = result.as_dict()
    # the level stored when the assessment was scored stands (a later standard may differ)
    body["level"] = a.fsl_level
    body["computed_level"] = a.fsl_computed or body["computed_level"]
    body["total"] = a.fsl_total if a.fsl_total is not None else body["total"]
    body["standard"] = a.standard_name or standard_label(standard)
    return body


def _copy_inputs(a: Assessment) -> Assessment:
    return Assessment(
        population=a.population,
        floor_area_sqft=a.floor_area_sqft,
        factor_scores=dict(a.factor_scores),
        intangible_adjustment=a.intangible_adjustment,
        agency_level=a.agency_level,
        justification=a.justification,
    )


async def create_assessment(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, data: AssessmentCreate
) -> Assessment:
    now = clock.now()
    template = await get_template(db, clock, data.template)
    a = Assessment(
        facility_id=facility.id,
        template_id=template.id,
        kind=data.kind,
        directive_ref=data.directive_ref.strip(),
        status=AssessmentStatus.SCHEDULED,
        scheduled_for=data.scheduled_for or now,
        assessor=data.assessor.strip(),
        answers={},
        population=None,
        floor_area_sqft=None,
        factor_scores={},
        intangible_adjustment=0,
        agency_level=False,
        justification="",
        created_at=now,
        updated_at=now,
    )
    _apply_fsl_inputs(a, data)
    if "population" not in data.model_fields_set:
        a.population = await default_population(db, facility)
    if "floor_area_sqft" not in data.model_fields_set and facility.floor_area_sqft:
        a.floor_area_sqft = facility.floor_area_sqft
    standard = await active_standard(db)
    drop_stale_derived(standard, a, data)
    score(standard, a, require=False)
    a.template = template
    db.add(a)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "assessment.created",
        target_type="assessment",
        target_id=a.id,
        facility_id=facility.id,
        details=_snapshot(a),
    )
    return a


async def schedule_for_directive(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    facilities: Sequence[Facility],
    directive_ref: str,
    due: datetime,
) -> list[Assessment]:
    """Order an ad-hoc assessment of each facility by a directive ("assess every facility
    within 30 days"), scheduled for `due`. A facility that already has an assessment not yet
    completed keeps it (it is given the directive reference if it has none). Returns the
    assessments created. The caller commits."""
    ref = directive_ref.strip()
    if not ref or len(ref) > 120:
        raise _bad("directive_ref", "name the directive (1-120 characters)")
    ids = [f.id for f in facilities]
    pending = {
        a.facility_id: a
        for a in (
            await db.scalars(
                select(Assessment).where(
                    Assessment.facility_id.in_(ids),
                    Assessment.status != AssessmentStatus.COMPLETED,
                )
            )
        ).all()
    }
    created = []
    for facility in facilities:
        open_one = pending.get(facility.id)
        if open_one is not None:
            if not open_one.directive_ref:
                open_one.directive_ref = ref
                await audit.record(
                    db,
                    clock,
                    actor,
                    "assessment.updated",
                    target_type="assessment",
                    target_id=open_one.id,
                    facility_id=facility.id,
                    details={"directive_ref": [None, ref]},
                )
            continue
        data = AssessmentCreate(
            facility=facility.code, kind=AssessmentKind.AD_HOC, directive_ref=ref, scheduled_for=due
        )
        created.append(await create_assessment(db, clock, actor, facility, data))
    return created


async def get_assessment(db: AsyncSession, assessment_id: int) -> Assessment:
    a = (
        await db.scalars(
            select(Assessment)
            .options(selectinload(Assessment.findings))
            .where(Assessment.id == assessment_id)
        )
    ).first()
    if a is None:
        raise NotFound(f"There is no assessment {assessment_id}.")
    return a


async def update_assessment(
    db: AsyncSession, clock: Clock, actor: Actor, a: Assessment, data: AssessmentUpdate
) -> Assessment:
    """Answer questions, enter FSL inputs, start or complete the assessment. Completing needs a
    full set of FSL inputs; a completed assessment can no longer be changed."""
    if a.status == AssessmentStatus.COMPLETED:
        raise Conflict(f"Assessment {a.id} is completed and can no longer be changed.")
    before = _snapshot(a)
    now = clock.now()
    sent = data.model_fields_set
    if "scheduled_for" in sent:
        if data.scheduled_for is None:
            raise _bad("scheduled_for", "cannot be removed")
        a.scheduled_for = data.scheduled_for
    if "assessor" in sent and data.assessor is not None:
        a.assessor = data.assessor.strip()
    if "directive_ref" in sent and data.directive_ref is not None:
        a.directive_ref = data.directive_ref.strip()
    if data.answers:
        keys = question_keys(a.template)
        unknown = sorted(set(data.answers) - keys)
        if unknown:
            raise _bad(f"answers.{unknown[0]}", "is not a question of this assessment's template")
        merged = dict(a.answers)
        for key, given in data.answers.items():
            merged[key] = {"answer": given.answer.value, "note": given.note.strip()}
        a.answers = merged
    fsl_sent = _apply_fsl_inputs(a, data)
    standard = await active_standard(db)
    drop_stale_derived(standard, a, data)
    target = data.status
    completing = target == AssessmentStatus.COMPLETED
    score(standard, a, require=completing)
    if target is not None and target != a.status:
        if target == AssessmentStatus.SCHEDULED:
            raise _bad("status", "a started assessment cannot go back to scheduled")
        if a.started_at is None:
            a.started_at = now
        if completing:
            if not a.assessor:
                raise _bad("assessor", "name the assessor before completing the assessment")
            a.completed_at = now
        a.status = target
    elif (data.answers or fsl_sent) and a.status == AssessmentStatus.SCHEDULED:
        a.status = AssessmentStatus.IN_PROGRESS
        a.started_at = now
    a.updated_at = now
    await db.flush()
    changes = _diff(before, _snapshot(a))
    if data.answers:
        changes["answers"] = [None, sorted(data.answers)]
    action = "assessment.completed" if completing else "assessment.updated"
    await audit.record(
        db,
        clock,
        actor,
        action,
        target_type="assessment",
        target_id=a.id,
        facility_id=a.facility_id,
        details=changes,
    )
    return a


async def delete_assessment(db: AsyncSession, clock: Clock, actor: Actor, a: Assessment) -> None:
    if a.status == AssessmentStatus.COMPLETED:
        raise Conflict(f"Assessment {a.id} is completed: it is kept as a record.")
    has_findings = await db.scalar(
        select(func.count(Finding.id)).where(Finding.assessment_id == a.id)
    )
    if has_findings:
        raise Conflict(
            f"Assessment {a.id} has findings: they are kept (close them instead of deleting)."
        )
    await audit.record(
        db,
        clock,
        actor,
        "assessment.deleted",
        target_type="assessment",
        target_id=a.id,
        facility_id=a.facility_id,
        details=_snapshot(a),
    )
    await db.delete(a)
    await db.flush()


async def list_assessments(
    db: AsyncSession,
    scope: Scope,
    *,
    facility_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Assessment], int]:
    stmt = select(Assessment).join(Facility, Facility.id == Assessment.facility_id)
    stmt = stmt.where(scope_filter(scope))
    if facility_id is not None:
        stmt = stmt.where(Assessment.facility_id == facility_id)
    if status:
        stmt = stmt.where(Assessment.status == status)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (
        await db.scalars(
            stmt.order_by(Assessment.scheduled_for.desc(), Assessment.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return rows, int(total or 0)


async def open_finding_counts(db: AsyncSession, assessment_ids: Collection[int]) -> dict[int, int]:
    if not assessment_ids:
        return {}
    rows = await db.execute(
        select(Finding.assessment_id, func.count(Finding.id))
        .where(Finding.assessment_id.in_(list(assessment_ids)), Finding.status == "open")
        .group_by(Finding.assessment_id)
    )
    return {aid: int(n) for aid, n in rows.all()}


# --- reassessment schedule ----------------------------------------------------------------


def add_months(when: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it is shorter)."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


@dataclass
class DueEntry:
    facility: Facility
    level: str | None
    last_completed_at: datetime | None
    next_due: datetime | None
    status: str  # overdue | due_soon | scheduled | ok
    open_assessment: Assessment | None


STATUS_ORDER = {"overdue": 0, "due_soon": 1, "scheduled": 2, "ok": 3}


async def due_list(
    db: AsyncSession, scope: Scope, now: datetime, *, due_soon_days: int, limit: int = 10_000
) -> list[DueEntry]:
    """Every facility in scope with its next assessment date: the last completed assessment plus
    its level's interval (the standard's reassess_months); a facility never assessed is due now.
    Overdue first, then due soon, then by date."""
    standard = await active_standard(db)
    facilities = (
        await db.scalars(select(Facility).where(scope_filter(scope)).order_by(Facility.code))
    ).all()
    ids = [f.id for f in facilities]
    last: dict[int, tuple[datetime | None, str | None]] = {}
    open_by: dict[int, Assessment] = {}
    if ids:
        latest = (
            select(Assessment.facility_id, func.max(Assessment.completed_at).label("at"))
            .where(Assessment.status == AssessmentStatus.COMPLETED)
            .group_by(Assessment.facility_id)
            .subquery()
        )
        rows = await db.execute(
            select(Assessment.facility_id, Assessment.completed_at, Assessment.fsl_level)
            .join(
                latest,
                and_(
                    latest.c.facility_id == Assessment.facility_id,
                    latest.c.at == Assessment.completed_at,
                ),
            )
            .where(Assessment.status == AssessmentStatus.COMPLETED)
        )
        for facility_id, at, level in rows.all():
            if facility_id in ids:
                last[facility_id] = (at, level)
        opens = (
            await db.scalars(
                select(Assessment)
                .join(Facility, Facility.id == Assessment.facility_id)
                .where(Assessment.status != AssessmentStatus.COMPLETED, scope_filter(scope))
                .order_by(Assessment.scheduled_for)
            )
        ).all()
        for a in opens:
            open_by.setdefault(a.facility_id, a)
    soon = now + timedelta(days=due_soon_days)
    out: list[DueEntry] = []
    for f in facilities:
        at, level = last.get(f.id, (None, None))
        next_due: datetime | None = None
        if at is None:
            status = "overdue"  # never assessed
        else:
            months = standard.reassess_months.get(
                level or "", min(standard.reassess_months.values())
            )
            next_due = add_months(at, months)
            status = "overdue" if next_due < now else "due_soon" if next_due <= soon else "ok"
        pending = open_by.get(f.id)
        if pending is not None:
            if pending.scheduled_for < now:
                status = "overdue"  # its date has passed and it is not completed
            elif status != "ok" and (next_due is None or pending.scheduled_for <= next_due):
                status = "scheduled"  # booked before it falls due
        out.append(DueEntry(f, level, at, next_due, status, pending))
    out.sort(
        key=lambda e: (
            STATUS_ORDER[e.status],
            e.next_due or (e.open_assessment.scheduled_for if e.open_assessment else now),
            e.facility.code,
        )
    )
    return out[:limit]


# --- findings -----------------------------------------------------------------------------


def assessment_day(a: Assessment) -> date:
    return (a.started_at or a.scheduled_for).date()


def _finding_snapshot(f: Finding) -> dict[str, Any]:
    return {
        "area": f.area,
        "severity": f.severity,
        "owner": f.owner,
        "due_on": f.due_on.isoformat() if f.due_on else None,
        "status": f.status,
        "description": f.description,
    }


def is_overdue(f: Finding, now: datetime) -> bool:
    return f.status == FindingStatus.OPEN and f.due_on is not None and f.due_on < now.date()


async def add_finding(
    db: AsyncSession, clock: Clock, actor: Actor, a: Assessment, data: FindingCreate
) -> Finding:
    if data.due_on is not None and data.due_on < assessment_day(a):
        raise _bad(
            "due_on",
            f"{data.due_on.isoformat()} is before the assessment ({assessment_day(a).isoformat()})",
        )
    now = clock.now()
    f = Finding(
        assessment_id=a.id,
        facility_id=a.facility_id,
        area=data.area.value,
        severity=data.severity.value,
        description=data.description.strip(),
        owner=data.owner.strip(),
        due_on=data.due_on,
        status=FindingStatus.OPEN,
        closing_note="",
        closed_by="",
        created_at=now,
        updated_at=now,
    )
    if not f.description:
        raise _bad("description", "must not be blank")
    db.add(f)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "assessment.finding_added",
        target_type="assessment_finding",
        target_id=f.id,
        facility_id=a.facility_id,
        details={"assessment_id": a.id, **_finding_snapshot(f)},
    )
    return f


async def get_finding(db: AsyncSession, finding_id: int) -> Finding:
    f = (
        await db.scalars(
            select(Finding)
            .options(selectinload(Finding.assessment))
            .where(Finding.id == finding_id)
        )
    ).first()
    if f is None:
        raise NotFound(f"There is no finding {finding_id}.")
    return f


async def update_finding(
    db: AsyncSession, clock: Clock, actor: Actor, f: Finding, data: FindingUpdate
) -> Finding:
    """Change a finding; closing needs a closing note; reopening clears it."""
    before = _finding_snapshot(f)
    sent = data.model_fields_set
    now = clock.now()
    a = f.assessment
    if "due_on" in sent and data.due_on is not None and data.due_on < assessment_day(a):
        raise _bad(
            "due_on",
            f"{data.due_on.isoformat()} is before the assessment ({assessment_day(a).isoformat()})",
        )
    if "description" in sent:
        if data.description is None or not data.description.strip():
            raise _bad("description", "must not be blank")
        f.description = data.description.strip()
    if "severity" in sent:
        if data.severity is None:
            raise _bad("severity", "cannot be removed")
        f.severity = data.severity.value
    if "owner" in sent:
        f.owner = (data.owner or "").strip()
    if "due_on" in sent:
        f.due_on = data.due_on
    if data.status is not None and data.status != f.status:
        if data.status == FindingStatus.CLOSED:
            note = (data.closing_note or "").strip()
            if not note:
                raise _bad("closing_note", "say how the finding was resolved before closing it")
            f.status = FindingStatus.CLOSED
            f.closing_note = note
            f.closed_at = now
            f.closed_by = _label(actor)
        else:
            f.status = FindingStatus.OPEN
            f.closing_note = ""
            f.closed_at = None
            f.closed_by = ""
    elif "closing_note" in sent and f.status == FindingStatus.CLOSED:
        note = (data.closing_note or "").strip()
        if not note:
            raise _bad("closing_note", "a closed finding keeps its closing note")
        f.closing_note = note
    f.updated_at = now
    await db.flush()
    changes = _diff(before, _finding_snapshot(f))
    if "closing_note" in sent:
        changes["closing_note"] = [None, f.closing_note]
    await audit.record(
        db,
        clock,
        actor,
        "assessment.finding_closed"
        if f.status == FindingStatus.CLOSED and before["status"] != f.status
        else "assessment.finding_updated",
        target_type="assessment_finding",
        target_id=f.id,
        facility_id=f.facility_id,
        details=changes,
    )
    return f


async def list_findings(
    db: AsyncSession,
    scope: Scope,
    now: datetime,
    *,
    facility_id: int | None = None,
    assessment_id: int | None = None,
    status: str | None = None,
    overdue: bool = False,
    area: str | None = None,
    severity: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Finding], int]:
    """Findings in scope, worst first, then soonest due."""
    stmt = select(Finding).join(Facility, Facility.id == Finding.facility_id)
    stmt = stmt.where(scope_filter(scope))
    if facility_id is not None:
        stmt = stmt.where(Finding.facility_id == facility_id)
    if assessment_id is not None:
        stmt = stmt.where(Finding.assessment_id == assessment_id)
    if status:
        stmt = stmt.where(Finding.status == status)
    if overdue:
        stmt = stmt.where(
            Finding.status == FindingStatus.OPEN,
            Finding.due_on.is_not(None),
            Finding.due_on < now.date(),
        )
    if area:
        stmt = stmt.where(Finding.area == area)
    if severity:
        stmt = stmt.where(Finding.severity == severity)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (
        await db.scalars(
            stmt.order_by(
                _severity_rank_expr(),
                Finding.due_on.is_(None),
                Finding.due_on,
                Finding.id,
            )
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return rows, int(total or 0)


# --- evidence -----------------------------------------------------------------------------


def _safe_filename(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*')
    return cleaned[:200] or "evidence"


def attachments_folder(settings: Settings) -> str:
    """Where evidence files are kept: the configured folder, else var_dir/attachments."""
    return settings.assessments_attachments_dir or str(Path(settings.var_dir) / "attachments")


def attachment_path(folder: str, stored_name: str) -> Path:
    return Path(folder) / stored_name


async def add_attachment(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    f: Finding,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    folder: str,
    max_bytes: int,
) -> FindingAttachment:
    """Store an evidence file under `folder` and record it (InvalidInput for an empty, oversize
    or unaccepted file, or one whose bytes are not what its type says)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in ATTACHMENT_TYPES:
        raise _bad(
            "file",
            f"type '{ctype or 'unknown'}' is not accepted; send "
            + ", ".join(sorted(ATTACHMENT_TYPES)),
        )
    if not data:
        raise _bad("file", "is empty")
    if len(data) > max_bytes:
        raise _bad("file", f"is {len(data)} bytes; the limit is {max_bytes}")
    magic = ATTACHMENT_TYPES[ctype]
    if magic is not None and not any(data.startswith(m) for m in magic):
        raise _bad("file", f"its contents are not a {ctype} file")
    if magic is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("file", "a text/plain file must be UTF-8 text") from None
    stored = secrets.token_hex(16)
    path = attachment_path(folder, stored)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        att = FindingAttachment(
            finding_id=f.id,
            filename=_safe_filename(filename),
            content_type=ctype,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            stored_name=stored,
            uploaded_by=_label(actor),
            created_at=clock.now(),
        )
        db.add(att)
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "assessment.evidence_added",
            target_type="assessment_finding",
            target_id=f.id,
            facility_id=f.facility_id,
            details={
                "attachment_id": att.id,
                "filename": att.filename,
                "size": att.size,
                "sha256": att.sha256,
            },
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return att


async def get_attachment(db: AsyncSession, attachment_id: int) -> FindingAttachment:
    att = await db.get(FindingAttachment, attachment_id)
    if att is None:
        raise NotFound(f"There is no attachment {attachment_id}.")
    return att
