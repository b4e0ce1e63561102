"""The drills domain's logic (no HTTP here).

Requirements (organisation-wide required kinds with an interval), per-facility schedules
(RFC 5545 RRULEs on the facility's wall clock), drills as run, their participants, after-action
reports and corrective actions, and the compliance view. Every change takes a clock and the acting
Principal, writes its audit record in the caller's transaction and leaves the commit to the caller.

A lockdown-kind drill (LOCKDOWN_KINDS) starts a lockdown through the lockdown domain's service in
EXERCISE mode; the roll-call domain starts the EXERCISE roll call on that lockdown's `started`
message. The drill's timings are read from those domains' records when it ends (or on demand);
this domain never writes their tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

from dateutil.rrule import rrule, rrulestr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import Perm
from watchfloor.clock import Clock
from watchfloor.config import get_settings
from watchfloor.drills.models import (
    KIND_LABELS,
    LOCKDOWN_KINDS,
    ActionState,
    Drill,
    DrillAction,
    DrillKind,
    DrillParticipant,
    DrillReport,
    DrillRequirement,
    DrillSchedule,
    DrillState,
)
from watchfloor.drills.schemas import (
    ActionIn,
    DrillIn,
    EndIn,
    ParticipantIn,
    ReportIn,
    RequirementIn,
    ScheduleIn,
)
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.rollout.deadlines import add_months, zone
from watchfloor.sites.models import Facility, Region
from watchfloor.sites.service import scope_filter

CHUNK = 500
NEXT_SHOWN = 4
#: how many occurrences ahead are checked for a rule firing more often than daily
FREQUENCY_PROBE = 20
MIN_GAP = timedelta(days=1)

#: compliance statuses, most urgent first
STATUS_ORDER = ("overdue", "never", "due_soon", "compliant")
STATUS_LABELS = {
    "overdue": "Overdue",
    "never": "Never held",
    "due_soon": "Due soon",
    "compliant": "Compliant",
}
STATE_LABELS: dict[str, str] = {
    DrillState.PLANNED: "Planned",
    DrillState.RUNNING: "Running",
    DrillState.COMPLETED: "Completed",
    DrillState.CANCELLED: "Cancelled",
}
ACTION_LABELS: dict[str, str] = {
    ActionState.OPEN: "Open",
    ActionState.IN_PROGRESS: "In progress",
    ActionState.DONE: "Done",
}
ACTION_MOVES: dict[str, frozenset[str]] = {
    ActionState.OPEN: frozenset({ActionState.IN_PROGRESS, ActionState.DONE}),
    ActionState.IN_PROGRESS: frozenset({ActionState.OPEN, ActionState.DONE}),
    ActionState.DONE: frozenset({ActionState.IN_PROGRESS}),  # reopen
}


@dataclass
class FacilityCompliance:
    """One facility's drills compliance, as the preparedness scorecard shows it."""

    status: str  # "in_place" | "under_review" | "gap" | "not_tracked"
    priority: str  # "high" | "medium" | "low"
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (text, console link)


def _err(loc: Sequence[str], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": "value_error"}


def invalid(loc: Sequence[str], msg: str) -> InvalidInput:
    where = ".".join(loc)
    return InvalidInput(f"The request is not valid: {where}: {msg}", errors=[_err(loc, msg)])


def due_soon_delta(days: float) -> timedelta:
    return timedelta(days=days)


def local_date(value: datetime, tz: str) -> date:
    return value.astimezone(zone(tz)).date()


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


# ---------------------------------------------------------------------------- requirements


async def requirements(db: AsyncSession, *, active_only: bool = False) -> list[DrillRequirement]:
    stmt = select(DrillRequirement).order_by(DrillRequirement.kind)
    if active_only:
        stmt = stmt.where(DrillRequirement.active.is_(True))
    return list((await db.scalars(stmt)).all())


async def set_requirement(
    db: AsyncSession, clock: Clock, principal: Principal, kind: str, body: RequirementIn
) -> DrillRequirement:
    """Add or change an organisation-wide requirement (needs drills:manage org-wide)."""
    principal.require_org(Perm.DRILLS_MANAGE)
    if kind not in {k.value for k in DrillKind}:
        raise InvalidInput(
            f"Unknown drill kind '{kind}'.",
            errors=[{"loc": ["path", "drill_kind"], "msg": "unknown drill kind", "type": "enum"}],
        )
    now = clock.now()
    req = await db.scalar(select(DrillRequirement).where(DrillRequirement.kind == kind))
    before = None if req is None else {"interval_months": req.interval_months, "active": req.active}
    if req is None:
        req = DrillRequirement(kind=kind, interval_months=body.interval_months)
        db.add(req)
    req.interval_months = body.interval_months
    req.active = body.active
    req.note = body.note
    req.updated_at = now
    req.updated_by = principal.label
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "drills.requirement_set",
        target_type="drill_requirement",
        target_id=kind,
        details={
            "before": before,
            "after": {"interval_months": body.interval_months, "active": body.active},
        },
    )
    return req


