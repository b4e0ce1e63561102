"""REST API of the rollout domain: the countermeasure catalogue, directives, rollout tasks, the
rollout board, the preparedness scorecard, and their reports (PDF, CSV).

Reading needs `programme:read` (facility managers see their own facilities' tasks, programme
managers and admins everything in scope); moving a task and asking for a waiver need
`rollout:update` at the task's facility; issuing directives and deciding waivers need
`directives:manage` (a waiver's approver must be another person than its requester). A task or
directive outside the caller's scope answers 404. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import Response
from sqlalchemy import select

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import NotFound
from watchfloor.rollout import reports, scorecard, service
from watchfloor.rollout.deadlines import local_display, status_of
from watchfloor.rollout.models import Countermeasure, Directive, RolloutTask
from watchfloor.rollout.schemas import (
    BoardOut,
    BoardRow,
    BurnPoint,
    ComponentOut,
    CountermeasureOut,
    Counts,
    DirectiveIn,
    DirectiveOut,
    DirectivePreview,
    FacilityScorecardOut,
    MoveIn,
    ReasonOut,
    RollupCell,
    RollupRow,
    ScorecardOut,
    TaskDetail,
    TaskEventOut,
    TaskOut,
    TaskPage,
    WaiverDecisionIn,
    WaiverRequestIn,
)
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility, Organisation, Region

router = APIRouter(tags=["rollout"])

TaskId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Rollout task id.")]
DirectiveId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Directive id.")]
CodeQ = Annotated[str | None, Query(max_length=40)]
StatusQ = Annotated[
    str | None, Query(pattern="^(late|due_soon|on_track|done|waived)$", description="Board status.")
]


def read_scope(principal: Principal) -> Any:
    principal.require_anywhere(Perm.PROGRAMME_READ)
    return principal.scope(Perm.PROGRAMME_READ)


def task_out(
    task: RolloutTask, fac: Facility, region: Region, m: Countermeasure, *, now: Any, soon: Any
) -> dict[str, Any]:
    return {
        "id": task.id,
        "directive_id": task.directive_id,
        "facility_code": fac.code,
        "facility_name": fac.name,
        "region_code": region.code,
        "measure_code": m.code,
        "measure_name": m.name,
        "deadline": m.deadline,
        "state": task.state,
        "status": status_of(task.state, task.due_at, now, soon).value,
        "due_at": task.due_at,
        "due_local": local_display(task.due_at, fac.timezone),
        "review_days": task.review_days,
        "closed_at": task.closed_at,
        "updated_at": task.updated_at,
        "updated_by": task.updated_by,
        "note": task.note,
        "waiver_reason": task.waiver_reason,
        "waiver_requested_by": task.waiver_requested_by,
        "waiver_approved_by": task.waiver_approved_by,
        "version": task.version,
    }


def directive_out(d: Directive, facilities: int, tasks: int, *, full: bool) -> DirectiveOut:
    return DirectiveOut(
        id=d.id,
        title=d.title,
        description=d.description,
        issued_at=d.issued_at,
        issued_by=d.issued_by,
        measures=list(d.measures),
        selection_kind=str(d.selection.get("kind", "")) if full else "",
        facility_count=facilities,
        task_count=tasks,
        last_due_at=d.last_due_at,
    )


# ---------------------------------------------------------------------------- catalogue


@router.get("/countermeasures", response_model=list[CountermeasureOut])
async def list_countermeasures(db: DB, principal: CurrentPrincipal) -> list[Countermeasure]:
    """The countermeasure catalogue, with each measure's standard deadline."""
    read_scope(principal)
    return await service.catalogue(db)


# ---------------------------------------------------------------------------- directives


@router.post("/directives/preview", response_model=DirectivePreview)
async def preview_directive(
    body: DirectiveIn, db: DB, clock: ClockDep, settings: SettingsDep, principal: CurrentPrincipal
) -> DirectivePreview:
    """What issuing this directive would create (facilities, measures, tasks); writes nothing."""
    plan = await service.plan_directive(
        db, clock, principal, body, max_tasks=settings.rollout_max_directive_tasks
    )
    return DirectivePreview(
        facility_count=len(plan.facilities),
        measure_count=len(plan.measures),
        task_count=plan.task_count,
        measures=[m.code for m in plan.measures],
        last_due_at=plan.last_due(),
    )


