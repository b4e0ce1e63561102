"""REST API of the lockdown domain: start (facility, zone or region), list, read with per-door
states, lift, approve a lift, retry failed doors; and the alarm types that start a lockdown.

Reading needs `alarms:read` at the lockdown's facility (outside the caller's scope: 404);
starting and retrying need `lockdown:start`, lifting and approving `lockdown:lift` there; a
region lockdown needs a grant covering the whole region. Every change is audited, written to the
incident timeline and published on the bus in the same transaction; the engine then commands the
doors (see service.py and engine.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.lockdown import service
from watchfloor.lockdown.handlers import engine_of
from watchfloor.lockdown.models import Lockdown, LockdownTrigger
from watchfloor.lockdown.schemas import (
    LiftRequest,
    LiftResponse,
    LockdownDetail,
    LockdownPage,
    LockdownStart,
    LockdownSummary,
    RetryResponse,
    StartResponse,
    TriggerIn,
    TriggerOut,
)
from watchfloor.problems import NotFound
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["lockdown"])

LockdownId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Lockdown id.")]
TriggerId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Trigger id.")]
FacilityQuery = Annotated[
    str | None, Query(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
]


async def _lockdown(
    db: DB, principal: Principal, lockdown_id: int, perm: Perm | None = None
) -> tuple[Lockdown, Facility]:
    """The lockdown if the caller may see it (else 404) and, for an action, use `perm` (403)."""
    principal.require_anywhere(Perm.ALARMS_READ if perm is None else perm)
    lockdown = await service.get_lockdown(db, lockdown_id, lock=perm is not None)
    facility = await db.get(Facility, lockdown.facility_id)
    if facility is None or not principal.allows(
        Perm.ALARMS_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"There is no lockdown {lockdown_id}.")
    if perm is not None:
        principal.require(perm, facility_id=facility.id, region_id=facility.region_id)
    return lockdown, facility


async def _summary(db: DB, lockdown: Lockdown, facility: Facility | None) -> LockdownSummary:
    counts = (await service.door_counts(db, [lockdown.id]))[lockdown.id]
    return LockdownSummary.model_validate(service.summary(lockdown, facility, counts))


async def _run(request: Request, ids: list[int]) -> None:
    """Hand committed lockdowns to the engine (a server without the runtime running picks them
    up when it starts)."""
    engine = engine_of(request.app)
    if engine is not None and ids:
        await engine.ensure(ids)


@router.post("/lockdowns", response_model=StartResponse, status_code=201)
async def start_lockdown(
    body: LockdownStart,
    request: Request,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Lock down a facility, one zone of it, or every facility of a region (one lockdown per
    facility; a region's facilities already locked down are listed under `skipped`). Every
    door is commanded at once; follow progress with GET /lockdowns/{id}."""
    principal.require_anywhere(Perm.LOCKDOWN_START)
    region = None
    if body.region:
        region = await sites.get_region(db, body.region)
        principal.require(Perm.LOCKDOWN_START, facility_id=None, region_id=region.id)
        facilities = (
            await db.scalars(
                select(Facility).where(Facility.region_id == region.id).order_by(Facility.code)
            )
        ).all()
        targets = [service.Target(f) for f in facilities]
    else:
        assert body.facility is not None
        facility = await sites.get_facility(db, body.facility)
        principal.require(
            Perm.LOCKDOWN_START, facility_id=facility.id, region_id=facility.region_id
        )
        zone = await sites.get_zone(db, facility, body.zone) if body.zone else None
        targets = [service.Target(facility, zone)]
    try:
        result = await service.start(
            db,
            clock,
            principal,
            targets,
            exercise=body.exercise,
            reason=body.reason,
            incident_id=body.incident_id,
            region=region,
            source="incident" if body.incident_id else "api",
        )
        await db.commit()
    except IntegrityError:  # another request locked the facility down a moment ago
        await db.rollback()
        raise service.raced() from None
    await _run(request, [ld.id for ld in result.lockdowns])
    by_id = {t.facility.id: t.facility for t in targets}
    counts = await service.door_counts(db, [ld.id for ld in result.lockdowns])
    return StartResponse.model_validate(
        {
            "items": [
                service.summary(ld, by_id.get(ld.facility_id), counts[ld.id])
                for ld in result.lockdowns
            ],
            "skipped": result.skipped,
        }
    )