# ---------------------------------------------------------------------------- facilities


async def facility_for(
    db: AsyncSession, principal: Principal, code: str, perm: Perm = Perm.DRILLS_READ
) -> Facility:
    """The facility if the caller may read its drills (else 404) and use `perm` there (403)."""
    principal.require_anywhere(perm)
    if "\x00" in code:  # no facility has it, and PostgreSQL cannot compare it
        raise NotFound(f"No facility has the code '{code!r}'.")
    facility = (
        await db.execute(
            select(Facility).options(joinedload(Facility.region)).where(Facility.code == code[:40])
        )
    ).scalar_one_or_none()
    if facility is None or not principal.allows(
        Perm.DRILLS_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"No facility has the code '{code}'.")
    principal.require(perm, facility_id=facility.id, region_id=facility.region_id)
    return facility


async def _facility_of_body(
    db: AsyncSession, principal: Principal, code: str, perm: Perm
) -> Facility:
    principal.require_anywhere(perm)
    try:
        return await facility_for(db, principal, code, perm)
    except NotFound:
        raise InvalidInput(
            f"No facility has the code '{code}'.",
            errors=[_err(["facility_code"], f"no facility has the code '{code}'")],
        ) from None


# ---------------------------------------------------------------------------- recurrence


def parse_anchor(text: str, loc: Sequence[str] = ("anchor_local",)) -> datetime:
    """'YYYY-MM-DDTHH:MM' (a naive wall-clock time)."""
    try:
        value = datetime.strptime(text.strip().replace(" ", "T"), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise invalid(loc, "give the first occurrence as YYYY-MM-DDTHH:MM (local time)") from None
    if not 2000 <= value.year <= 2100:
        raise invalid(loc, "the year must be between 2000 and 2100")
    return value


def _to_utc(local_naive: datetime, tz: str) -> datetime:
    return local_naive.replace(tzinfo=zone(tz)).astimezone(UTC)


def build_rule(rule_text: str, anchor: datetime) -> rrule:
    """The rule anchored at a naive local datetime; InvalidInput naming `rrule` if it is not an
    RFC 5545 RRULE we accept."""
    text = rule_text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text or "\n" in text or "DTSTART" in text.upper():
        raise invalid(["rrule"], "give one RRULE such as FREQ=MONTHLY;INTERVAL=3 (no DTSTART)")
    try:
        parsed = rrulestr(text, dtstart=anchor, forceset=False)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise invalid(["rrule"], f"is not a valid RFC 5545 RRULE ({str(exc)[:120]})") from None
    if not isinstance(parsed, rrule):
        raise invalid(["rrule"], "give one RRULE")
    return parsed


def next_occurrences(
    rule_text: str, anchor_text: str, tz: str, after: datetime, count: int = NEXT_SHOWN
) -> list[datetime]:
    """The next `count` occurrences after `after` (UTC), computed on the facility's wall clock:
    a 10:00 drill stays at 10:00 local across a DST change."""
    rule = build_rule(rule_text, parse_anchor(anchor_text))
    cursor = after.astimezone(zone(tz)).replace(tzinfo=None)
    out: list[datetime] = []
    for _ in range(count):
        nxt = rule.after(cursor, inc=False)
        if nxt is None:
            break
        out.append(_to_utc(nxt, tz))
        cursor = nxt
    return out


def check_rule(rule_text: str, anchor_text: str, tz: str, now: datetime) -> None:
    """InvalidInput naming the field unless the rule parses, fires again after `now` and never
    more often than daily (two occurrences less than a day apart on the wall clock)."""
    anchor = parse_anchor(anchor_text)
    rule = build_rule(rule_text, anchor)
    local_now = now.astimezone(zone(tz)).replace(tzinfo=None)
    first = list(islice(iter(rule), FREQUENCY_PROBE))
    gaps = [b - a for a, b in zip(first, first[1:], strict=False)]
    if gaps and min(gaps) < MIN_GAP:
        raise invalid(["rrule"], "drills cannot recur more often than daily")
    if rule.after(local_now) is None:
        raise invalid(["rrule"], "has no occurrence after now (check COUNT / UNTIL and the anchor)")


# ---------------------------------------------------------------------------- schedules


async def create_schedule(
    db: AsyncSession, clock: Clock, principal: Principal, body: ScheduleIn
) -> DrillSchedule:
    facility = await _facility_of_body(db, principal, body.facility_code, Perm.DRILLS_MANAGE)
    now = clock.now()
    check_rule(body.rrule, body.anchor_local, facility.timezone, now)
    anchor = parse_anchor(body.anchor_local)
    rule_text = body.rrule.strip()
    if rule_text.upper().startswith("RRULE:"):
        rule_text = rule_text[6:]
    schedule = DrillSchedule(
        facility_id=facility.id,
        kind=body.kind,
        title=body.title or f"{kind_label(body.kind)} drill",
        rrule=rule_text.upper(),
        anchor_local=anchor.strftime("%Y-%m-%dT%H:%M"),
        partner_agencies=[a for a in body.partner_agencies if a],
        paused=False,
        created_at=now,
        created_by=principal.label,
        updated_at=now,
    )
    db.add(schedule)
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "drills.schedule_created",
        target_type="drill_schedule",
        target_id=schedule.id,
        facility_id=facility.id,
        details={"kind": body.kind, "rrule": schedule.rrule, "anchor_local": schedule.anchor_local},
    )
    return schedule


