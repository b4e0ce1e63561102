"""Countermeasure rollout: directives generate one task per facility and measure; tasks move
planned → in progress → done, or are waived by a second person; the board counts them.

No HTTP here. Every function takes a session and (for changes) a clock and the acting Principal,
writes its audit record in the caller's transaction, and leaves the commit to the caller.
The board and the burn-down are SQL aggregates (GROUP BY); rows are never loaded to count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import Perm
from watchfloor.clock import Clock
from watchfloor.problems import Conflict, Forbidden, InvalidInput, NotFound
from watchfloor.rollout.deadlines import due_at, status_of
from watchfloor.rollout.models import (
    Countermeasure,
    Directive,
    RolloutTask,
    RolloutTaskEvent,
    TaskState,
    TaskStatus,
)
from watchfloor.rollout.schemas import DirectiveIn
from watchfloor.sites.models import Facility, Region
from watchfloor.sites.service import scope_filter

FUTURE_SLACK = timedelta(days=1)

#: state → states a person with rollout:update may move it to
MOVES: dict[str, frozenset[str]] = {
    TaskState.PLANNED: frozenset({TaskState.IN_PROGRESS, TaskState.DONE}),
    TaskState.IN_PROGRESS: frozenset({TaskState.PLANNED, TaskState.DONE}),
    TaskState.DONE: frozenset({TaskState.IN_PROGRESS}),  # reopen
    TaskState.WAIVED: frozenset(),  # reinstating a waiver: directives:manage (see move)
}


def actor_label(actor: Principal | str) -> str:
    return actor.label if isinstance(actor, Principal) else actor


# ---------------------------------------------------------------------------- catalogue


async def catalogue(db: AsyncSession, *, active_only: bool = True) -> list[Countermeasure]:
    stmt = select(Countermeasure).order_by(Countermeasure.position, Countermeasure.code)
    if active_only:
        stmt = stmt.where(Countermeasure.active.is_(True))
    return list((await db.scalars(stmt)).all())


# ---------------------------------------------------------------------------- directives


@dataclass
class Plan:
    """What a directive would generate: checked input, ready to write."""

    title: str
    description: str
    issued_at: datetime
    measures: list[Countermeasure]
    facilities: list[tuple[int, str]]  # (id, timezone)
    selection: dict[str, Any]
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_count(self) -> int:
        return len(self.measures) * len(self.facilities)

    def last_due(self) -> datetime | None:
        dues = [
            d
            for m in self.measures
            for d in {due_at(m.deadline, self.issued_at, tz) for _id, tz in self.facilities}
            if d is not None
        ]
        return max(dues) if dues else None


def _err(loc: list[str], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


async def plan_directive(
    db: AsyncSession, clock: Clock, principal: Principal, spec: DirectiveIn, *, max_tasks: int
) -> Plan:
    """Check a directive and resolve its measures and facilities; raise InvalidInput naming every
    bad field, Forbidden when a facility is outside the caller's directives:manage scope."""
    principal.require_anywhere(Perm.DIRECTIVES_MANAGE)
    errors: list[dict[str, Any]] = []
    now = clock.now()
    issued = spec.issued_at or now
    if issued.tzinfo is None:
        errors.append(_err(["issued_at"], "give the time zone (e.g. 'Z' for UTC)"))
        issued = issued.replace(tzinfo=UTC)
    issued = issued.astimezone(UTC)
    if issued > now + FUTURE_SLACK:
        errors.append(
            _err(["issued_at"], "is more than a day in the future; issue it when it is issued")
        )
    if not spec.title.strip():
        errors.append(_err(["title"], "must not be blank"))

    all_measures = await catalogue(db)
    by_code = {m.code: m for m in all_measures}
    if spec.measures is None:
        measures = all_measures
    else:
        codes = list(dict.fromkeys(spec.measures))
        unknown = [c for c in codes if c not in by_code]
        if unknown:
            errors.append(
                _err(["measures"], f"unknown countermeasure code(s): {', '.join(unknown[:20])}")
            )
        if not codes:
            errors.append(_err(["measures"], "choose at least one countermeasure"))
        measures = [by_code[c] for c in codes if c in by_code]

    sel = spec.selection
    manage = principal.scope(Perm.DIRECTIVES_MANAGE)
    facilities: list[tuple[int, str]] = []
    stmt = select(Facility.id, Facility.timezone, Facility.region_id, Facility.code)
    if sel.kind == "all":
        if not manage.everything:
            raise Forbidden(
                "A directive to all facilities needs an organisation-wide grant; "
                "choose a region or a list instead."
            )
        rows = (await db.execute(stmt.order_by(Facility.id))).all()
    elif sel.kind == "region":
        regions = list(dict.fromkeys(sel.regions))
        if not regions:
            errors.append(_err(["selection", "regions"], "name at least one region code"))
        found = {
            r.code: r.id
            for r in (
                await db.execute(select(Region.id, Region.code).where(Region.code.in_(regions)))
            )
        }
        missing = [r for r in regions if r not in found]
        if missing:
            errors.append(
                _err(["selection", "regions"], f"unknown region(s): {', '.join(missing[:20])}")
            )
        for code, rid in found.items():
            if not principal.allows(Perm.DIRECTIVES_MANAGE, facility_id=None, region_id=rid):
                raise Forbidden(f"Your roles do not let you issue directives for region '{code}'.")
        rows = (
            (
                await db.execute(
                    stmt.where(Facility.region_id.in_(found.values())).order_by(Facility.id)
                )
            ).all()
            if found
            else []
        )
    else:
        codes = list(dict.fromkeys(sel.facilities))
        if not codes:
            errors.append(_err(["selection", "facilities"], "name at least one facility code"))
        rows = []
        for start in range(0, len(codes), 500):
            chunk = codes[start : start + 500]
            rows.extend((await db.execute(stmt.where(Facility.code.in_(chunk)))).all())
        known = {r.code for r in rows}
        missing = [c for c in codes if c not in known]
        if missing:
            errors.append(
                _err(
                    ["selection", "facilities"],
                    f"unknown facility code(s): {', '.join(missing[:20])}",
                )
            )
        for r in rows:
            if not principal.allows(
                Perm.DIRECTIVES_MANAGE, facility_id=r.id, region_id=r.region_id
            ):
                raise NotFound(f"No facility has the code '{r.code}'.")
        rows.sort(key=lambda r: r.id)
    facilities = [(r.id, r.timezone) for r in rows]
    if not facilities and not any(e["loc"][1] == "selection" for e in errors):
        errors.append(_err(["selection"], "selects no facility"))
    count = len(facilities) * len(measures)
    if count > max_tasks:
        errors.append(
            _err(["selection"], f"would create {count} tasks; at most {max_tasks} per directive")
        )
    if errors:
        raise InvalidInput(
            "The directive was not issued: "
            + "; ".join(f"{'.'.join(e['loc'][1:])} {e['msg']}" for e in errors),
            errors=errors,
        )
    selection = {
        "kind": sel.kind,
        "regions": list(dict.fromkeys(sel.regions)) if sel.kind == "region" else [],
        "facilities": list(dict.fromkeys(sel.facilities)) if sel.kind == "list" else [],
    }
    return Plan(
        title=spec.title.strip(),
        description=spec.description,
        issued_at=issued,
        measures=measures,
        facilities=facilities,
        selection=selection,
    )


