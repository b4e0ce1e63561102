"""HTTP API of the drills domain (thin: parse, authorise, call the service).

Reading needs `drills:read` at the facility; scheduling, running drills, participants, after-action
reports and corrective actions need `drills:manage` there (starting a lockdown-kind drill also
`lockdown:start`); changing the organisation's requirements needs `drills:manage` org-wide.
A drill, schedule, action or facility outside the caller's scope answers 404. Every change is
audited. CSV exports cover every table of the domain.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.drills import service
from watchfloor.drills.models import LOCKDOWN_KINDS, Drill, DrillAction, DrillSchedule
from watchfloor.drills.schemas import (
    ActionIn,
    ActionMove,
    ActionOut,
    ComplianceOut,
    ComplianceRow,
    DrillDetail,
    DrillIn,
    DrillOut,
    EndIn,
    ParticipantIn,
    ParticipantOut,
    RegionCounts,
    ReportIn,
    ReportOut,
    RequirementIn,
    RequirementOut,
    ScheduleChange,
    ScheduleIn,
    ScheduleOut,
)
from watchfloor.rollout.reports import csv_text
from watchfloor.sites.models import Facility

router = APIRouter(tags=["drills"])

DrillId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Drill id.")]
ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Drill schedule id.")]
ActionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Corrective action id.")]
#: a facility or region code in a query (text a database can compare: no NUL)
CodeQ = Annotated[str | None, Query(max_length=40, pattern=r"^[^\x00]*$")]


def read_scope(principal: Principal) -> Scope:
    principal.require_anywhere(Perm.DRILLS_READ)
    return principal.scope(Perm.DRILLS_READ)


def csv_response(name: str, header: list[str], rows: Any) -> Response:
    return Response(
        csv_text(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def schedule_out(s: DrillSchedule, f: Facility, now: Any) -> ScheduleOut:
    return ScheduleOut(
        id=s.id,
        facility_code=f.code,
        kind=s.kind,
        title=s.title,
        rrule=s.rrule,
        anchor_local=s.anchor_local,
        timezone=f.timezone,
        partner_agencies=list(s.partner_agencies),
        paused=s.paused,
        next_occurrences=[]
        if s.paused
        else service.next_occurrences(s.rrule, s.anchor_local, f.timezone, now),
        created_by=s.created_by,
        created_at=s.created_at,
    )


def action_out(a: DrillAction, f: Facility, overdue: bool) -> ActionOut:
    return ActionOut(
        id=a.id,
        drill_id=a.drill_id,
        facility_code=f.code,
        facility_name=f.name,
        description=a.description,
        owner=a.owner,
        due_on=a.due_on,
        state=a.state,
        overdue=overdue,
        created_by=a.created_by,
        updated_by=a.updated_by,
        updated_at=a.updated_at,
        done_at=a.done_at,
        done_by=a.done_by,
    )


def drill_fields(d: Drill, f: Facility, active: bool) -> dict[str, Any]:
    return {
        "id": d.id,
        "facility_code": f.code,
        "facility_name": f.name,
        "kind": d.kind,
        "title": d.title,
        "state": d.state,
        "schedule_id": d.schedule_id,
        "planned_at": d.planned_at,
        "started_at": d.started_at,
        "ended_at": d.ended_at,
        "run_by": d.run_by,
        "partner_agencies": list(d.partner_agencies),
        "uses_lockdown": d.kind in LOCKDOWN_KINDS,
        "lockdown_id": d.lockdown_id,
        "lockdown_active": active,
        "roll_call_id": d.roll_call_id,
        "seconds_to_locked": d.seconds_to_locked,
        "doors_total": d.doors_total,
        "doors_failed": d.doors_failed,
        "seconds_to_accounted": d.seconds_to_accounted,
        "accounted_share": d.accounted_share,
        "safe_count": d.safe_count,
        "need_help_count": d.need_help_count,
        "no_answer_count": d.no_answer_count,
        "seconds_to_lifted": d.seconds_to_lifted,
        "seconds_to_evacuated": d.seconds_to_evacuated,
        "timings_source": d.timings_source,
        "notes": d.notes,
    }


async def drill_detail(db: AsyncSession, d: Drill, f: Facility, now: Any) -> DrillDetail:
    report = await service.report_of(db, d.id)
    actions = await service.list_actions(db, Scope(everything=True), now, drill_id=d.id)
    return DrillDetail(
        **drill_fields(d, f, await service.lockdown_active(db, d)),
        participants=[
            ParticipantOut.model_validate(p) for p in await service.participants(db, d.id)
        ],
        report=ReportOut.model_validate(report) if report else None,
        actions=[action_out(a, fa, o) for a, fa, o in actions],
    )


# ---------------------------------------------------------------------------- requirements


@router.get("/drills/requirements", response_model=list[RequirementOut])
async def list_requirements(db: DB, principal: CurrentPrincipal) -> Any:
    """The organisation's required drill kinds and how often each facility must hold them."""
    read_scope(principal)
    return await service.requirements(db)