async def _in_scope(
    db: AsyncSession, principal: Principal, model: Any, object_id: int, perm: Perm, missing: str
) -> tuple[Any, Facility]:
    """A drills object (schedule, drill, corrective action) with its facility, when the caller
    holds `perm` there; NotFound (never Forbidden) for one outside every grant."""
    principal.require_anywhere(perm)
    row = (
        await db.execute(
            select(model, Facility)
            .join(Facility, Facility.id == model.facility_id)
            .options(joinedload(Facility.region))
            .where(model.id == object_id)
        )
    ).one_or_none()
    if row is None or not principal.allows(
        Perm.DRILLS_READ, facility_id=row[1].id, region_id=row[1].region_id
    ):
        raise NotFound(missing)
    principal.require(perm, facility_id=row[1].id, region_id=row[1].region_id)
    return row[0], row[1]


async def schedule_in_scope(
    db: AsyncSession, principal: Principal, schedule_id: int, perm: Perm = Perm.DRILLS_READ
) -> tuple[DrillSchedule, Facility]:
    schedule, facility = await _in_scope(
        db,
        principal,
        DrillSchedule,
        schedule_id,
        perm,
        f"There is no drill schedule {schedule_id}.",
    )
    return schedule, facility


async def set_paused(
    db: AsyncSession, clock: Clock, principal: Principal, schedule_id: int, paused: bool
) -> DrillSchedule:
    schedule, facility = await schedule_in_scope(db, principal, schedule_id, Perm.DRILLS_MANAGE)
    if schedule.paused != paused:
        schedule.paused = paused
        schedule.updated_at = clock.now()
        await audit.record(
            db,
            clock,
            principal,
            "drills.schedule_paused" if paused else "drills.schedule_resumed",
            target_type="drill_schedule",
            target_id=schedule.id,
            facility_id=facility.id,
        )
        await db.flush()
    return schedule


async def list_schedules(
    db: AsyncSession, scope: Scope, facility_id: int | None = None
) -> list[tuple[DrillSchedule, Facility]]:
    stmt = (
        select(DrillSchedule, Facility)
        .join(Facility, Facility.id == DrillSchedule.facility_id)
        .where(scope_filter(scope))
        .order_by(Facility.code, DrillSchedule.id)
    )
    if facility_id is not None:
        stmt = stmt.where(DrillSchedule.facility_id == facility_id)
    return [(s, f) for s, f in (await db.execute(stmt)).all()]


# ---------------------------------------------------------------------------- drills


async def plan_drill(
    db: AsyncSession, clock: Clock, principal: Principal, body: DrillIn
) -> tuple[Drill, Facility]:
    facility = await _facility_of_body(db, principal, body.facility_code, Perm.DRILLS_MANAGE)
    planned = body.planned_at
    if planned.tzinfo is None:
        raise invalid(["planned_at"], "give the time zone (e.g. 'Z' for UTC)")
    planned = planned.astimezone(UTC)
    if not 2000 <= planned.year <= 2100:
        raise invalid(["planned_at"], "the year must be between 2000 and 2100")
    if body.schedule_id is not None:
        schedule = await db.get(DrillSchedule, body.schedule_id)
        if schedule is None or schedule.facility_id != facility.id:
            raise invalid(["schedule_id"], "no schedule of this facility has this id")
    now = clock.now()
    drill = Drill(
        facility_id=facility.id,
        kind=body.kind,
        schedule_id=body.schedule_id,
        title=body.title or f"{kind_label(body.kind)} drill",
        state=DrillState.PLANNED,
        planned_at=planned,
        run_by="",
        partner_agencies=[a for a in body.partner_agencies if a],
        timings_source="",
        notes="",
        created_at=now,
        created_by=principal.label,
        updated_at=now,
    )
    db.add(drill)
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "drills.drill_planned",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
        details={"kind": drill.kind, "planned_at": planned.isoformat()},
    )
    return drill, facility