async def issue_directive(
    db: AsyncSession, clock: Clock, principal: Principal, spec: DirectiveIn, *, max_tasks: int
) -> Directive:
    """Issue a directive: the directive row and every task in one transaction (one bulk insert),
    and the audit record. The caller commits; on any error nothing is written."""
    plan = await plan_directive(db, clock, principal, spec, max_tasks=max_tasks)
    now = clock.now()
    who = actor_label(principal)
    directive = Directive(
        title=plan.title,
        description=plan.description,
        issued_at=plan.issued_at,
        issued_by=who,
        created_at=now,
        selection=plan.selection,
        measures=[m.code for m in plan.measures],
        facility_count=len(plan.facilities),
        task_count=plan.task_count,
        last_due_at=None,
    )
    db.add(directive)
    await db.flush()
    rows: list[dict[str, Any]] = []
    last: datetime | None = None
    # the due time depends only on (deadline kind, time zone): compute each pair once
    dues: dict[tuple[str, str], datetime | None] = {}
    for fid, tz in plan.facilities:
        for m in plan.measures:
            key = (m.deadline, tz)
            if key not in dues:
                dues[key] = due_at(m.deadline, plan.issued_at, tz)
            due = dues[key]
            if due is not None and (last is None or due > last):
                last = due
            rows.append(
                {
                    "directive_id": directive.id,
                    "facility_id": fid,
                    "countermeasure_id": m.id,
                    "state": TaskState.PLANNED.value,
                    "due_at": due,
                    "review_days": m.review_days,
                    "closed_at": None,
                    "updated_at": now,
                    "updated_by": who,
                    "note": "",
                    "waiver_reason": "",
                    "version": 0,
                }
            )
    for start in range(0, len(rows), 10_000):
        await db.execute(insert(RolloutTask), rows[start : start + 10_000])
    directive.last_due_at = last
    await audit.record(
        db,
        clock,
        principal,
        "rollout.directive_issued",
        target_type="directive",
        target_id=directive.id,
        details={
            "title": directive.title,
            "issued_at": plan.issued_at.isoformat(),
            "measures": directive.measures,
            "selection": plan.selection,
            "facilities": len(plan.facilities),
            "tasks": plan.task_count,
        },
    )
    return directive