@router.post("/directives", response_model=DirectiveOut, status_code=status.HTTP_201_CREATED)
async def issue_directive(
    body: DirectiveIn, db: DB, clock: ClockDep, settings: SettingsDep, principal: CurrentPrincipal
) -> DirectiveOut:
    """Issue a directive: one task per facility and measure, due by the measure's deadline."""
    directive = await service.issue_directive(
        db, clock, principal, body, max_tasks=settings.rollout_max_directive_tasks
    )
    await db.commit()
    return directive_out(directive, directive.facility_count, directive.task_count, full=True)


@router.get("/directives", response_model=list[DirectiveOut])
async def list_directives(db: DB, principal: CurrentPrincipal) -> list[DirectiveOut]:
    """Directives with tasks in your scope, newest first (counts are of your scope)."""
    scope = read_scope(principal)
    return [
        directive_out(d, f, t, full=scope.everything)
        for d, f, t in await service.directives(db, scope)
    ]


@router.get("/directives/{directive_id}", response_model=DirectiveOut)
async def get_directive(
    directive_id: DirectiveId, db: DB, principal: CurrentPrincipal
) -> DirectiveOut:
    scope = read_scope(principal)
    d, f, t = await service.directive_in_scope(db, scope, directive_id)
    return directive_out(d, f, t, full=scope.everything)


# ---------------------------------------------------------------------------- tasks