@router.get("/lockdowns", response_model=LockdownPage)
async def list_lockdowns(
    db: DB,
    principal: CurrentPrincipal,
    active: Annotated[bool, Query(description="Only lockdowns not yet lifted.")] = False,
    facility: FacilityQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> LockdownPage:
    """Lockdowns in the caller's scope: active ones first, newest first."""
    principal.require_anywhere(Perm.ALARMS_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.ALARMS_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    rows, total = await service.list_lockdowns(
        db,
        principal.scope(Perm.ALARMS_READ),
        active_only=active,
        facility_id=facility_id,
        limit=limit,
        offset=offset,
    )
    counts = await service.door_counts(db, [r.id for r in rows])
    facilities: dict[int, Facility | None] = {}
    items = []
    for ld in rows:
        if ld.facility_id not in facilities:
            facilities[ld.facility_id] = await db.get(Facility, ld.facility_id)
        items.append(
            LockdownSummary.model_validate(
                service.summary(ld, facilities[ld.facility_id], counts[ld.id])
            )
        )
    return LockdownPage(items=items, total=total)


@router.get("/lockdowns/{lockdown_id}", response_model=LockdownDetail)
async def get_lockdown(lockdown_id: LockdownId, db: DB, principal: CurrentPrincipal) -> Any:
    """A lockdown with every door's state (failed first, then pending, then locked) and counts."""
    lockdown, _facility = await _lockdown(db, principal, lockdown_id)
    return LockdownDetail.model_validate(await service.detail(db, lockdown))


@router.post("/lockdowns/{lockdown_id}/lift", response_model=LiftResponse)
async def lift(
    lockdown_id: LockdownId,
    request: Request,
    response: Response,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    body: LiftRequest | None = None,
) -> Any:
    """Lift the lockdown: every door back to its normal schedule. When a second person's
    approval is required (`lockdown_lift_requires_approval`), this records the request (202)
    and POST .../approve-lift by another person with `lockdown:lift` starts the lift."""
    lockdown, facility = await _lockdown(db, principal, lockdown_id, Perm.LOCKDOWN_LIFT)
    lifting = await service.request_lift(
        db,
        clock,
        principal,
        lockdown,
        reason=body.reason if body else "",
        requires_approval=settings.lockdown_lift_requires_approval,
    )
    await db.commit()
    if lifting:
        await _run(request, [lockdown.id])
        message = "Lifting: every door is being returned to its normal schedule."
    else:
        response.status_code = 202
        message = "Lift requested: a second person with lockdown:lift must approve it."
    return LiftResponse(
        lifting=lifting, message=message, lockdown=await _summary(db, lockdown, facility)
    )


@router.post("/lockdowns/{lockdown_id}/approve-lift", response_model=LiftResponse)
async def approve_lift(
    lockdown_id: LockdownId,
    request: Request,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Approve another person's request to lift: the lift starts."""
    lockdown, facility = await _lockdown(db, principal, lockdown_id, Perm.LOCKDOWN_LIFT)
    await service.approve_lift(db, clock, principal, lockdown)
    await db.commit()
    await _run(request, [lockdown.id])
    return LiftResponse(
        lifting=True,
        message="Approved: every door is being returned to its normal schedule.",
        lockdown=await _summary(db, lockdown, facility),
    )


@router.delete("/lockdowns/{lockdown_id}/lift-request", response_model=LockdownSummary)
async def cancel_lift_request(
    lockdown_id: LockdownId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Withdraw a pending request to lift (the lockdown stays in force)."""
    lockdown, facility = await _lockdown(db, principal, lockdown_id, Perm.LOCKDOWN_LIFT)
    await service.cancel_lift_request(db, clock, principal, lockdown)
    await db.commit()
    return await _summary(db, lockdown, facility)


@router.post("/lockdowns/{lockdown_id}/retry", response_model=RetryResponse)
async def retry_failed(
    lockdown_id: LockdownId,
    request: Request,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Command the doors flagged as failed again (a fresh round of attempts)."""
    lockdown, facility = await _lockdown(db, principal, lockdown_id, Perm.LOCKDOWN_START)
    retried = await service.retry_failed(db, clock, principal, lockdown)
    await db.commit()
    await _run(request, [lockdown.id])
    return RetryResponse(retried=retried, lockdown=await _summary(db, lockdown, facility))


# -- triggers ---------------------------------------------------------------------------------


@router.get("/lockdown-triggers", response_model=list[TriggerOut])
async def list_triggers(db: DB, principal: CurrentPrincipal) -> Any:
    """The alarm types that start a lockdown: the organisation's defaults and the overrides of
    the facilities in the caller's scope."""
    principal.require_anywhere(Perm.ALARMS_READ)
    rows = (await db.scalars(select(LockdownTrigger).order_by(LockdownTrigger.id))).all()
    out = []
    for t in rows:
        facility = await db.get(Facility, t.facility_id) if t.facility_id else None
        if facility is not None and not principal.allows(
            Perm.ALARMS_READ, facility_id=facility.id, region_id=facility.region_id
        ):
            continue
        out.append(TriggerOut.model_validate(service.trigger_view(t, facility)))
    return out


@router.post("/lockdown-triggers", response_model=TriggerOut, status_code=201)
async def set_trigger(body: TriggerIn, db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Any:
    """Create or change the trigger for an alarm type (a facility's, or the organisation's
    default: that needs an organisation-wide `alarm_rules:write`)."""
    principal.require_anywhere(Perm.RULES_WRITE)
    facility = None
    if body.facility:
        facility = await sites.get_facility(db, body.facility)
        principal.require(Perm.RULES_WRITE, facility_id=facility.id, region_id=facility.region_id)
        principal.require(
            Perm.LOCKDOWN_START, facility_id=facility.id, region_id=facility.region_id
        )
    else:
        principal.require_org(Perm.RULES_WRITE)
        principal.require_org(Perm.LOCKDOWN_START)
    trigger = await service.set_trigger(
        db,
        clock,
        principal,
        facility=facility,
        alarm_type=body.alarm_type,
        scope=body.scope,
        enabled=body.enabled,
    )
    await db.commit()
    return TriggerOut.model_validate(service.trigger_view(trigger, facility))


@router.delete("/lockdown-triggers/{trigger_id}", status_code=204)
async def delete_trigger(
    trigger_id: TriggerId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    principal.require_anywhere(Perm.RULES_WRITE)
    trigger = await db.get(LockdownTrigger, trigger_id)
    facility = (
        await db.get(Facility, trigger.facility_id) if trigger and trigger.facility_id else None
    )
    if trigger is None or (
        facility is not None
        and not principal.allows(
            Perm.ALARMS_READ, facility_id=facility.id, region_id=facility.region_id
        )
    ):
        raise NotFound(f"There is no lockdown trigger {trigger_id}.")
    if facility is None:
        principal.require_org(Perm.RULES_WRITE)
    else:
        principal.require(Perm.RULES_WRITE, facility_id=facility.id, region_id=facility.region_id)
    await service.delete_trigger(db, clock, principal, trigger)
    await db.commit()
    return Response(status_code=204)