def task_scope(scope: Scope) -> ColumnElement[bool]:
    """Tasks of facilities inside a scope (needs the Facility join)."""
    return scope_filter(scope)


async def directives(db: AsyncSession, scope: Scope) -> list[tuple[Directive, int, int]]:
    """Directives with a task in scope, newest first, with (facilities, tasks) in scope."""
    stmt = (
        select(
            Directive,
            func.count(func.distinct(RolloutTask.facility_id)),
            func.count(RolloutTask.id),
        )
        .join(RolloutTask, RolloutTask.directive_id == Directive.id)
        .join(Facility, Facility.id == RolloutTask.facility_id)
        .where(task_scope(scope))
        .group_by(Directive.id)
        .order_by(Directive.issued_at.desc(), Directive.id.desc())
    )
    return [(d, int(f), int(t)) for d, f, t in (await db.execute(stmt)).all()]


async def directive_in_scope(
    db: AsyncSession, scope: Scope, directive_id: int
) -> tuple[Directive, int, int]:
    for d, f, t in await directives(db, scope):
        if d.id == directive_id:
            return d, f, t
    raise NotFound(f"There is no directive {directive_id}.")


# ---------------------------------------------------------------------------- tasks


def status_expr(now: datetime, due_soon: timedelta) -> ColumnElement[str]:
    """The board status of a task as SQL (the same rule as deadlines.status_of)."""
    return case(
        (RolloutTask.state == TaskState.DONE.value, literal(TaskStatus.DONE.value)),
        (RolloutTask.state == TaskState.WAIVED.value, literal(TaskStatus.WAIVED.value)),
        (RolloutTask.due_at.is_(None), literal(TaskStatus.ON_TRACK.value)),
        (RolloutTask.due_at < now, literal(TaskStatus.LATE.value)),
        (RolloutTask.due_at <= now + due_soon, literal(TaskStatus.DUE_SOON.value)),
        else_=literal(TaskStatus.ON_TRACK.value),
    )


def status_rank_expr(now: datetime, due_soon: timedelta) -> ColumnElement[int]:
    return case(
        (RolloutTask.state == TaskState.DONE.value, 3),
        (RolloutTask.state == TaskState.WAIVED.value, 4),
        (RolloutTask.due_at.is_(None), 2),
        (RolloutTask.due_at < now, 0),
        (RolloutTask.due_at <= now + due_soon, 1),
        else_=2,
    )


@dataclass
class TaskFilter:
    directive_id: int | None = None
    facility_code: str | None = None
    region_code: str | None = None
    measure_code: str | None = None
    status: str | None = None


def _filtered(stmt: Select[Any], f: TaskFilter, now: datetime, due_soon: timedelta) -> Select[Any]:
    if f.directive_id is not None:
        stmt = stmt.where(RolloutTask.directive_id == f.directive_id)
    if f.facility_code:
        stmt = stmt.where(Facility.code == f.facility_code)
    if f.region_code:
        stmt = stmt.where(Region.code == f.region_code)
    if f.measure_code:
        stmt = stmt.where(Countermeasure.code == f.measure_code)
    if f.status:
        stmt = stmt.where(status_expr(now, due_soon) == f.status)
    return stmt


def _task_select(*cols: Any) -> Select[Any]:
    return (
        select(*cols)
        .select_from(RolloutTask)
        .join(Facility, Facility.id == RolloutTask.facility_id)
        .join(Region, Region.id == Facility.region_id)
        .join(Countermeasure, Countermeasure.id == RolloutTask.countermeasure_id)
    )