async def drill_in_scope(
    db: AsyncSession, principal: Principal, drill_id: int, perm: Perm = Perm.DRILLS_READ
) -> tuple[Drill, Facility]:
    drill, facility = await _in_scope(
        db, principal, Drill, drill_id, perm, f"There is no drill {drill_id}."
    )
    return drill, facility


async def start_drill(
    db: AsyncSession, clock: Clock, principal: Principal, drill_id: int
) -> tuple[Drill, list[int]]:
    """Start a planned drill; a lockdown kind locks the facility down in EXERCISE mode (needs
    lockdown:start there too). Returns the drill and the lockdown ids to hand to the engine."""
    from watchfloor.lockdown import service as lockdown

    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.state != DrillState.PLANNED:
        raise Conflict(f"Drill {drill.id} is {drill.state}: only a planned drill can start.")
    now = clock.now()
    started: list[int] = []
    if drill.kind in LOCKDOWN_KINDS:
        principal.require(
            Perm.LOCKDOWN_START, facility_id=facility.id, region_id=facility.region_id
        )
        result = await lockdown.start(
            db,
            clock,
            principal,
            [lockdown.Target(facility)],
            exercise=True,
            reason=f"Drill {drill.id}: {drill.title}"[:300],
            source="drill",
        )
        drill.lockdown_id = result.lockdowns[0].id
        started.append(drill.lockdown_id)
    drill.state = DrillState.RUNNING
    drill.started_at = now
    drill.run_by = principal.label
    drill.updated_at = now
    await audit.record(
        db,
        clock,
        principal,
        "drills.drill_started",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
        details={"kind": drill.kind, "lockdown_id": drill.lockdown_id},
    )
    await db.flush()
    return drill, started


def _seconds(a: datetime | None, b: datetime | None) -> int | None:
    if a is None or b is None:
        return None
    return max(0, int((b - a).total_seconds()))


async def capture_timings(db: AsyncSession, drill: Drill) -> bool:
    """Read the drill's lockdown and roll call (their domains' records) into the drill; add the
    people who answered the roll call as participants. False when there is nothing to read."""
    from watchfloor.lockdown import service as lockdown
    from watchfloor.lockdown.models import DoorState
    from watchfloor.rollcall import service as rollcall
    from watchfloor.rollcall.models import Answer, RollCall

    if drill.lockdown_id is None or drill.started_at is None:
        return False
    try:
        ld = await lockdown.get_lockdown(db, drill.lockdown_id)
    except NotFound:
        return False
    counts = (await lockdown.door_counts(db, [ld.id]))[ld.id]
    drill.doors_total = ld.door_count
    drill.doors_failed = counts.get(DoorState.FAILED.value, 0)
    drill.seconds_to_locked = _seconds(ld.started_at, ld.locked_at)
    drill.seconds_to_lifted = _seconds(ld.started_at, ld.lifted_at)
    drill.timings_source = "captured"
    roll_call = await db.scalar(
        select(RollCall).where(RollCall.lockdown_id == ld.id).order_by(RollCall.id).limit(1)
    )
    if roll_call is None:
        return True
    drill.roll_call_id = roll_call.id
    tally = await rollcall.tally(db, roll_call.id)
    drill.safe_count, drill.need_help_count = tally.safe, tally.need_help
    drill.no_answer_count = tally.no_answer
    entries = await rollcall.entries(db, roll_call.id)
    answered = [e for e in entries if e.answer != Answer.NO_ANSWER]
    drill.accounted_share = (len(answered) / tally.total) if tally.total else None
    if tally.total and tally.no_answer == 0:
        last = max((e.answered_at for e in answered if e.answered_at), default=None)
        drill.seconds_to_accounted = _seconds(roll_call.started_at, last)
    else:
        drill.seconds_to_accounted = None
    known = set(
        (
            await db.scalars(
                select(DrillParticipant.person_id).where(
                    DrillParticipant.drill_id == drill.id,
                    DrillParticipant.source == "roll_call",
                )
            )
        ).all()
    )
    for e in answered:
        if e.person_id is not None and e.person_id in known:
            continue
        db.add(
            DrillParticipant(
                drill_id=drill.id,
                source="roll_call",
                name=e.name,
                agency="",
                count=1,
                person_id=e.person_id,
                answer=e.answer,
                added_by="system:roll_call",
                added_at=e.answered_at or drill.started_at,
            )
        )
    await db.flush()
    return True