@router.put("/drills/requirements/{drill_kind}", response_model=RequirementOut)
async def put_requirement(
    drill_kind: Annotated[str, Path(max_length=30, pattern=r"^[a-z_]+$")],
    body: RequirementIn,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Require a drill kind of every facility (or change / switch off the requirement). Needs
    drills:manage across the whole organisation."""
    req = await service.set_requirement(db, clock, principal, drill_kind, body)
    await db.commit()
    return req


@router.get("/drills/requirements.csv", response_class=Response)
async def requirements_csv(db: DB, principal: CurrentPrincipal) -> Response:
    read_scope(principal)
    rows = await service.requirements(db)
    return csv_response(
        "drill-requirements.csv",
        ["kind", "interval_months", "active", "note", "updated_at_utc", "updated_by"],
        ([r.kind, r.interval_months, r.active, r.note, r.updated_at, r.updated_by] for r in rows),
    )


# ---------------------------------------------------------------------------- schedules


@router.get("/drills/schedules", response_model=list[ScheduleOut])
async def list_schedules(
    db: DB, clock: ClockDep, principal: CurrentPrincipal, facility: CodeQ = None
) -> list[ScheduleOut]:
    """Schedules in your scope (optionally of one facility) with their next occurrences."""
    scope = read_scope(principal)
    fid = None
    if facility:
        fid = (await service.facility_for(db, principal, facility)).id
    now = clock.now()
    return [schedule_out(s, f, now) for s, f in await service.list_schedules(db, scope, fid)]


@router.post("/drills/schedules", response_model=ScheduleOut, status_code=status.HTTP_201_CREATED)
async def create_schedule(
    body: ScheduleIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ScheduleOut:
    """Add a recurring drill: an RFC 5545 RRULE anchored at a local date and time (the
    facility's time zone, DST-correct). Rules that do not parse, never fire again or fire more
    often than daily are refused naming `rrule`."""
    schedule = await service.create_schedule(db, clock, principal, body)
    await db.commit()
    s, f = await service.schedule_in_scope(db, principal, schedule.id)
    return schedule_out(s, f, clock.now())


@router.get("/drills/schedules.csv", response_class=Response)
async def schedules_csv(db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Response:
    scope = read_scope(principal)
    now = clock.now()
    rows = await service.list_schedules(db, scope)
    return csv_response(
        "drill-schedules.csv",
        ["schedule_id", "facility_code", "kind", "title", "rrule", "anchor_local", "timezone",
         "partner_agencies", "paused", "next_at_utc", "created_by", "created_at_utc"],
        (
            [s.id, f.code, s.kind, s.title, s.rrule, s.anchor_local, f.timezone,
             "; ".join(s.partner_agencies), s.paused,
             next(iter(service.next_occurrences(s.rrule, s.anchor_local, f.timezone, now, 1)),
                  None) if not s.paused else None,
             s.created_by, s.created_at]
            for s, f in rows
        ),
    )  # fmt: skip


@router.get("/drills/schedules/{schedule_id}", response_model=ScheduleOut)
async def get_schedule(
    schedule_id: ScheduleId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ScheduleOut:
    s, f = await service.schedule_in_scope(db, principal, schedule_id)
    return schedule_out(s, f, clock.now())


@router.patch("/drills/schedules/{schedule_id}", response_model=ScheduleOut)
async def change_schedule(
    schedule_id: ScheduleId,
    body: ScheduleChange,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> ScheduleOut:
    """Pause or resume a schedule."""
    await service.set_paused(db, clock, principal, schedule_id, body.paused)
    await db.commit()
    s, f = await service.schedule_in_scope(db, principal, schedule_id)
    return schedule_out(s, f, clock.now())


# ---------------------------------------------------------------------------- compliance


@router.get("/drills/compliance", response_model=ComplianceOut)
async def get_compliance(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    region: CodeQ = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> ComplianceOut:
    """Per facility and required kind: last completed drill, next due, status (overdue, never
    held, due soon, compliant), most urgent first; counts per region; overdue corrective
    actions."""
    scope = read_scope(principal)
    now = clock.now()
    soon = service.due_soon_delta(settings.drills_due_soon_days)
    entries = await service.compliance(db, scope, now, soon, region_code=region)
    totals, regions = service.count_by_region(entries)
    actions = await service.list_actions(db, scope, now, open_only=True, region_code=region)
    return ComplianceOut(
        as_of=now,
        counts=totals,
        regions=[RegionCounts(region_code=c, region_name=n, **v) for c, n, v in regions],
        rows=[
            ComplianceRow(
                facility_code=e.facility_code,
                facility_name=e.facility_name,
                region_code=e.region_code,
                kind=e.kind,
                interval_months=e.interval_months,
                last_completed_at=e.last_completed_at,
                next_due_at=e.next_due_at,
                status=e.status,
            )
            for e in entries[:limit]
        ],
        overdue_actions=[action_out(a, f, o) for a, f, o in actions if o],
    )


@router.get("/drills/compliance.csv", response_class=Response)
async def compliance_csv(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    region: CodeQ = None,
) -> Response:
    scope = read_scope(principal)
    now = clock.now()
    soon = service.due_soon_delta(settings.drills_due_soon_days)
    entries = await service.compliance(db, scope, now, soon, region_code=region)
    return csv_response(
        "drill-compliance.csv",
        ["facility_code", "facility_name", "region_code", "kind", "interval_months",
         "last_completed_at_utc", "next_due_at_utc", "status"],
        ([e.facility_code, e.facility_name, e.region_code, e.kind, e.interval_months,
          e.last_completed_at, e.next_due_at, e.status] for e in entries),
    )  # fmt: skip


# ---------------------------------------------------------------------------- corrective actions


@router.get("/drills/actions", response_model=list[ActionOut])
async def list_actions(
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    open_only: bool = False,
    region: CodeQ = None,
) -> list[ActionOut]:
    """The corrective-action board: overdue first, then open by due date, then done."""
    scope = read_scope(principal)
    rows = await service.list_actions(
        db, scope, clock.now(), open_only=open_only, region_code=region
    )
    return [action_out(a, f, o) for a, f, o in rows]


@router.get("/drills/actions.csv", response_class=Response)
async def actions_csv(db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Response:
    scope = read_scope(principal)
    rows = await service.list_actions(db, scope, clock.now())
    return csv_response(
        "drill-corrective-actions.csv",
        ["action_id", "drill_id", "facility_code", "description", "owner", "due_on", "state",
         "overdue", "created_by", "updated_by", "updated_at_utc", "done_by", "done_at_utc"],
        ([a.id, a.drill_id, f.code, a.description, a.owner, a.due_on.isoformat(), a.state, o,
          a.created_by, a.updated_by, a.updated_at, a.done_by, a.done_at] for a, f, o in rows),
    )  # fmt: skip


@router.post("/drills/actions/{action_id}/move", response_model=ActionOut)
async def move_action(
    action_id: ActionId, body: ActionMove, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ActionOut:
    """Move a corrective action: open → in progress → done (a done action can be reopened)."""
    action, facility = await service.move_action(db, clock, principal, action_id, body.to)
    await db.commit()
    return action_out(
        action, facility, service.action_overdue(action, facility.timezone, clock.now())
    )


# ---------------------------------------------------------------------------- exports


@router.get("/drills.csv", response_class=Response)
async def drills_csv(db: DB, principal: CurrentPrincipal) -> Response:
    """Every drill in your scope with its timings."""
    scope = read_scope(principal)
    rows = await service.list_drills(db, scope, limit=1_000_000)
    return csv_response(
        "drills.csv",
        ["drill_id", "facility_code", "kind", "title", "state", "schedule_id", "planned_at_utc",
         "started_at_utc", "ended_at_utc", "run_by", "partner_agencies", "lockdown_id",
         "roll_call_id", "seconds_to_locked", "doors_total", "doors_failed",
         "seconds_to_accounted", "accounted_share", "safe", "need_help", "no_answer",
         "seconds_to_lifted", "seconds_to_evacuated", "timings_source", "notes"],
        ([d.id, f.code, d.kind, d.title, d.state, d.schedule_id, d.planned_at, d.started_at,
          d.ended_at, d.run_by, "; ".join(d.partner_agencies), d.lockdown_id, d.roll_call_id,
          d.seconds_to_locked, d.doors_total, d.doors_failed, d.seconds_to_accounted,
          None if d.accounted_share is None else round(d.accounted_share, 4), d.safe_count,
          d.need_help_count, d.no_answer_count, d.seconds_to_lifted, d.seconds_to_evacuated,
          d.timings_source, d.notes] for d, f in rows),
    )  # fmt: skip


@router.get("/drills/participants.csv", response_class=Response)
async def participants_csv(db: DB, principal: CurrentPrincipal) -> Response:
    from watchfloor.drills.models import DrillParticipant
    from watchfloor.sites.service import scope_filter

    scope = read_scope(principal)
    rows = (
        await db.execute(
            select(DrillParticipant, Facility.code)
            .join(Drill, Drill.id == DrillParticipant.drill_id)
            .join(Facility, Facility.id == Drill.facility_id)
            .where(scope_filter(scope))
            .order_by(DrillParticipant.drill_id, DrillParticipant.id)
        )
    ).all()
    return csv_response(
        "drill-participants.csv",
        ["participant_id", "drill_id", "facility_code", "source", "name", "agency", "count",
         "answer", "added_by", "added_at_utc"],
        ([p.id, p.drill_id, code, p.source, p.name, p.agency, p.count, p.answer, p.added_by,
          p.added_at] for p, code in rows),
    )  # fmt: skip


@router.get("/drills/reports.csv", response_class=Response)
async def reports_csv(db: DB, principal: CurrentPrincipal) -> Response:
    """Every after-action report in your scope."""
    from watchfloor.drills.models import DrillReport
    from watchfloor.sites.service import scope_filter

    scope = read_scope(principal)
    rows = (
        await db.execute(
            select(DrillReport, Drill, Facility.code)
            .join(Drill, Drill.id == DrillReport.drill_id)
            .join(Facility, Facility.id == Drill.facility_id)
            .where(scope_filter(scope))
            .order_by(DrillReport.drill_id)
        )
    ).all()
    return csv_response(
        "drill-after-action-reports.csv",
        ["drill_id", "facility_code", "kind", "drill_ended_at_utc", "what_worked", "gaps",
         "written_by", "written_at_utc", "updated_at_utc"],
        ([r.drill_id, code, d.kind, d.ended_at, r.worked, r.gaps, r.written_by, r.written_at,
          r.updated_at] for r, d, code in rows),
    )  # fmt: skip


# ---------------------------------------------------------------------------- drills


@router.get("/drills", response_model=list[DrillOut])
async def list_drills(
    db: DB,
    principal: CurrentPrincipal,
    facility: CodeQ = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[DrillOut]:
    """Drills in your scope: running first, then planned (soonest first), then past ones."""
    scope = read_scope(principal)
    fid = None
    if facility:
        fid = (await service.facility_for(db, principal, facility)).id
    rows = await service.list_drills(db, scope, facility_id=fid, limit=limit)
    return [DrillOut(**drill_fields(d, f, False)) for d, f in rows]


@router.post("/drills", response_model=DrillDetail, status_code=status.HTTP_201_CREATED)
async def plan_drill(body: DrillIn, db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Any:
    """Plan a drill at a facility (optionally from one of its schedules)."""
    drill, facility = await service.plan_drill(db, clock, principal, body)
    await db.commit()
    return await drill_detail(db, drill, facility, clock.now())


@router.get("/drills/{drill_id}", response_model=DrillDetail)
async def get_drill(drill_id: DrillId, db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Any:
    """A drill with its timings, participants, after-action report and corrective actions."""
    drill, facility = await service.drill_in_scope(db, principal, drill_id)
    return await drill_detail(db, drill, facility, clock.now())


async def hand_to_engine(request: Request, ids: list[int]) -> None:
    """Committed lockdowns go to the lockdown engine (as the lockdown API does)."""
    from watchfloor.lockdown.handlers import engine_of

    engine = engine_of(request.app)
    if engine is not None and ids:
        await engine.ensure(ids)


@router.post("/drills/{drill_id}/start", response_model=DrillDetail)
async def start_drill(
    drill_id: DrillId, request: Request, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Start a planned drill. Active-shooter, lockdown and shelter-in-place drills lock the
    facility down in EXERCISE mode (needs lockdown:start there) and the EXERCISE roll call starts
    with it."""
    from watchfloor.lockdown import service as lockdown

    try:
        _drill, ids = await service.start_drill(db, clock, principal, drill_id)
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise lockdown.raced() from None
    await hand_to_engine(request, ids)
    drill, facility = await service.drill_in_scope(db, principal, drill_id)
    return await drill_detail(db, drill, facility, clock.now())


@router.post("/drills/{drill_id}/end", response_model=DrillDetail)
async def end_drill(
    drill_id: DrillId,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    body: EndIn | None = None,
) -> Any:
    """End a running drill. A lockdown drill's timings are captured from its lockdown and roll
    call; other kinds take typed timings. The lockdown is not lifted here: lift it on its page."""
    await service.end_drill(db, clock, principal, drill_id, body or EndIn())
    await db.commit()
    drill, facility = await service.drill_in_scope(db, principal, drill_id)
    return await drill_detail(db, drill, facility, clock.now())


@router.post("/drills/{drill_id}/capture", response_model=DrillDetail)
async def capture(drill_id: DrillId, db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Any:
    """Read the timings from the lockdown and roll call again (e.g. after the lift)."""
    await service.recapture(db, clock, principal, drill_id)
    await db.commit()
    drill, facility = await service.drill_in_scope(db, principal, drill_id)
    return await drill_detail(db, drill, facility, clock.now())


@router.post("/drills/{drill_id}/cancel", response_model=DrillDetail)
async def cancel_drill(
    drill_id: DrillId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    await service.cancel_drill(db, clock, principal, drill_id)
    await db.commit()
    drill, facility = await service.drill_in_scope(db, principal, drill_id)
    return await drill_detail(db, drill, facility, clock.now())


@router.post(
    "/drills/{drill_id}/participants",
    response_model=ParticipantOut,
    status_code=status.HTTP_201_CREATED,
)
async def add_participant(
    drill_id: DrillId, body: ParticipantIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Add a person by hand, or an outside agency's people (agency and count)."""
    p = await service.add_participant(db, clock, principal, drill_id, body)
    await db.commit()
    return p


@router.put("/drills/{drill_id}/report", response_model=ReportOut)
async def put_report(
    drill_id: DrillId, body: ReportIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Write or update the after-action report: what worked and the gaps."""
    report = await service.save_report(db, clock, principal, drill_id, body)
    await db.commit()
    return report


@router.post(
    "/drills/{drill_id}/actions", response_model=ActionOut, status_code=status.HTTP_201_CREATED
)
async def add_action(
    drill_id: DrillId, body: ActionIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ActionOut:
    """Add a corrective action (a tracked task with an owner and a due date on or after the
    drill's date)."""
    action = await service.add_action(db, clock, principal, drill_id, body)
    await db.commit()
    action, facility = await service.action_in_scope(db, principal, action.id)
    return action_out(
        action, facility, service.action_overdue(action, facility.timezone, clock.now())
    )