async def list_tasks(
    db: AsyncSession,
    scope: Scope,
    f: TaskFilter,
    now: datetime,
    due_soon: timedelta,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[tuple[RolloutTask, Facility, Region, Countermeasure]], int]:
    """Tasks in scope matching the filter: late first, then due soon, by due time."""
    base = _filtered(_task_select(RolloutTask.id).where(task_scope(scope)), f, now, due_soon)
    total = int(await db.scalar(select(func.count()).select_from(base.subquery())) or 0)
    stmt = _filtered(
        _task_select(RolloutTask, Facility, Region, Countermeasure).where(task_scope(scope)),
        f,
        now,
        due_soon,
    ).order_by(
        status_rank_expr(now, due_soon),
        RolloutTask.due_at.is_(None),
        RolloutTask.due_at,
        Facility.code,
        Countermeasure.position,
        RolloutTask.id,
    )
    rows = (await db.execute(stmt.limit(limit).offset(offset))).all()
    return [(t, fa, r, c) for t, fa, r, c in rows], total


async def get_task(
    db: AsyncSession, principal: Principal, task_id: int, perm: Perm = Perm.PROGRAMME_READ
) -> tuple[RolloutTask, Facility, Region, Countermeasure]:
    """The task if the caller may read it (else 404) and use `perm` on it (else 403)."""
    principal.require_anywhere(perm)
    row = (
        await db.execute(
            _task_select(RolloutTask, Facility, Region, Countermeasure).where(
                RolloutTask.id == task_id
            )
        )
    ).one_or_none()
    if row is None or not principal.allows(
        Perm.PROGRAMME_READ, facility_id=row[1].id, region_id=row[1].region_id
    ):
        raise NotFound(f"There is no rollout task {task_id}.")
    principal.require(perm, facility_id=row[1].id, region_id=row[1].region_id)
    return row[0], row[1], row[2], row[3]


async def task_history(db: AsyncSession, task_id: int) -> list[RolloutTaskEvent]:
    stmt = (
        select(RolloutTaskEvent)
        .where(RolloutTaskEvent.task_id == task_id)
        .order_by(RolloutTaskEvent.id)
    )
    return list((await db.scalars(stmt)).all())


async def _change(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    task: RolloutTask,
    facility: Facility,
    *,
    action: str,
    to_state: str,
    note: str,
    version: int | None,
) -> RolloutTask:
    if version is not None and version != task.version:
        raise Conflict(
            f"Task {task.id} changed since you looked (version {task.version}, not {version}). "
            "Reload and try again."
        )
    now = clock.now()
    who = actor_label(principal)
    before = task.state
    task.state = to_state
    if to_state in (TaskState.DONE, TaskState.WAIVED):
        if before not in (TaskState.DONE, TaskState.WAIVED):
            task.closed_at = now
    else:
        task.closed_at = None
    task.updated_at = now
    task.updated_by = who
    if note:
        task.note = note
    task.version += 1
    db.add(
        RolloutTaskEvent(
            task_id=task.id,
            at=now,
            actor=who,
            action=action,
            from_state=before,
            to_state=to_state,
            note=note,
        )
    )
    await audit.record(
        db,
        clock,
        principal,
        f"rollout.task_{action}",
        target_type="rollout_task",
        target_id=task.id,
        facility_id=facility.id,
        details={"from": before, "to": to_state, "note": note},
    )
    await db.flush()
    return task


async def move_task(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    task_id: int,
    to_state: str,
    *,
    note: str = "",
    version: int | None = None,
) -> RolloutTask:
    task, facility, _r, _m = await get_task(db, principal, task_id, Perm.ROLLOUT_UPDATE)
    if to_state == task.state:
        return task
    if to_state not in MOVES.get(task.state, frozenset()):
        raise Conflict(f"A task that is '{task.state}' cannot be moved to '{to_state}'.")
    task.waiver_requested_by = None if to_state == TaskState.DONE else task.waiver_requested_by
    return await _change(
        db,
        clock,
        principal,
        task,
        facility,
        action="move",
        to_state=to_state,
        note=note,
        version=version,
    )