async def end_drill(
    db: AsyncSession, clock: Clock, principal: Principal, drill_id: int, body: EndIn
) -> Drill:
    """End a running drill: completed. Timings of a lockdown kind are captured from the lockdown
    and roll call (typed timings are refused); other kinds take typed timings. The lockdown itself
    is not lifted here: lifting follows the lockdown domain's rules."""
    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.state != DrillState.RUNNING:
        raise Conflict(f"Drill {drill.id} is {drill.state}: only a running drill can end.")
    now = clock.now()
    drill.state = DrillState.COMPLETED
    drill.ended_at = now
    drill.updated_at = now
    if body.notes:
        drill.notes = body.notes
    if drill.kind in LOCKDOWN_KINDS:
        if body.timings is not None:
            raise invalid(["timings"], "a lockdown drill's timings are captured from the lockdown")
        await capture_timings(db, drill)
    elif body.timings is not None:
        t = body.timings
        drill.seconds_to_evacuated = t.seconds_to_evacuated
        drill.seconds_to_accounted = t.seconds_to_accounted
        drill.safe_count, drill.need_help_count = t.safe_count, t.need_help_count
        drill.no_answer_count = t.no_answer_count
        drill.timings_source = "typed"
    await audit.record(
        db,
        clock,
        principal,
        "drills.drill_ended",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
        details={
            "seconds_to_locked": drill.seconds_to_locked,
            "seconds_to_accounted": drill.seconds_to_accounted,
            "seconds_to_evacuated": drill.seconds_to_evacuated,
            "timings_source": drill.timings_source,
        },
    )
    await db.flush()
    return drill


async def recapture(db: AsyncSession, clock: Clock, principal: Principal, drill_id: int) -> Drill:
    """Read the timings again (e.g. once the lockdown has been lifted after the drill ended)."""
    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.lockdown_id is None or drill.state not in (DrillState.RUNNING, DrillState.COMPLETED):
        raise Conflict(f"Drill {drill.id} has no lockdown to read timings from.")
    await capture_timings(db, drill)
    drill.updated_at = clock.now()
    await audit.record(
        db,
        clock,
        principal,
        "drills.timings_captured",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
    )
    await db.flush()
    return drill


async def cancel_drill(
    db: AsyncSession, clock: Clock, principal: Principal, drill_id: int
) -> Drill:
    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.state != DrillState.PLANNED:
        raise Conflict(f"Drill {drill.id} is {drill.state}: only a planned drill can be cancelled.")
    drill.state = DrillState.CANCELLED
    drill.updated_at = clock.now()
    await audit.record(
        db,
        clock,
        principal,
        "drills.drill_cancelled",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
    )
    await db.flush()
    return drill


async def lockdown_active(db: AsyncSession, drill: Drill) -> bool:
    from watchfloor.lockdown.models import ACTIVE_STATES, Lockdown

    if drill.lockdown_id is None:
        return False
    state = await db.scalar(select(Lockdown.state).where(Lockdown.id == drill.lockdown_id))
    return state in ACTIVE_STATES


async def list_drills(
    db: AsyncSession,
    scope: Scope,
    *,
    facility_id: int | None = None,
    limit: int = 200,
) -> list[tuple[Drill, Facility]]:
    """Drills in scope: running first, then planned (soonest first), then the rest (newest)."""
    rank = func.coalesce(Drill.ended_at, Drill.started_at, Drill.planned_at)
    stmt = (
        select(Drill, Facility)
        .join(Facility, Facility.id == Drill.facility_id)
        .where(scope_filter(scope))
        .order_by(Drill.state != DrillState.RUNNING, Drill.state != DrillState.PLANNED, rank.desc())
        .limit(limit)
    )
    if facility_id is not None:
        stmt = stmt.where(Drill.facility_id == facility_id)
    rows = [(d, f) for d, f in (await db.execute(stmt)).all()]
    planned = sorted(
        (r for r in rows if r[0].state == DrillState.PLANNED), key=lambda r: r[0].planned_at
    )
    running = [r for r in rows if r[0].state == DrillState.RUNNING]
    rest = [r for r in rows if r[0].state not in (DrillState.PLANNED, DrillState.RUNNING)]
    return running + planned + rest


# ---------------------------------------------------------------------------- participants, AAR


async def add_participant(
    db: AsyncSession, clock: Clock, principal: Principal, drill_id: int, body: ParticipantIn
) -> DrillParticipant:
    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.state == DrillState.CANCELLED:
        raise Conflict(f"Drill {drill.id} was cancelled.")
    if body.source == "external" and not body.agency:
        raise invalid(["agency"], "name the agency of external participants")
    if body.source == "manual" and body.count != 1:
        raise invalid(["count"], "a person added by hand counts once; use 'external' for groups")
    p = DrillParticipant(
        drill_id=drill.id,
        source=body.source,
        name=body.name,
        agency=body.agency,
        count=body.count,
        answer="",
        added_by=principal.label,
        added_at=clock.now(),
    )
    db.add(p)
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "drills.participant_added",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
        details={
            "source": body.source,
            "name": body.name,
            "agency": body.agency,
            "count": body.count,
        },
    )
    return p


async def participants(db: AsyncSession, drill_id: int) -> list[DrillParticipant]:
    rows = await db.scalars(
        select(DrillParticipant)
        .where(DrillParticipant.drill_id == drill_id)
        .order_by(DrillParticipant.source, DrillParticipant.name, DrillParticipant.id)
    )
    return list(rows.all())