@router.get("/rollout/tasks", response_model=TaskPage)
async def list_tasks(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    directive_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    facility: CodeQ = None,
    region: CodeQ = None,
    measure: CodeQ = None,
    status_: Annotated[StatusQ, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> TaskPage:
    """Tasks in your scope, late first; filter by directive, facility, region, measure, status."""
    scope = read_scope(principal)
    now, soon = clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    f = service.TaskFilter(directive_id, facility, region, measure, status_)
    rows, total = await service.list_tasks(db, scope, f, now, soon, limit=limit, offset=offset)
    return TaskPage(items=[TaskOut(**task_out(*r, now=now, soon=soon)) for r in rows], total=total)


async def _task_detail(db: Any, row: Any, now: Any, soon: Any) -> TaskDetail:
    history = await service.task_history(db, row[0].id)
    return TaskDetail(
        **task_out(*row, now=now, soon=soon),
        history=[TaskEventOut.model_validate(h) for h in history],
    )


@router.get("/rollout/tasks/{task_id}", response_model=TaskDetail)
async def get_task(
    task_id: TaskId, db: DB, clock: ClockDep, settings: SettingsDep, principal: CurrentPrincipal
) -> TaskDetail:
    row = await service.get_task(db, principal, task_id)
    return await _task_detail(
        db, row, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )


@router.post("/rollout/tasks/{task_id}/move", response_model=TaskDetail)
async def move_task(
    task_id: TaskId,
    body: MoveIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> TaskDetail:
    """Move a task: planned → in progress → done (and back: a done task can be reopened)."""
    await service.move_task(
        db, clock, principal, task_id, body.to, note=body.note, version=body.version
    )
    await db.commit()
    row = await service.get_task(db, principal, task_id)
    return await _task_detail(
        db, row, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )


@router.post("/rollout/tasks/{task_id}/waiver", response_model=TaskDetail)
async def request_waiver(
    task_id: TaskId,
    body: WaiverRequestIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> TaskDetail:
    """Ask for the task to be waived, saying why; another person with directives:manage decides."""
    await service.request_waiver(db, clock, principal, task_id, body.reason)
    await db.commit()
    row = await service.get_task(db, principal, task_id)
    return await _task_detail(
        db, row, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )


@router.post("/rollout/tasks/{task_id}/waiver/approve", response_model=TaskDetail)
async def approve_waiver(
    task_id: TaskId,
    body: WaiverDecisionIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> TaskDetail:
    """Approve a pending waiver (not your own request): the task becomes waived."""
    await service.decide_waiver(db, clock, principal, task_id, approve=True, note=body.note)
    await db.commit()
    row = await service.get_task(db, principal, task_id)
    return await _task_detail(
        db, row, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )


@router.post("/rollout/tasks/{task_id}/waiver/refuse", response_model=TaskDetail)
async def refuse_waiver(
    task_id: TaskId,
    body: WaiverDecisionIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> TaskDetail:
    """Refuse a pending waiver: the task stays as it was."""
    await service.decide_waiver(db, clock, principal, task_id, approve=False, note=body.note)
    await db.commit()
    row = await service.get_task(db, principal, task_id)
    return await _task_detail(
        db, row, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )


# ---------------------------------------------------------------------------- board


async def build_board(
    db: Any,
    clock: Any,
    settings: Any,
    principal: Principal,
    f: service.TaskFilter,
    limit: int = 100,
) -> service.Board:
    scope = read_scope(principal)
    return await service.board(
        db,
        scope,
        clock.now(),
        service.due_soon_delta(settings.rollout_due_soon_days),
        f,
        facility_limit=limit,
    )


def board_out(b: service.Board) -> BoardOut:
    def rows(items: list[tuple[str, str, dict[str, int]]]) -> list[BoardRow]:
        return [BoardRow(key=k, name=n, counts=Counts(**c)) for k, n, c in items]

    return BoardOut(
        as_of=b.as_of,
        directive_id=b.directive_id,
        totals=Counts(**b.totals),
        by_region=rows(b.by_region),
        by_measure=rows(b.by_measure),
        by_facility=rows(b.by_facility),
        facility_rows=b.facility_rows,
        burndown=[BurnPoint(day=d.isoformat(), ideal=i, actual=a) for d, i, a in b.burndown],
    )


@router.get("/rollout/board", response_model=BoardOut)
async def rollout_board(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    directive_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    region: CodeQ = None,
    measure: CodeQ = None,
    facility_limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> BoardOut:
    """Counts by status (late, due soon, on track, done, waived) per region, per measure and per
    facility (most late first), and the burn-down: open tasks per day against the ideal line."""
    f = service.TaskFilter(directive_id=directive_id, region_code=region, measure_code=measure)
    return board_out(await build_board(db, clock, settings, principal, f, facility_limit))


async def _org_name(db: Any) -> str:
    return (await db.scalar(select(Organisation.name).order_by(Organisation.id).limit(1))) or ""


@router.get("/rollout/report.pdf", response_class=Response)
async def rollout_report(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    directive_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """The rollout status as a PDF (the board's figures, the burn-down chart, and the
    preparedness scorecard's roll-up with its chart)."""
    scope = read_scope(principal)
    title = "All directives"
    if directive_id is not None:
        d, _f, _t = await service.directive_in_scope(db, scope, directive_id)
        title = d.title
    b = await build_board(
        db, clock, settings, principal, service.TaskFilter(directive_id=directive_id), 60
    )
    rollup = await scorecard.rollup(
        db, scope, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )
    pdf = reports.rollout_pdf(
        b,
        organisation=await _org_name(db) if scope.everything else "your facilities",
        title=title,
        generated_by=principal.label,
        scorecard=rollup,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="rollout-status.pdf"'},
    )


@router.get("/rollout/tasks.csv", response_class=Response)
async def tasks_csv(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    directive_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Every task in your scope as CSV (one row per facility and measure)."""
    scope = read_scope(principal)
    now, soon = clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    rows, _total = await service.list_tasks(
        db, scope, service.TaskFilter(directive_id=directive_id), now, soon, limit=1_000_000
    )
    header = [
        "task_id", "directive_id", "facility_code", "facility_name", "region_code",
        "measure_code", "measure_name", "deadline", "state", "status", "due_at_utc",
        "closed_at_utc", "updated_by", "waiver_reason", "waiver_approved_by",
    ]  # fmt: skip
    body = reports.csv_text(
        header,
        (
            [
                t.id,
                t.directive_id,
                fa.code,
                fa.name,
                r.code,
                m.code,
                m.name,
                m.deadline,
                t.state,
                status_of(t.state, t.due_at, now, soon).value,
                t.due_at,
                t.closed_at,
                t.updated_by,
                t.waiver_reason,
                t.waiver_approved_by or "",
            ]  # fmt: skip
            for t, fa, r, m in rows
        ),
    )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="rollout-tasks.csv"'},
    )


# ---------------------------------------------------------------------------- scorecard


def _cells(comps: dict[str, dict[str, int]]) -> dict[str, RollupCell]:
    return {k: RollupCell(**v) for k, v in comps.items()}


@router.get("/scorecard", response_model=ScorecardOut)
async def scorecard_rollup(
    db: DB, clock: ClockDep, settings: SettingsDep, principal: CurrentPrincipal
) -> ScorecardOut:
    """Preparedness roll-up: for each component, facilities in place / under review / gap / not
    tracked, per region and for the whole organisation (your scope)."""
    scope = read_scope(principal)
    r = await scorecard.rollup(
        db, scope, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )
    return ScorecardOut(
        as_of=r.as_of,
        components=scorecard.COMPONENTS,
        organisation=RollupRow(
            key="org",
            name=(await _org_name(db)) if scope.everything else "Your facilities",
            components=_cells(r.organisation),
        ),
        regions=[RollupRow(key=c, name=n, components=_cells(v)) for c, n, v in r.regions],
    )


async def facility_in_scope(db: Any, principal: Principal, code: str) -> Facility:
    principal.require_anywhere(Perm.PROGRAMME_READ)
    try:
        facility = await sites.get_facility(db, code)
    except NotFound:
        raise NotFound(f"No facility has the code '{code}'.") from None
    if not principal.allows(
        Perm.PROGRAMME_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"No facility has the code '{code}'.")
    return facility


@router.get("/scorecard/facilities/{facility_code}", response_model=FacilityScorecardOut)
async def facility_scorecard(
    facility_code: Annotated[str, Path(max_length=40)],
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> FacilityScorecardOut:
    """One facility's scorecard: every component's status and priority with its reasons."""
    facility = await facility_in_scope(db, principal, facility_code)
    comps = await scorecard.facility_scorecard(
        db, facility, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )
    return FacilityScorecardOut(
        facility_code=facility.code,
        facility_name=facility.name,
        region_code=facility.region.code,
        components=[
            ComponentOut(
                key=c.key,
                label=c.label,
                status=c.status,
                priority=c.priority,
                reasons=[ReasonOut(text=r.text, link=r.link) for r in c.reasons],
            )
            for c in comps
        ],
    )


@router.get("/scorecard.csv", response_class=Response)
async def scorecard_csv(
    db: DB, clock: ClockDep, settings: SettingsDep, principal: CurrentPrincipal
) -> Response:
    """The roll-up as CSV: one row per region and component (and the organisation's)."""
    scope = read_scope(principal)
    r = await scorecard.rollup(
        db, scope, clock.now(), service.due_soon_delta(settings.rollout_due_soon_days)
    )
    rows: list[list[object]] = []
    for key, name, comps in [("ORG", "Organisation", r.organisation), *r.regions]:
        for c in scorecard.COMPONENTS:
            cell = comps[c]
            rows.append(
                [
                    key,
                    name,
                    c,
                    cell["in_place"],
                    cell["under_review"],
                    cell["gap"],
                    cell["not_tracked"],
                    scorecard.rollup_priority(cell),
                ]  # fmt: skip
            )
    body = reports.csv_text(
        [
            "region_code",
            "region_name",
            "component",
            "in_place",
            "under_review",
            "gap",
            "not_tracked",
            "priority",
        ],  # fmt: skip
        rows,
    )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="scorecard.csv"'},
    )