async def request_waiver(
    db: AsyncSession, clock: Clock, principal: Principal, task_id: int, reason: str
) -> RolloutTask:
    """Ask for a task to be waived; a second person with directives:manage approves it."""
    task, facility, _r, _m = await get_task(db, principal, task_id, Perm.ROLLOUT_UPDATE)
    reason = reason.strip()
    if len(reason) < 3:
        raise InvalidInput(
            "Say why the measure should be waived.",
            errors=[_err(["reason"], "at least 3 characters")],
        )
    if task.state not in (TaskState.PLANNED, TaskState.IN_PROGRESS):
        raise Conflict(f"A task that is '{task.state}' cannot be waived.")
    task.waiver_reason = reason
    task.waiver_requested_by = actor_label(principal)
    task.waiver_requested_at = clock.now()
    task.waiver_approved_by = None
    return await _change(
        db,
        clock,
        principal,
        task,
        facility,
        action="waiver_requested",
        to_state=task.state,
        note=reason,
        version=None,
    )


async def decide_waiver(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    task_id: int,
    *,
    approve: bool,
    note: str = "",
) -> RolloutTask:
    """Approve (→ waived) or refuse a pending waiver. Needs directives:manage at the task's
    facility, and the approver must be a different person from the requester."""
    task, facility, _r, _m = await get_task(db, principal, task_id, Perm.DIRECTIVES_MANAGE)
    if task.waiver_requested_by is None or task.state not in (
        TaskState.PLANNED,
        TaskState.IN_PROGRESS,
    ):
        raise Conflict(f"Task {task.id} has no pending waiver request.")
    who = actor_label(principal)
    if approve and who == task.waiver_requested_by:
        raise Forbidden(
            "A waiver needs a second person: you asked for it, so someone else with "
            "'directives:manage' must approve it."
        )
    if approve:
        task.waiver_approved_by = who
        return await _change(
            db,
            clock,
            principal,
            task,
            facility,
            action="waived",
            to_state=TaskState.WAIVED,
            note=note or task.waiver_reason,
            version=None,
        )
    task.waiver_requested_by = None
    task.waiver_requested_at = None
    return await _change(
        db,
        clock,
        principal,
        task,
        facility,
        action="waiver_refused",
        to_state=task.state,
        note=note,
        version=None,
    )


# ---------------------------------------------------------------------------- board


STATUS_KEYS = [s.value for s in TaskStatus]


def _counts(pairs: list[tuple[str, int]]) -> dict[str, int]:
    out = {k: 0 for k in STATUS_KEYS}
    for status, n in pairs:
        out[str(status)] = out.get(str(status), 0) + int(n)
    out["total"] = sum(out[k] for k in STATUS_KEYS)
    return out


@dataclass
class Board:
    as_of: datetime
    directive_id: int | None
    totals: dict[str, int]
    by_region: list[tuple[str, str, dict[str, int]]]
    by_measure: list[tuple[str, str, dict[str, int]]]
    by_facility: list[tuple[str, str, dict[str, int]]]
    facility_rows: int
    burndown: list[tuple[date, int, int | None]]


def _late_first(
    rows: list[tuple[str, str, dict[str, int]]],
) -> list[tuple[str, str, dict[str, int]]]:
    return sorted(rows, key=lambda r: (-r[2]["late"], -r[2]["due_soon"], r[0]))


async def _resolve(db: AsyncSession, f: TaskFilter) -> tuple[list[ColumnElement[bool]], bool]:
    """The filter as conditions on rollout_tasks (codes turned into ids first, so the big scans
    need no join); and whether the Facility join is needed (region filter). The board counts
    every status, so a status filter is not applied here."""
    conds: list[ColumnElement[bool]] = []
    join_facility = False
    if f.directive_id is not None:
        conds.append(RolloutTask.directive_id == f.directive_id)
    if f.facility_code:
        fid = await db.scalar(select(Facility.id).where(Facility.code == f.facility_code))
        conds.append(RolloutTask.facility_id == (fid or -1))
    if f.measure_code:
        mid = await db.scalar(
            select(Countermeasure.id).where(Countermeasure.code == f.measure_code)
        )
        conds.append(RolloutTask.countermeasure_id == (mid or -1))
    if f.region_code:
        rid = await db.scalar(select(Region.id).where(Region.code == f.region_code))
        conds.append(Facility.region_id == (rid or -1))
        join_facility = True
    return conds, join_facility