async def report_of(db: AsyncSession, drill_id: int) -> DrillReport | None:
    return await db.scalar(select(DrillReport).where(DrillReport.drill_id == drill_id))


async def save_report(
    db: AsyncSession, clock: Clock, principal: Principal, drill_id: int, body: ReportIn
) -> DrillReport:
    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.state != DrillState.COMPLETED:
        raise Conflict(f"Drill {drill.id} is {drill.state}: write the report once it has ended.")
    now = clock.now()
    report = await report_of(db, drill.id)
    if report is None:
        report = DrillReport(drill_id=drill.id, written_by=principal.label, written_at=now)
        db.add(report)
    report.worked, report.gaps, report.updated_at = body.worked, body.gaps, now
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "drills.report_saved",
        target_type="drill",
        target_id=drill.id,
        facility_id=facility.id,
        details={"worked_chars": len(body.worked), "gaps_chars": len(body.gaps)},
    )
    return report


# ---------------------------------------------------------------------------- corrective actions


def drill_day(drill: Drill, tz: str) -> date:
    return local_date(drill.started_at or drill.planned_at, tz)


def action_overdue(action: DrillAction, tz: str, now: datetime) -> bool:
    """Overdue once the facility's local date is past the due date and it is not done."""
    return action.state != ActionState.DONE and local_date(now, tz) > action.due_on


async def add_action(
    db: AsyncSession, clock: Clock, principal: Principal, drill_id: int, body: ActionIn
) -> DrillAction:
    drill, facility = await drill_in_scope(db, principal, drill_id, Perm.DRILLS_MANAGE)
    if drill.state != DrillState.COMPLETED:
        raise Conflict(f"Drill {drill.id} is {drill.state}: actions follow a completed drill.")
    day = drill_day(drill, facility.timezone)
    try:
        due_on = date.fromisoformat(body.due_on)
    except ValueError:
        raise invalid(["due_on"], "is not a date (YYYY-MM-DD)") from None
    if due_on < day:
        raise invalid(["due_on"], f"must be on or after the drill's date ({day.isoformat()})")
    if due_on.year > 2100:
        raise invalid(["due_on"], "must be before 2100")
    now = clock.now()
    action = DrillAction(
        drill_id=drill.id,
        facility_id=facility.id,
        description=body.description,
        owner=body.owner,
        due_on=due_on,
        state=ActionState.OPEN,
        created_at=now,
        created_by=principal.label,
        updated_at=now,
        updated_by=principal.label,
    )
    db.add(action)
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "drills.action_added",
        target_type="drill_action",
        target_id=action.id,
        facility_id=facility.id,
        details={"drill_id": drill.id, "owner": body.owner, "due_on": due_on.isoformat()},
    )
    return action


async def action_in_scope(
    db: AsyncSession, principal: Principal, action_id: int, perm: Perm = Perm.DRILLS_READ
) -> tuple[DrillAction, Facility]:
    action, facility = await _in_scope(
        db, principal, DrillAction, action_id, perm, f"There is no corrective action {action_id}."
    )
    return action, facility


async def move_action(
    db: AsyncSession, clock: Clock, principal: Principal, action_id: int, to: str
) -> tuple[DrillAction, Facility]:
    action, facility = await action_in_scope(db, principal, action_id, Perm.DRILLS_MANAGE)
    if to not in ACTION_MOVES.get(action.state, frozenset()):
        raise Conflict(f"Corrective action {action.id} is {action.state}: it cannot move to {to}.")
    now = clock.now()
    before = action.state
    action.state = to
    action.updated_at, action.updated_by = now, principal.label
    if to == ActionState.DONE:
        action.done_at, action.done_by = now, principal.label
    else:
        action.done_at, action.done_by = None, None
    await audit.record(
        db,
        clock,
        principal,
        "drills.action_moved",
        target_type="drill_action",
        target_id=action.id,
        facility_id=facility.id,
        details={"from": before, "to": to},
    )
    await db.flush()
    return action, facility


async def list_actions(
    db: AsyncSession,
    scope: Scope,
    now: datetime,
    *,
    drill_id: int | None = None,
    facility_id: int | None = None,
    open_only: bool = False,
    region_code: str | None = None,
    limit: int = 100_000,
) -> list[tuple[DrillAction, Facility, bool]]:
    """Corrective actions in scope with their overdue flag: overdue first, then open by due date,
    then done."""
    stmt = (
        select(DrillAction, Facility)
        .join(Facility, Facility.id == DrillAction.facility_id)
        .where(scope_filter(scope))
        .order_by(DrillAction.due_on, DrillAction.id)
        .limit(limit)
    )
    if drill_id is not None:
        stmt = stmt.where(DrillAction.drill_id == drill_id)
    if facility_id is not None:
        stmt = stmt.where(DrillAction.facility_id == facility_id)
    if open_only:
        stmt = stmt.where(DrillAction.state != ActionState.DONE)
    if region_code:
        stmt = stmt.join(Region, Region.id == Facility.region_id).where(Region.code == region_code)
    rows = [(a, f, action_overdue(a, f.timezone, now)) for a, f in (await db.execute(stmt)).all()]
    rows.sort(key=lambda r: (not r[2], r[0].state == ActionState.DONE))
    return rows


