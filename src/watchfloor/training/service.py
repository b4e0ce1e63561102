"""The training domain's logic (no HTTP here).

- Courses and role requirements (organisation-wide: editing them needs training:manage with
  organisation scope).
- Completion records: entered one at a time, or imported from an LMS export (CSV) that is checked
  row by row first; a file with any bad row writes nothing.
- Status of each person on each course their role requires: current / due soon / overdue / never,
  from the latest completion's `expires_on` (valid through that day) and the injected clock.
- The overdue list, per-facility and per-course counts (set-based SQL: GROUP BY, never a query per
  facility), the scorecard seam `facility_compliance`, and the daily reminder digest to each
  facility's security managers through the notify domain.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import Perm, Role
from watchfloor.clock import Clock
from watchfloor.people.models import Person, VettingStatus
from watchfloor.problems import Conflict, InvalidInput, NotFound, Problem
from watchfloor.rollout.deadlines import add_months, zone
from watchfloor.sites.models import Facility, Region
from watchfloor.sites.service import scope_filter
from watchfloor.training.models import (
    CompletionSource,
    TrainingCompletion,
    TrainingCourse,
    TrainingImport,
    TrainingReminder,
    TrainingRequirement,
    TrainingStatus,
)

Actor = Principal | str
CHUNK = 500  # ids per IN list
EARLIEST = date(1970, 1, 1)  # completions before this are typing mistakes
STATUS_ORDER = [
    TrainingStatus.OVERDUE,
    TrainingStatus.NEVER,
    TrainingStatus.DUE_SOON,
    TrainingStatus.CURRENT,
]
STATUS_LABELS = {
    TrainingStatus.OVERDUE: "Overdue",
    TrainingStatus.NEVER: "Never done",
    TrainingStatus.DUE_SOON: "Due soon",
    TrainingStatus.CURRENT: "Current",
}
ROLE_VALUES = [r.value for r in Role if r is not Role.DEVICE]


def _label(actor: Actor) -> str:
    return actor.label if isinstance(actor, Principal) else actor


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    items = list(ids)
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def expires_on(completed_on: date, refresh_months: int) -> date:
    """The last day a completion is valid: `refresh_months` calendar months after it was done
    (31 January + 1 month = 28/29 February)."""
    moved = add_months(
        datetime(completed_on.year, completed_on.month, completed_on.day), refresh_months
    )
    return moved.date()


def status_of(expiry: date | None, today: date, due_soon_days: int) -> TrainingStatus:
    """current through `expires_on`, due soon within `due_soon_days` of it, overdue after it."""
    if expiry is None:
        return TrainingStatus.NEVER
    if expiry < today:
        return TrainingStatus.OVERDUE
    if expiry <= today + timedelta(days=due_soon_days):
        return TrainingStatus.DUE_SOON
    return TrainingStatus.CURRENT


def vetting_expired(status: str, expires: date | None, today: date) -> bool:
    return status == VettingStatus.EXPIRED or (expires is not None and expires < today)


def today_of(clock_or_now: Clock | datetime) -> date:
    now = clock_or_now if isinstance(clock_or_now, datetime) else clock_or_now.now()
    return now.date()


# ---------------------------------------------------------------------------- courses


async def courses(db: AsyncSession, *, include_inactive: bool = True) -> list[TrainingCourse]:
    stmt = select(TrainingCourse).order_by(TrainingCourse.position, TrainingCourse.code)
    if not include_inactive:
        stmt = stmt.where(TrainingCourse.active.is_(True))
    return list((await db.execute(stmt)).scalars().all())


async def get_course(db: AsyncSession, code: str) -> TrainingCourse:
    course = (
        await db.execute(select(TrainingCourse).where(TrainingCourse.code == code.upper()))
    ).scalar_one_or_none()
    if course is None:
        raise NotFound(f"No course has the code '{code}'.")
    return course


def _course_snapshot(c: TrainingCourse) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "refresh_months": c.refresh_months,
        "active": c.active,
        "description": c.description,
    }


async def create_course(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    *,
    code: str,
    name: str,
    refresh_months: int,
    description: str = "",
) -> TrainingCourse:
    principal.require_org(Perm.TRAINING_MANAGE)
    code = code.upper()
    if (
        await db.execute(select(TrainingCourse.id).where(TrainingCourse.code == code))
    ).scalar_one_or_none() is not None:
        raise Conflict(f"A course with the code '{code}' exists already.")
    now = clock.now()
    position = (await db.scalar(select(func.max(TrainingCourse.position)))) or 0
    course = TrainingCourse(
        code=code,
        name=name,
        description=description,
        refresh_months=refresh_months,
        position=position + 1,
        active=True,
        created_at=now,
        updated_at=now,
        updated_by=principal.label,
    )
    db.add(course)
    await db.flush()
    await audit.record(
        db, clock, principal, "training.course.create", target_type="training_course",
        target_id=course.code, details=_course_snapshot(course),
    )  # fmt: skip
    return course


async def update_course(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    code: str,
    changes: dict[str, Any],
) -> TrainingCourse:
    """Change a course's name, description, refresh interval or active flag. A new refresh
    interval applies to completions recorded from now on; existing ones keep their expiry."""
    principal.require_org(Perm.TRAINING_MANAGE)
    course = await get_course(db, code)
    before = _course_snapshot(course)
    for key in ("name", "description", "refresh_months", "active"):
        if key in changes and changes[key] is not None:
            setattr(course, key, changes[key])
    course.updated_at, course.updated_by = clock.now(), principal.label
    await db.flush()
    after = _course_snapshot(course)
    await audit.record(
        db, clock, principal, "training.course.update", target_type="training_course",
        target_id=course.code,
        details={"before": before, "after": after},
    )  # fmt: skip
    return course


# ---------------------------------------------------------------------------- requirements


async def requirements(db: AsyncSession) -> list[tuple[str, TrainingCourse]]:
    rows = (
        await db.execute(
            select(TrainingRequirement.role, TrainingCourse)
            .join(TrainingCourse, TrainingCourse.id == TrainingRequirement.course_id)
            .order_by(TrainingRequirement.role, TrainingCourse.position)
        )
    ).all()
    return [(r, c) for r, c in rows]


def _check_role(role: str) -> str:
    if role not in ROLE_VALUES:
        raise InvalidInput(
            f"Unknown role '{role}'. Use one of: {', '.join(ROLE_VALUES)}.",
            errors=[{"loc": ["role"], "msg": "unknown role", "type": "value_error"}],
        )
    return role


async def add_requirement(
    db: AsyncSession, clock: Clock, principal: Principal, role: str, course_code: str
) -> TrainingCourse:
    principal.require_org(Perm.TRAINING_MANAGE)
    _check_role(role)
    course = await get_course(db, course_code)
    exists = (
        await db.execute(
            select(TrainingRequirement.id).where(
                TrainingRequirement.role == role, TrainingRequirement.course_id == course.id
            )
        )
    ).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"The role '{role}' already requires {course.name}.")
    db.add(
        TrainingRequirement(
            role=role, course_id=course.id, created_at=clock.now(), created_by=principal.label
        )
    )
    await db.flush()
    await audit.record(
        db, clock, principal, "training.requirement.add", target_type="training_requirement",
        target_id=f"{role}:{course.code}", details={"role": role, "course": course.code},
    )  # fmt: skip
    return course


async def remove_requirement(
    db: AsyncSession, clock: Clock, principal: Principal, role: str, course_code: str
) -> None:
    principal.require_org(Perm.TRAINING_MANAGE)
    course = await get_course(db, course_code)
    req = (
        await db.execute(
            select(TrainingRequirement).where(
                TrainingRequirement.role == role, TrainingRequirement.course_id == course.id
            )
        )
    ).scalar_one_or_none()
    if req is None:
        raise NotFound(f"The role '{role}' does not require {course.name}.")
    await db.delete(req)
    await db.flush()
    await audit.record(
        db, clock, principal, "training.requirement.remove", target_type="training_requirement",
        target_id=f"{role}:{course.code}", details={"role": role, "course": course.code},
    )  # fmt: skip


# ---------------------------------------------------------------------------- people and scope


async def person_in_scope(
    db: AsyncSession, principal: Principal, perm: Perm, employee_id: str
) -> Person:
    """The person with this employee id if `perm` covers their facility; else 404 (the same
    answer as for an unknown id, so another facility's staff cannot be probed)."""
    person = (
        await db.execute(select(Person).where(Person.employee_id == employee_id[:40]))
    ).scalar_one_or_none()
    if person is None or not principal.allows(
        perm, facility_id=person.facility_id, region_id=person.facility.region_id
    ):
        raise NotFound(f"No person has the employee id '{employee_id}'.")
    return person


# ---------------------------------------------------------------------------- completions


async def record_completion(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    *,
    employee_id: str,
    course_code: str,
    completed_on: date,
    note: str = "",
) -> TrainingCompletion:
    """Enter one completion. The person must be in the caller's training:manage scope; the date
    may not be in the future nor before 1970; the same person, course and date twice is 409."""
    person = await person_in_scope(db, principal, Perm.TRAINING_MANAGE, employee_id)
    try:
        course = await get_course(db, course_code)
    except NotFound:
        raise InvalidInput(
            f"No course has the code '{course_code}'.",
            errors=[
                {"loc": ["body", "course_code"], "msg": "unknown course", "type": "value_error"}
            ],
        ) from None
    problem = _date_problem(completed_on, today_of(clock))
    if problem:
        raise InvalidInput(
            f"completed_on: {problem}",
            errors=[{"loc": ["body", "completed_on"], "msg": problem, "type": "value_error"}],
        )
    dup = (
        await db.execute(
            select(TrainingCompletion.id).where(
                TrainingCompletion.person_id == person.id,
                TrainingCompletion.course_id == course.id,
                TrainingCompletion.completed_on == completed_on,
            )
        )
    ).scalar_one_or_none()
    if dup is not None:
        raise Conflict(
            f"{person.given_name} {person.family_name}'s {course.name} of {completed_on} is on "
            "record already."
        )
    rec = TrainingCompletion(
        person_id=person.id,
        course_id=course.id,
        completed_on=completed_on,
        expires_on=expires_on(completed_on, course.refresh_months),
        source=CompletionSource.ENTERED,
        note=note,
        recorded_by=principal.label,
        recorded_at=clock.now(),
    )
    db.add(rec)
    await db.flush()
    await audit.record(
        db, clock, principal, "training.completion.add", target_type="training_completion",
        target_id=rec.id, facility_id=person.facility_id,
        details={"employee_id": person.employee_id, "course": course.code,
                 "completed_on": completed_on.isoformat(),
                 "expires_on": rec.expires_on.isoformat()},
    )  # fmt: skip
    return rec


async def delete_completion(
    db: AsyncSession, clock: Clock, principal: Principal, completion_id: int
) -> None:
    """Remove a completion recorded by mistake (training:manage at the person's facility)."""
    row = (
        await db.execute(
            select(TrainingCompletion, Person, TrainingCourse)
            .join(Person, Person.id == TrainingCompletion.person_id)
            .join(TrainingCourse, TrainingCourse.id == TrainingCompletion.course_id)
            .where(TrainingCompletion.id == completion_id)
        )
    ).one_or_none()
    if row is None or not principal.allows(
        Perm.TRAINING_MANAGE, facility_id=row[1].facility_id, region_id=row[1].facility.region_id
    ):
        raise NotFound(f"There is no training record {completion_id}.")
    rec, person, course = row
    await db.delete(rec)
    await db.flush()
    await audit.record(
        db, clock, principal, "training.completion.delete", target_type="training_completion",
        target_id=completion_id, facility_id=person.facility_id,
        details={"employee_id": person.employee_id, "course": course.code,
                 "completed_on": rec.completed_on.isoformat(), "source": rec.source},
    )  # fmt: skip


@dataclass(frozen=True)
class RecordFilter:
    facility_code: str | None = None
    region_code: str | None = None
    course_code: str | None = None
    employee_id: str | None = None


def _filters(f: RecordFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.facility_code:
        conds.append(Facility.code == f.facility_code)
    if f.region_code:
        conds.append(Region.code == f.region_code)
    if f.course_code:
        conds.append(TrainingCourse.code == f.course_code.upper())
    if f.employee_id:
        conds.append(Person.employee_id == f.employee_id)
    return conds


async def list_completions(
    db: AsyncSession, scope: Scope, f: RecordFilter, *, limit: int = 100, offset: int = 0
) -> tuple[list[tuple[TrainingCompletion, Person, Facility, TrainingCourse]], int]:
    """Completion records in scope, newest first."""
    base = (
        select(TrainingCompletion, Person, Facility, TrainingCourse)
        .join(Person, Person.id == TrainingCompletion.person_id)
        .join(Facility, Facility.id == Person.facility_id)
        .join(Region, Region.id == Facility.region_id)
        .join(TrainingCourse, TrainingCourse.id == TrainingCompletion.course_id)
        .where(scope_filter(scope), *_filters(f))
    )
    total = (await db.scalar(select(func.count()).select_from(base.subquery()))) or 0
    rows = (
        await db.execute(
            base.order_by(TrainingCompletion.completed_on.desc(), TrainingCompletion.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return [(c, p, fa, co) for c, p, fa, co in rows], total


# ---------------------------------------------------------------------------- status queries


def _latest() -> Any:
    return (
        select(
            TrainingCompletion.person_id,
            TrainingCompletion.course_id,
            func.max(TrainingCompletion.expires_on).label("expires_on"),
        )
        .group_by(TrainingCompletion.person_id, TrainingCompletion.course_id)
        .subquery("latest")
    )


def _status_expr(expiry: Any, today: date, due_soon_days: int) -> Any:
    return case(
        (expiry.is_(None), literal(TrainingStatus.NEVER.value)),
        (expiry < today, literal(TrainingStatus.OVERDUE.value)),
        (expiry <= today + timedelta(days=due_soon_days), literal(TrainingStatus.DUE_SOON.value)),
        else_=literal(TrainingStatus.CURRENT.value),
    )


def _pairs(latest: Any) -> Select[Any]:
    """(active person, required active course) pairs with the latest expiry (None: never)."""
    return (
        select(Person.id)
        .select_from(Person)
        .join(TrainingRequirement, TrainingRequirement.role == Person.role)
        .join(
            TrainingCourse,
            and_(
                TrainingCourse.id == TrainingRequirement.course_id,
                TrainingCourse.active.is_(True),
            ),
        )
        .outerjoin(
            latest,
            and_(
                latest.c.person_id == Person.id,
                latest.c.course_id == TrainingRequirement.course_id,
            ),
        )
        .where(Person.active.is_(True))
    )


def _counts_cols(st: Any) -> list[Any]:
    return [func.sum(case((st == s.value, 1), else_=0)).label(s.value) for s in STATUS_ORDER] + [
        func.count().label("total")
    ]


def _counts(row: Any) -> dict[str, int]:
    return {
        **{s.value: int(getattr(row, s.value) or 0) for s in STATUS_ORDER},
        "total": int(row.total or 0),
    }


@dataclass
class FacilityRow:
    code: str
    name: str
    region_code: str
    timezone: str
    counts: dict[str, int]
    vetting_expired: int = 0

    @property
    def behind(self) -> int:
        return self.counts["overdue"] + self.counts["never"]


@dataclass
class Overview:
    as_of: datetime
    totals: dict[str, int]
    by_course: list[tuple[str, str, dict[str, int]]]  # code, name, counts
    facilities: list[FacilityRow]  # most behind first
    vetting_expired: int = 0
    people: int = 0


def _empty_counts() -> dict[str, int]:
    return {**{s.value: 0 for s in STATUS_ORDER}, "total": 0}


async def overview(
    db: AsyncSession, scope: Scope, now: datetime, due_soon_days: int, f: RecordFilter
) -> Overview:
    """Counts per course and per facility (GROUP BY), and expired vetting per facility."""
    today = today_of(now)
    latest = _latest()
    st = _status_expr(latest.c.expires_on, today, due_soon_days)
    base = (
        _pairs(latest)
        .join(Facility, Facility.id == Person.facility_id)
        .join(Region, Region.id == Facility.region_id)
        .where(
            scope_filter(scope),
            *_filters(RecordFilter(f.facility_code, f.region_code, f.course_code)),
        )
    )
    by_course_rows = (
        await db.execute(
            base.with_only_columns(TrainingCourse.code, TrainingCourse.name, *_counts_cols(st))
            .group_by(TrainingCourse.code, TrainingCourse.name, TrainingCourse.position)
            .order_by(TrainingCourse.position)
        )
    ).all()
    by_fac_rows = (
        await db.execute(
            base.with_only_columns(
                Facility.id, Facility.code, Facility.name, Facility.timezone,
                Region.code.label("rc"), *_counts_cols(st),
            ).group_by(Facility.id, Facility.code, Facility.name, Facility.timezone, Region.code)
        )
    ).all()  # fmt: skip
    vet_q = (
        select(Facility.id, func.count())
        .select_from(Person)
        .join(Facility, Facility.id == Person.facility_id)
        .join(Region, Region.id == Facility.region_id)
        .where(
            scope_filter(scope),
            Person.active.is_(True),
            or_(
                Person.vetting_status == VettingStatus.EXPIRED.value,
                Person.vetting_expires_on < today,
            ),
            *_filters(RecordFilter(f.facility_code, f.region_code)),
        )
        .group_by(Facility.id)
    )
    vet = {fid: int(n) for fid, n in (await db.execute(vet_q)).all()}
    facilities = [
        FacilityRow(r.code, r.name, r.rc, r.timezone, _counts(r), vet.get(r.id, 0))
        for r in by_fac_rows
    ]
    facilities.sort(key=lambda x: (-x.behind, -x.vetting_expired, -x.counts["due_soon"], x.code))
    totals = _empty_counts()
    for fr in facilities:
        for k, v in fr.counts.items():
            totals[k] += v
    people = (
        await db.scalar(
            select(func.count())
            .select_from(Person)
            .join(Facility, Facility.id == Person.facility_id)
            .join(Region, Region.id == Facility.region_id)
            .where(
                scope_filter(scope),
                Person.active.is_(True),
                *_filters(RecordFilter(f.facility_code, f.region_code)),
            )
        )
    ) or 0
    return Overview(
        as_of=now,
        totals=totals,
        by_course=[(r.code, r.name, _counts(r)) for r in by_course_rows],
        facilities=facilities,
        vetting_expired=sum(vet.values()),
        people=int(people),
    )


@dataclass
class StatusRow:
    person: Person
    facility: Facility
    course: TrainingCourse
    status: TrainingStatus
    expires_on: date | None
    days_overdue: int | None  # None for never / not yet expired
    vetting_expired: bool


async def status_rows(
    db: AsyncSession,
    scope: Scope,
    now: datetime,
    due_soon_days: int,
    f: RecordFilter,
    *,
    statuses: Sequence[TrainingStatus] = (TrainingStatus.OVERDUE, TrainingStatus.NEVER),
    limit: int = 200,
    offset: int = 0,
) -> tuple[list[StatusRow], int]:
    """(person, required course) pairs in scope with one of `statuses`: never done first, then
    the longest expired, then due soon by expiry."""
    today = today_of(now)
    latest = _latest()
    st = _status_expr(latest.c.expires_on, today, due_soon_days)
    base = (
        _pairs(latest)
        .join(Facility, Facility.id == Person.facility_id)
        .join(Region, Region.id == Facility.region_id)
        .where(scope_filter(scope), *_filters(f), st.in_([s.value for s in statuses]))
    )
    total = (await db.scalar(select(func.count()).select_from(base.subquery()))) or 0
    rank = case(
        (latest.c.expires_on.is_(None), 0),
        (latest.c.expires_on < today, 1),
        else_=2,
    )
    rows = (
        await db.execute(
            base.with_only_columns(Person, Facility, TrainingCourse, latest.c.expires_on)
            .order_by(rank, latest.c.expires_on, Facility.code, Person.family_name, Person.id,
                      TrainingCourse.position)
            .limit(limit)
            .offset(offset)
        )
    ).all()  # fmt: skip
    out = []
    for person, fac, course, expiry in rows:
        s = status_of(expiry, today, due_soon_days)
        out.append(
            StatusRow(
                person=person,
                facility=fac,
                course=course,
                status=s,
                expires_on=expiry,
                days_overdue=(today - expiry).days
                if s is TrainingStatus.OVERDUE and expiry
                else None,
                vetting_expired=vetting_expired(
                    person.vetting_status, person.vetting_expires_on, today
                ),
            )
        )
    return out, int(total)


@dataclass
class PersonCourse:
    course: TrainingCourse
    required: bool
    status: TrainingStatus | None  # None: not required and never done
    expires_on: date | None
    completions: list[TrainingCompletion] = field(default_factory=list)


async def person_training(
    db: AsyncSession, person: Person, now: datetime, due_soon_days: int
) -> list[PersonCourse]:
    """Every required course (most urgent first) and every other course with a record."""
    today = today_of(now)
    required = set(
        (
            await db.execute(
                select(TrainingRequirement.course_id).where(TrainingRequirement.role == person.role)
            )
        )
        .scalars()
        .all()
    )
    recs = (
        (
            await db.execute(
                select(TrainingCompletion)
                .where(TrainingCompletion.person_id == person.id)
                .order_by(TrainingCompletion.completed_on.desc())
            )
        )
        .scalars()
        .all()
    )
    by_course: dict[int, list[TrainingCompletion]] = {}
    for r in recs:
        by_course.setdefault(r.course_id, []).append(r)
    out: list[PersonCourse] = []
    for c in await courses(db):
        mine = by_course.get(c.id, [])
        is_req = c.id in required and c.active
        if not is_req and not mine:
            continue
        expiry = max((r.expires_on for r in mine), default=None)
        out.append(
            PersonCourse(
                course=c,
                required=is_req,
                status=status_of(expiry, today, due_soon_days) if (is_req or mine) else None,
                expires_on=expiry,
                completions=mine,
            )
        )
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    out.sort(key=lambda pc: (not pc.required, order.get(pc.status, 9) if pc.status else 9))
    return out


# ---------------------------------------------------------------------------- scorecard seam


@dataclass
class FacilityCompliance:
    """One facility's training compliance, as the preparedness scorecard shows it."""

    status: str  # "in_place" | "under_review" | "gap" | "not_tracked"
    priority: str  # "high" | "medium" | "low"
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (text, console link)


async def facility_compliance(
    db: AsyncSession,
    facility_ids: Sequence[int],
    now: datetime,
    *,
    with_reasons: bool = True,
    due_soon_days: int | None = None,
    gap_share: float | None = None,
) -> dict[int, FacilityCompliance]:
    """Compliance of each facility named (a facility left out is "not tracked"). The scorecard
    roll-up calls this for every facility in scope (10,000 and more) with with_reasons=False.

    Over the facility's active staff and the courses their roles require: more than `gap_share`
    of the (person, course) pairs overdue or never done → gap (high); any overdue, never or due
    soon → under review (medium); all current → in place (low); no staff under a requirement →
    left out. One GROUP BY query per 500 facility ids, or one over every facility when more are
    asked for."""
    if due_soon_days is None or gap_share is None:
        from watchfloor.config import get_settings

        settings = get_settings()
        due_soon_days = settings.training_due_soon_days if due_soon_days is None else due_soon_days
        gap_share = settings.training_gap_share if gap_share is None else gap_share
    today = today_of(now)
    latest = _latest()
    st = _status_expr(latest.c.expires_on, today, due_soon_days)
    result: dict[int, FacilityCompliance] = {}
    codes: dict[int, str] = {}
    wanted = set(facility_ids)
    # Many facilities (the scorecard's roll-up): one pass over every facility, the ones not
    # asked for dropped here; a few: one query per 500 ids.
    chunks: list[list[int] | None] = (
        [None] if len(wanted) > CHUNK else list(_chunks(sorted(wanted)))
    )
    for chunk in chunks:
        stmt = (
            _pairs(latest)
            .with_only_columns(Person.facility_id, *_counts_cols(st))
            .group_by(Person.facility_id)
        )
        if chunk is not None:
            stmt = stmt.where(Person.facility_id.in_(chunk))
        for row in (await db.execute(stmt)).all():
            if row.facility_id not in wanted:
                continue
            c = _counts(row)
            if not c["total"]:
                continue
            behind = c["overdue"] + c["never"]
            if behind / c["total"] > gap_share:
                comp = FacilityCompliance("gap", "high")
            elif behind or c["due_soon"]:
                comp = FacilityCompliance("under_review", "medium")
            else:
                comp = FacilityCompliance("in_place", "low")
            if with_reasons:
                comp.reasons = _reasons(c)
            result[row.facility_id] = comp
    if with_reasons and result:
        for chunk_ids in _chunks(sorted(result)):
            for fid, code in (
                await db.execute(
                    select(Facility.id, Facility.code).where(Facility.id.in_(chunk_ids))
                )
            ).all():
                codes[fid] = code
    if with_reasons:
        for fid, comp in result.items():
            link = f"/training?facility={codes.get(fid, '')}"
            comp.reasons = [(text, link) for text, _l in comp.reasons]
    return result


def _reasons(c: dict[str, int]) -> list[tuple[str, str]]:
    total = c["total"]
    out: list[tuple[str, str]] = []
    if c["overdue"]:
        out.append((f"Overdue: {c['overdue']} of {total} required trainings have expired", ""))
    if c["never"]:
        out.append((f"Never done: {c['never']} of {total} required trainings", ""))
    if c["due_soon"]:
        out.append((f"Due soon: {c['due_soon']} of {total} required trainings", ""))
    if not out:
        out.append((f"All {total} required trainings are current", ""))
    return out


# ---------------------------------------------------------------------------- LMS import

HEADER_ALIASES: dict[str, set[str]] = {
    "employee_id": {
        "employee_id", "employeeid", "employee", "employee_number", "employee_no", "emp_id",
        "empid", "staff_id", "staff_number", "person_id", "user_id", "learner_id",
    },
    "course_code": {
        "course_code", "coursecode", "course", "course_id", "courseid", "course_no",
        "training_code", "training", "module_code", "item_id",
    },
    "completed_on": {
        "completed_on", "completed", "completion_date", "completed_date", "date_completed",
        "completion", "completed_at", "date", "finished_on", "passed_on",
    },
}  # fmt: skip
REQUIRED_COLUMNS = ("employee_id", "course_code", "completed_on")
MAX_ERRORS_SHOWN = 1000


def _norm_header(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in text.strip().lower())
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def parse_date(text: str) -> date | None:
    """YYYY-MM-DD (also with a time after it, or with / for -); None when it is not a date."""
    value = text.strip()
    if len(value) >= 10 and value[4] in "-/" and value[7] in "-/":
        try:
            return date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
        except ValueError:
            return None
    return None


def _date_problem(value: date, today: date) -> str:
    if value > today:
        return f"{value.isoformat()} is in the future (today is {today.isoformat()})"
    if value < EARLIEST:
        return f"{value.isoformat()} is before {EARLIEST.year}: check the year"
    return ""


@dataclass
class RowError:
    row: int  # spreadsheet row: the header is row 1
    column: str
    value: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "msg": self.problem,
            "loc": ["file", f"row {self.row}", self.column],
            "type": "value_error",
        }


class ImportRejected(InvalidInput):
    """The file has bad rows; nothing was written. `row_errors` names each."""

    def __init__(self, detail: str, row_errors: list[RowError], total: int) -> None:
        super().__init__(detail, errors=[e.as_dict() for e in row_errors[:MAX_ERRORS_SHOWN]])
        self.row_errors = row_errors
        self.total_errors = total


@dataclass
class ImportOutcome:
    import_id: int
    rows: int
    added: int
    skipped: int
    facilities: int


ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


def read_lms_csv(
    data: bytes, *, max_bytes: int, max_rows: int
) -> tuple[list[str], list[dict[str, str]]]:
    """The export's rows (header mapped to employee_id / course_code / completed_on). Raises 413
    for a file too large, 422 for one that is not CSV text with those columns."""
    if len(data) > max_bytes:
        raise Problem(
            f"The file is {len(data):,} bytes; at most {max_bytes:,} are accepted. Split it, or "
            "use `watchfloor training import` on the server.",
            status=413,
            slug="payload-too-large",
            errors=[{"loc": ["file"], "msg": "file too large", "type": "too_large"}],
        )
    if b"\x00" in data:
        raise _not_csv("it contains binary data (is it a spreadsheet? Save it as CSV)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise _not_csv("it is not text in UTF-8 or Windows-1252") from None
    if not text.strip():
        raise _not_csv("it is empty")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise _not_csv("it has no header row") from None
    mapping: dict[int, str] = {}
    for i, name in enumerate(header):
        key = _norm_header(name)
        for column, aliases in HEADER_ALIASES.items():
            if key in aliases and column not in mapping.values():
                mapping[i] = column
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping.values()]
    if missing:
        raise _not_csv(
            f"the header row has no column {', '.join(missing)} (found: "
            f"{', '.join(h.strip() for h in header[:12]) or 'nothing'})"
        )
    rows: list[dict[str, str]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                rows.append({})  # a blank line keeps the row numbers right; skipped later
                continue
            rows.append({col: (cells[i] if i < len(cells) else "") for i, col in mapping.items()})
            if len(rows) > max_rows:
                raise Problem(
                    f"The file has more than {max_rows:,} rows; split it.",
                    status=413,
                    slug="payload-too-large",
                    errors=[{"loc": ["file"], "msg": "too many rows", "type": "too_large"}],
                )
    except csv.Error as exc:
        raise _not_csv(f"row {reader.line_num}: {exc}") from None
    return header, rows


def _not_csv(why: str) -> InvalidInput:
    return InvalidInput(
        f"This is not an LMS export we can read: {why}. Send a CSV file with the columns "
        "employee_id, course_code and completed_on (YYYY-MM-DD).",
        errors=[{"loc": ["file"], "msg": why, "type": "value_error"}],
    )


async def import_completions(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int,
    max_rows: int,
    progress: ProgressFn | None = None,
) -> ImportOutcome:
    """Check every row of an LMS export, then write its new completions and one import record
    (and one audit record with the counts). Any bad row: ImportRejected (422) naming every bad
    row, and nothing is written. A row already on record (same person, course and date), or
    repeated in the file, is skipped: importing the same file twice adds nothing. The caller
    commits."""
    principal.require_anywhere(Perm.TRAINING_MANAGE)
    _header, rows = read_lms_csv(data, max_bytes=max_bytes, max_rows=max_rows)
    today = today_of(clock)
    total = len(rows)
    course_by_code = {c.code: c for c in await courses(db)}
    course_by_name = {c.name.strip().lower(): c for c in course_by_code.values()}
    wanted = sorted({r.get("employee_id", "").strip() for r in rows if r} - {""})
    people: dict[str, tuple[int, int, int]] = {}  # employee id -> (person id, facility, region)
    for chunk_start in range(0, len(wanted), CHUNK):
        emp_chunk = wanted[chunk_start : chunk_start + CHUNK]
        for pid, emp, fid, rid in (
            await db.execute(
                select(Person.id, Person.employee_id, Person.facility_id, Facility.region_id)
                .join(Facility, Facility.id == Person.facility_id)
                .where(Person.employee_id.in_(emp_chunk))
            )
        ).all():
            if principal.allows(Perm.TRAINING_MANAGE, facility_id=fid, region_id=rid):
                people[emp] = (pid, fid, rid)
        if progress:
            progress("checking", min(chunk_start + CHUNK, len(wanted)), max(len(wanted), 1))
    errors: list[RowError] = []
    good: list[tuple[int, int, int, date, int]] = []  # row, person, course, date, facility
    for n, r in enumerate(rows, start=2):
        if not r:
            continue
        emp = r.get("employee_id", "").strip()
        code = r.get("course_code", "").strip()
        when = r.get("completed_on", "").strip()
        row_ok = True
        if not emp:
            errors.append(RowError(n, "employee_id", emp, "empty"))
            row_ok = False
        elif emp not in people:
            errors.append(
                RowError(
                    n, "employee_id", emp[:80], "no person with this employee id in your facilities"
                )
            )
            row_ok = False
        course = course_by_code.get(code.upper()) or course_by_name.get(code.lower())
        if not code:
            errors.append(RowError(n, "course_code", code, "empty"))
            row_ok = False
        elif course is None:
            errors.append(
                RowError(n, "course_code", code[:80],
                         f"unknown course (known: {', '.join(sorted(course_by_code))})")
            )  # fmt: skip
            row_ok = False
        parsed = parse_date(when) if when else None
        if not when:
            errors.append(RowError(n, "completed_on", when, "empty"))
            row_ok = False
        elif parsed is None:
            errors.append(RowError(n, "completed_on", when[:80], "not a date: write YYYY-MM-DD"))
            row_ok = False
        else:
            why = _date_problem(parsed, today)
            if why:
                errors.append(RowError(n, "completed_on", when[:80], why))
                row_ok = False
        if row_ok and course is not None and parsed is not None:
            pid, fid, _rid = people[emp]
            good.append((n, pid, course.id, parsed, fid))
    if errors:
        bad_rows = len({e.row for e in errors})
        raise ImportRejected(
            f"Nothing was imported: {bad_rows} of {total} rows have problems "
            f"({len(errors)} in all). Fix them and send the whole file again.",
            errors,
            len(errors),
        )
    # skip what is on record already, and repeats inside the file
    seen: set[tuple[int, int, date]] = set()
    person_ids = sorted({g[1] for g in good})
    for chunk in _chunks(person_ids):
        for pid, cid, done_on in (
            await db.execute(
                select(
                    TrainingCompletion.person_id,
                    TrainingCompletion.course_id,
                    TrainingCompletion.completed_on,
                ).where(TrainingCompletion.person_id.in_(chunk))
            )
        ).all():
            seen.add((pid, cid, done_on))
    now = clock.now()
    refresh = {c.id: c.refresh_months for c in course_by_code.values()}
    new_rows: list[dict[str, Any]] = []
    facilities: set[int] = set()
    for _n, pid, cid, done_on, fid in good:
        key = (pid, cid, done_on)
        if key in seen:
            continue
        seen.add(key)
        facilities.add(fid)
        new_rows.append(
            {
                "person_id": pid,
                "course_id": cid,
                "completed_on": done_on,
                "expires_on": expires_on(done_on, refresh[cid]),
                "source": CompletionSource.LMS_IMPORT.value,
                "note": "",
                "recorded_by": principal.label,
                "recorded_at": now,
            }
        )
    imp = TrainingImport(
        filename="".join(ch for ch in filename if ch.isprintable())[:200],
        sha256=hashlib.sha256(data).hexdigest(),
        imported_at=now,
        imported_by=principal.label,
        rows=len([r for r in rows if r]),
        added=len(new_rows),
        skipped=len(good) - len(new_rows),
        facility_ids=sorted(facilities),
    )
    db.add(imp)
    await db.flush()
    from sqlalchemy import insert

    for start in range(0, len(new_rows), 2000):
        batch = [{**r, "import_id": imp.id} for r in new_rows[start : start + 2000]]
        await db.execute(insert(TrainingCompletion), batch)
        if progress:
            progress("writing", min(start + 2000, len(new_rows)), len(new_rows))
    await audit.record(
        db, clock, principal, "training.import", target_type="training_import",
        target_id=imp.id,
        facility_id=next(iter(facilities)) if len(facilities) == 1 else None,
        details={"filename": imp.filename, "sha256": imp.sha256, "rows": imp.rows,
                 "added": imp.added, "skipped": imp.skipped, "facilities": len(facilities)},
    )  # fmt: skip
    return ImportOutcome(imp.id, imp.rows, imp.added, imp.skipped, len(facilities))


async def list_imports(db: AsyncSession, scope: Scope, *, limit: int = 50) -> list[TrainingImport]:
    """Imports whose every facility is in scope (all of them for organisation scope)."""
    rows = (
        (
            await db.execute(
                select(TrainingImport).order_by(TrainingImport.id.desc()).limit(limit * 5)
            )
        )
        .scalars()
        .all()
    )
    if scope.everything:
        return list(rows[:limit])
    ids = {i for r in rows for i in r.facility_ids}
    region_of = {}
    if ids and scope.region_ids:
        region_of = dict(
            (
                await db.execute(
                    select(Facility.id, Facility.region_id).where(Facility.id.in_(ids))
                )
            ).all()
        )

    def covered(fid: int) -> bool:
        return fid in scope.facility_ids or region_of.get(fid) in scope.region_ids

    return [r for r in rows if r.facility_ids and all(covered(f) for f in r.facility_ids)][:limit]


# ---------------------------------------------------------------------------- reminders


@dataclass
class ReminderOutcome:
    facility_code: str
    facility_name: str
    sent: bool
    why: str  # what happened, in words
    overdue: int = 0
    due_soon: int = 0
    recipients: int = 0


MAX_LINES = 12


async def _reminder_body(
    db: AsyncSession, facility: Facility, now: datetime, due_soon_days: int, public_url: str
) -> tuple[str, int, int]:
    scope = Scope(everything=False, facility_ids=frozenset({facility.id}))
    rows, total = await status_rows(
        db, scope, now, due_soon_days, RecordFilter(),
        statuses=(TrainingStatus.OVERDUE, TrainingStatus.NEVER, TrainingStatus.DUE_SOON),
        limit=MAX_LINES,
    )  # fmt: skip
    ov = await overview(db, scope, now, due_soon_days, RecordFilter())
    behind, soon = ov.totals["overdue"] + ov.totals["never"], ov.totals["due_soon"]
    lines = []
    for r in rows:
        what = {
            TrainingStatus.NEVER: "never done",
            TrainingStatus.OVERDUE: f"expired {r.expires_on}",
            TrainingStatus.DUE_SOON: f"expires {r.expires_on}",
        }.get(r.status, "")
        lines.append(f"- {r.person.given_name} {r.person.family_name}: {r.course.name} ({what})")
    if total > len(rows):
        lines.append(f"- and {total - len(rows)} more")
    link = f"{public_url.rstrip('/')}/training?facility={facility.code}"
    message = (
        f"Training at {facility.name}: {behind} overdue or never done, {soon} due within "
        f"{due_soon_days} days.\n" + "\n".join(lines)
    )
    message = message[: 990 - len(link) - 10] + f"\nOpen: {link}"
    return message, behind, soon


def local_day(now: datetime, tz: str) -> date:
    return now.astimezone(zone(tz)).date()


async def send_reminder(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    facility: Facility,
    *,
    due_soon_days: int,
    public_url: str = "",
    trigger: str = "manual",
) -> ReminderOutcome:
    """The facility's digest of staff overdue or due soon, to its security managers (people
    there with role facility_manager) through notify's send_alert. At most one per facility and
    facility-local day (a second call that day sends nothing); nothing when nobody is behind.
    Flushes; the caller commits."""
    now = clock.now()
    day = local_day(now, facility.timezone)
    done = (
        await db.execute(
            select(TrainingReminder).where(
                TrainingReminder.facility_id == facility.id, TrainingReminder.day == day
            )
        )
    ).scalar_one_or_none()
    if done is not None:
        at = done.sent_at.astimezone(zone(facility.timezone)).strftime("%H:%M")
        return ReminderOutcome(
            facility.code, facility.name, False, f"already sent today at {at} (local time)"
        )
    message, behind, soon = await _reminder_body(db, facility, now, due_soon_days, public_url)
    if not behind and not soon:
        return ReminderOutcome(facility.code, facility.name, False, "nobody is overdue or due soon")
    managers = (
        await db.scalar(
            select(func.count())
            .select_from(Person)
            .where(
                Person.facility_id == facility.id,
                Person.role == Role.FACILITY_MANAGER.value,
                Person.active.is_(True),
            )
        )
    ) or 0
    alert_id = None
    recipients = 0
    if managers:
        from watchfloor.notify.service import Audience, send_alert

        alert = await send_alert(
            db,
            clock,
            template="custom",
            facility_ids=[facility.id],
            audience=Audience(roles=[Role.FACILITY_MANAGER.value]),
            context={
                "headline": f"Training overdue at {facility.name}",
                "message": message,
                "instruction": "Book the listed staff on their courses, then record the "
                "completions in Watchfloor.",
            },
            sender=_label(actor),
            key=f"training-reminder-{facility.id}-{day.isoformat()}",
        )
        alert_id, recipients = alert.id, alert.recipient_count
    db.add(
        TrainingReminder(
            facility_id=facility.id,
            day=day,
            sent_at=now,
            sent_by=_label(actor),
            trigger=trigger,
            overdue=behind,
            due_soon=soon,
            recipients=recipients,
            alert_id=alert_id,
        )
    )
    await db.flush()
    await audit.record(
        db, clock, actor, "training.reminder.send", target_type="facility",
        target_id=facility.code, facility_id=facility.id,
        details={"day": day.isoformat(), "trigger": trigger, "overdue": behind,
                 "due_soon": soon, "recipients": recipients, "alert_id": alert_id},
    )  # fmt: skip
    why = (
        f"sent to {recipients} manager(s)"
        if managers
        else "no security manager on record at this facility: nothing sent"
    )
    return ReminderOutcome(
        facility.code, facility.name, bool(managers), why, behind, soon, recipients
    )


async def facilities_behind(
    db: AsyncSession, scope: Scope, now: datetime, due_soon_days: int
) -> list[Facility]:
    """Facilities in scope with anyone overdue, never done or due soon (one GROUP BY)."""
    today = today_of(now)
    latest = _latest()
    st = _status_expr(latest.c.expires_on, today, due_soon_days)
    ids = (
        (
            await db.execute(
                _pairs(latest)
                .with_only_columns(Person.facility_id)
                .join(Facility, Facility.id == Person.facility_id)
                .where(scope_filter(scope), st != TrainingStatus.CURRENT.value)
                .group_by(Person.facility_id)
            )
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    out: list[Facility] = []
    for chunk in _chunks(sorted(ids)):
        out.extend(
            (await db.execute(select(Facility).where(Facility.id.in_(chunk)))).scalars().all()
        )
    return sorted(out, key=lambda f: f.code)


async def send_due_reminders(
    sessionmaker: Any,
    clock: Clock,
    *,
    due_soon_days: int,
    hour: int,
    public_url: str = "",
) -> list[ReminderOutcome]:
    """The daily pass: every facility with staff behind whose local time is past `hour` and
    that has had no reminder today gets one (each in its own transaction; a unique index on
    (facility, day) keeps two processes from both sending)."""
    now = clock.now()
    async with sessionmaker() as db:
        candidates = await facilities_behind(db, Scope(everything=True), now, due_soon_days)
        sent_today = {
            (fid, d)
            for fid, d in (
                await db.execute(
                    select(TrainingReminder.facility_id, TrainingReminder.day).where(
                        TrainingReminder.sent_at >= now - timedelta(days=2)
                    )
                )
            ).all()
        }
    outcomes: list[ReminderOutcome] = []
    for fac in candidates:
        local = now.astimezone(zone(fac.timezone))
        if local.hour < hour or (fac.id, local.date()) in sent_today:
            continue
        async with sessionmaker() as db:
            facility = await db.get(Facility, fac.id)
            if facility is None:
                continue
            try:
                outcome = await send_reminder(
                    db, clock, "system:training-reminders", facility,
                    due_soon_days=due_soon_days, public_url=public_url, trigger="schedule",
                )  # fmt: skip
                await db.commit()
            except IntegrityError:  # another process sent it first
                await db.rollback()
                continue
            outcomes.append(outcome)
    return outcomes


async def list_reminders(
    db: AsyncSession, scope: Scope, *, limit: int = 100
) -> list[tuple[TrainingReminder, Facility]]:
    rows = (
        await db.execute(
            select(TrainingReminder, Facility)
            .join(Facility, Facility.id == TrainingReminder.facility_id)
            .where(scope_filter(scope))
            .order_by(TrainingReminder.sent_at.desc(), TrainingReminder.id.desc())
            .limit(limit)
        )
    ).all()
    return [(r, f) for r, f in rows]