def _tasks_from(
    scope: Scope, conds: list[ColumnElement[bool]], join: bool, *cols: Any
) -> Select[Any]:
    stmt = select(*cols).select_from(RolloutTask)
    if join or not scope.everything:
        stmt = stmt.join(Facility, Facility.id == RolloutTask.facility_id).where(task_scope(scope))
    return stmt.where(*conds)


async def board(
    db: AsyncSession,
    scope: Scope,
    now: datetime,
    due_soon: timedelta,
    f: TaskFilter | None = None,
    *,
    facility_limit: int = 100,
    with_burndown: bool = True,
) -> Board:
    """Counts by status per region, per measure and per facility (late first), and the
    burn-down, from two GROUP BY scans of rollout_tasks:

    1. (facility, status) → count: the per-facility rows, summed per region through the
       facility → region map (at most 5 aggregate rows per facility are read, never tasks);
    2. (measure, status, due day, closing day) → count: the per-measure rows, and the burn-down.

    Names are looked up afterwards for the few ids in the answer."""
    f = f or TaskFilter(status=None)
    conds, join = await _resolve(db, f)

    # per facility: one row per facility, in the covering index's order (no sort): counts as
    # sums of simple conditions; on track is the rest
    open_ = RolloutTask.state.in_([TaskState.PLANNED.value, TaskState.IN_PROGRESS.value])
    due = RolloutTask.due_at

    def n_if(cond: ColumnElement[bool]) -> Any:
        return func.sum(case((cond, 1), else_=0))

    per_facility = (
        await db.execute(
            _tasks_from(
                scope,
                conds,
                join,
                RolloutTask.facility_id,
                func.count(),
                n_if(open_ & (due < now)),
                n_if(open_ & (due >= now) & (due <= now + due_soon)),
                n_if(RolloutTask.state == TaskState.DONE.value),
                n_if(RolloutTask.state == TaskState.WAIVED.value),
            ).group_by(RolloutTask.facility_id)
        )
    ).all()
    fcounts: dict[int, dict[str, int]] = {}
    for fid, total, late, soon, done, waived in per_facility:
        late, soon, done, waived = int(late or 0), int(soon or 0), int(done or 0), int(waived or 0)
        fcounts[int(fid)] = {
            "late": late,
            "due_soon": soon,
            "on_track": int(total) - late - soon - done - waived,
            "done": done,
            "waived": waived,
        }
    region_of = dict(
        (await db.execute(select(Facility.id, Facility.region_id).where(task_scope(scope)))).all()
    )
    racc: dict[int, dict[str, int]] = {}
    for fid, c in fcounts.items():
        rid = region_of.get(fid)
        if rid is None:
            continue
        into = racc.setdefault(int(rid), dict.fromkeys(STATUS_KEYS, 0))
        for k, v in c.items():
            into[k] += v
    names = {
        r.id: (r.code, r.name)
        for r in (await db.execute(select(Region.id, Region.code, Region.name))).all()
    }
    by_region = [(*names[rid], _counts(list(c.items()))) for rid, c in racc.items() if rid in names]
    totals = _counts([p for c in racc.values() for p in c.items()])

    worst_ids = sorted(
        fcounts, key=lambda fid: (-fcounts[fid]["late"], -fcounts[fid]["due_soon"], fid)
    )[:facility_limit]
    fnames = {
        r.id: (r.code, r.name)
        for r in (
            await db.execute(
                select(Facility.id, Facility.code, Facility.name).where(Facility.id.in_(worst_ids))
            )
        ).all()
    }
    by_facility = [
        (*fnames.get(fid, (str(fid), "")), _counts(list(fcounts[fid].items()))) for fid in worst_ids
    ]
    by_facility.sort(key=lambda r: (-r[2]["late"], -r[2]["due_soon"], r[0]))

    # per measure: raw (measure, state, due time) groups in the covering index's order (no sort);
    # their status follows from (state, due time) in Python, a few hundred groups at most
    per_measure = (
        await db.execute(
            _tasks_from(
                scope, conds, join, RolloutTask.countermeasure_id, RolloutTask.state,
                RolloutTask.due_at, func.count(),
            ).group_by(RolloutTask.countermeasure_id, RolloutTask.state, RolloutTask.due_at)
        )
    ).all()  # fmt: skip
    macc: dict[int, list[tuple[str, int]]] = {}
    due_groups: list[tuple[datetime, int]] = []
    for mid, state, due, n in per_measure:
        macc.setdefault(int(mid), []).append((status_of(state, due, now, due_soon).value, n))
        if due is not None:
            due_groups.append((due, int(n)))
    measures = {m.id: m for m in await catalogue(db, active_only=False)}
    by_measure = [
        (measures[mid].code, measures[mid].name, _counts(v))
        for mid, v in sorted(macc.items(), key=lambda kv: (measures[kv[0]].position, kv[0]))
        if mid in measures
    ]
    burn: list[tuple[date, int, int | None]] = []
    if with_burndown and due_groups:
        closed_day = _day(db, RolloutTask.closed_at)
        closed = (
            await db.execute(
                _tasks_from(scope, conds, join, closed_day, func.count())
                .where(
                    RolloutTask.state.in_([TaskState.DONE.value, TaskState.WAIVED.value]),
                    RolloutTask.due_at.is_not(None),
                )
                .group_by(closed_day)
            )
        ).all()
        burn = await _burn_points(
            db,
            f,
            now,
            [(d.astimezone(UTC).date().isoformat(), None, n) for d, n in due_groups]
            + [("", c, int(n)) for c, n in closed if c],
        )
    return Board(
        as_of=now,
        directive_id=f.directive_id,
        totals=totals,
        by_region=_late_first(by_region),
        by_measure=by_measure,
        by_facility=by_facility,
        facility_rows=len(fcounts),
        burndown=burn,
    )