# ---------------------------------------------------------------------------- compliance


@dataclass
class ComplianceEntry:
    facility_id: int
    facility_code: str
    facility_name: str
    region_code: str
    region_name: str
    timezone: str
    kind: str
    interval_months: int
    last_completed_at: datetime | None
    next_due_at: datetime | None
    status: str


#: a day either way covers any time-zone offset between a UTC instant and its local date
_SLACK = timedelta(days=1)


def quick_status(last: datetime, months: int, now: datetime, soon: timedelta) -> str | None:
    """`status_for`'s answer when it is plain without the calendar: N calendar months are at
    least 28·N and at most 31·N days, so a drill held long enough ago is overdue, and one held
    recently enough is compliant, whatever the time zone; None when it is close."""
    if now > last + timedelta(days=31 * months) + _SLACK:
        return "overdue"
    if last + timedelta(days=28 * months) - _SLACK - now > soon:
        return "compliant"
    return None


def status_for(
    last: datetime | None, months: int, tz: str, now: datetime, soon: timedelta
) -> tuple[str, datetime | None]:
    """(status, next due) of one required kind at one facility. Next due is the last completed
    drill's local date and time plus the interval in calendar months; overdue strictly after it;
    due soon when it is at most `soon` away; never held without a completed drill."""
    if last is None:
        return "never", None
    info = zone(tz)
    local = last.astimezone(info).replace(tzinfo=None)
    due = add_months(local, months).replace(tzinfo=info).astimezone(UTC)
    if now > due:
        return "overdue", due
    if due - now <= soon:
        return "due_soon", due
    return "compliant", due