def _day(db: AsyncSession, col: Any) -> Any:
    """The UTC calendar day of a timestamp column, as SQL (text 'YYYY-MM-DD')."""
    if db.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", col), "YYYY-MM-DD")
    return func.substr(col, 1, 10)


async def burndown(
    db: AsyncSession, scope: Scope, now: datetime, f: TaskFilter
) -> list[tuple[date, int, int | None]]:
    """Open tasks (not done, not waived) at the end of each UTC day, from the first issue day to
    the last due date; and the ideal line: tasks whose due time is still ahead at the end of that
    day (what would be open if every task were closed exactly when due). Continuous measures
    have no due date and are left out of both lines. `actual` is None for days after today.
    One GROUP BY (due day × closing day) over the tasks."""
    conds, join = await _resolve(db, f)
    due_day, closed_day = _day(db, RolloutTask.due_at), _day(db, RolloutTask.closed_at)
    closed_col = case(
        (RolloutTask.state.in_([TaskState.DONE.value, TaskState.WAIVED.value]), closed_day),
        else_=None,
    )
    rows = (
        await db.execute(
            _tasks_from(scope, conds, join, due_day, closed_col, func.count())
            .where(RolloutTask.due_at.is_not(None))
            .group_by(due_day, closed_col)
        )
    ).all()
    return await _burn_points(db, f, now, [(d, c, int(n)) for d, c, n in rows])


async def _burn_points(
    db: AsyncSession, f: TaskFilter, now: datetime, rows: list[tuple[str, str | None, int]]
) -> list[tuple[date, int, int | None]]:
    if not any(d for d, _c, _n in rows):
        return []
    first_issue = await db.scalar(
        select(func.min(Directive.issued_at)).where(
            *([Directive.id == f.directive_id] if f.directive_id is not None else []),
            Directive.task_count > 0,
        )
    )
    total = sum(n for d, _c, n in rows if d)
    due: dict[date, int] = {}
    closed: dict[date, int] = {}
    for d, c, n in rows:
        if d:
            day = date.fromisoformat(d)
            due[day] = due.get(day, 0) + n
        if c:
            cday = date.fromisoformat(c)
            closed[cday] = closed.get(cday, 0) + n
    from watchfloor.clock import as_utc

    first_day = as_utc(first_issue).date() if first_issue is not None else min(due)
    last_day = min(max(due), first_day + timedelta(days=400))
    today = now.astimezone(UTC).date()
    closed_n = sum(n for d, n in closed.items() if d < first_day)
    due_n = sum(n for d, n in due.items() if d < first_day)
    points: list[tuple[date, int, int | None]] = []
    day = first_day
    while day <= last_day:
        closed_n += closed.get(day, 0)
        due_n += due.get(day, 0)
        points.append((day, total - due_n, total - closed_n if day <= today else None))
        day += timedelta(days=1)
    return points


def due_soon_delta(days: float) -> timedelta:
    return timedelta(days=days)