async def _last_completed(
    db: AsyncSession, facility_ids: Sequence[int] | None, kinds: Sequence[str], scope: Scope | None
) -> dict[tuple[int, str], datetime]:
    out: dict[tuple[int, str], datetime] = {}
    base = (
        select(Drill.facility_id, Drill.kind, func.max(Drill.ended_at))
        .where(Drill.state == DrillState.COMPLETED, Drill.kind.in_(list(kinds)))
        .group_by(Drill.facility_id, Drill.kind)
    )
    if facility_ids is None:
        assert scope is not None
        stmt = base.join(Facility, Facility.id == Drill.facility_id).where(scope_filter(scope))
        for fid, kind, last in (await db.execute(stmt)).all():
            if last is not None:
                out[(fid, kind)] = last
        return out
    ids = list(facility_ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for fid, kind, last in (await db.execute(base.where(Drill.facility_id.in_(chunk)))).all():
            if last is not None:
                out[(fid, kind)] = last
    return out


async def compliance(
    db: AsyncSession,
    scope: Scope,
    now: datetime,
    soon: timedelta,
    *,
    region_code: str | None = None,
) -> list[ComplianceEntry]:
    """Every facility in scope × every active required kind, most urgent first: overdue (longest
    overdue first), never held, due soon, compliant."""
    reqs = await requirements(db, active_only=True)
    if not reqs:
        return []
    stmt = (
        select(
            Facility.id, Facility.code, Facility.name, Facility.timezone, Region.code, Region.name
        )
        .join(Region, Region.id == Facility.region_id)
        .where(scope_filter(scope))
        .order_by(Facility.code)
    )
    if region_code:
        stmt = stmt.where(Region.code == region_code)
    facilities = (await db.execute(stmt)).all()
    last = await _last_completed(db, None, [r.kind for r in reqs], scope)
    out: list[ComplianceEntry] = []
    for fid, code, name, tz, rcode, rname in facilities:
        for r in reqs:
            when = last.get((fid, r.kind))
            status, due = status_for(when, r.interval_months, tz, now, soon)
            out.append(
                ComplianceEntry(
                    fid, code, name, rcode, rname, tz, r.kind, r.interval_months, when, due, status
                )  # fmt: skip
            )
    far = datetime.max.replace(tzinfo=UTC)
    out.sort(
        key=lambda e: (STATUS_ORDER.index(e.status), e.next_due_at or far, e.facility_code, e.kind)
    )
    return out


def count_by_region(
    entries: Sequence[ComplianceEntry],
) -> tuple[dict[str, int], list[tuple[str, str, dict[str, int]]]]:
    totals = dict.fromkeys(STATUS_ORDER, 0)
    regions: dict[str, tuple[str, dict[str, int]]] = {}
    for e in entries:
        totals[e.status] += 1
        regions.setdefault(e.region_code, (e.region_name, dict.fromkeys(STATUS_ORDER, 0)))
        regions[e.region_code][1][e.status] += 1
    return totals, [(c, n, counts) for c, (n, counts) in sorted(regions.items())]


async def facility_compliance(
    db: AsyncSession,
    facility_ids: Sequence[int],
    now: datetime,
    *,
    with_reasons: bool = True,
    due_soon_days: float | None = None,
) -> dict[int, FacilityCompliance]:
    """Compliance of each facility named (a facility left out is "not tracked"). The scorecard
    roll-up calls this for every facility in scope (10,000 and more) with with_reasons=False.

    gap / high: a required kind is overdue or was never held; under_review / medium: one is due
    within `due_soon_days`, or a corrective action is overdue; in_place / low otherwise. With no
    active requirement nothing is tracked (an empty answer). A few set-based queries, chunked."""
    reqs = await requirements(db, active_only=True)
    ids = list(dict.fromkeys(facility_ids))
    if not reqs or not ids:
        return {}
    if due_soon_days is None:  # the scorecard passes none: the configured value
        due_soon_days = get_settings().drills_due_soon_days
    soon = timedelta(days=due_soon_days)
    wanted = set(ids)
    # Many facilities (the scorecard's roll-up): one pass over every facility, the ones not
    # asked for dropped here; a few: the queries per 500 ids.
    wide = len(ids) > CHUNK
    kinds = [r.kind for r in reqs]
    if wide:
        last = await _last_completed(db, None, kinds, Scope(everything=True))
    else:
        last = await _last_completed(db, ids, kinds, None)
    info: dict[int, tuple[str, str]] = {}
    overdue_actions: dict[int, list[tuple[int, date]]] = {}
    cutoff = now.astimezone(UTC).date()
    chunks: list[list[int] | None] = (
        [None] if wide else [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    )
    for chunk in chunks:
        facilities = select(Facility.id, Facility.code, Facility.timezone)
        actions = (
            select(
                DrillAction.facility_id, DrillAction.drill_id, DrillAction.due_on, Facility.timezone
            )
            .join(Facility, Facility.id == DrillAction.facility_id)
            .where(DrillAction.state != ActionState.DONE, DrillAction.due_on <= cutoff)
        )
        if chunk is not None:
            facilities = facilities.where(Facility.id.in_(chunk))
            actions = actions.where(DrillAction.facility_id.in_(chunk))
        for fid, code, tz in (await db.execute(facilities)).all():
            if fid in wanted:
                info[fid] = (code, tz)
        for fid, drill_id, due_on, tz in (await db.execute(actions)).all():
            if fid in wanted and local_date(now, tz) > due_on:
                overdue_actions.setdefault(fid, []).append((drill_id, due_on))
    out: dict[int, FacilityCompliance] = {}
    for fid in ids:
        if fid not in info:
            continue
        code, tz = info[fid]
        link = f"/drills/facilities/{code}"
        worst = "in_place"
        reasons: list[tuple[str, str]] = []
        for r in reqs:
            held = last.get((fid, r.kind))
            quick = (
                None
                if with_reasons or held is None
                else quick_status(held, r.interval_months, now, soon)
            )
            if quick is not None:  # the roll-up needs no due date: skip the calendar when it can
                status, due = quick, None
            else:
                status, due = status_for(held, r.interval_months, tz, now, soon)
            label = kind_label(r.kind) if with_reasons else ""
            if status in ("overdue", "never"):
                worst = "gap"
                if with_reasons:
                    text = (
                        f"{label} drill never held (required every {r.interval_months} months)."
                        if status == "never"
                        else f"{label} drill overdue since {_day(due, tz)}."
                    )
                    reasons.append((text, link))
            elif status == "due_soon":
                if worst == "in_place":
                    worst = "under_review"
                if with_reasons:
                    reasons.append((f"{label} drill due by {_day(due, tz)}.", link))
        late = overdue_actions.get(fid, [])
        if late:
            if worst == "in_place":
                worst = "under_review"
            if with_reasons:
                drill_id, due_on = min(late, key=lambda x: x[1])
                n = len(late)
                reasons.append(
                    (
                        f"{n} corrective action{'s' if n != 1 else ''} overdue (oldest due "
                        f"{due_on.isoformat()}).",
                        f"/drills/{drill_id}",
                    )
                )
        priority = {"gap": "high", "under_review": "medium"}.get(worst, "low")
        if with_reasons and worst == "in_place":
            reasons.append(("Every required drill is up to date.", link))
        out[fid] = FacilityCompliance(status=worst, priority=priority, reasons=reasons)
    return out


def _day(value: datetime | None, tz: str) -> str:
    return "—" if value is None else local_date(value, tz).isoformat()
