"""REST API of incidents: the queue, an incident's detail, its lifecycle actions, dispatch of
units, and the response-time report.

Reading needs `alarms:read` at the incident's facility (an incident outside the caller's scope is
a 404); every action needs `incidents:manage` there, is audited, and is published on the bus
(`incident.<facility>.updated`) for the live console.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.incidents import reports, service
from watchfloor.incidents.models import Incident, IncidentStatus
from watchfloor.incidents.schemas import (
    CloseRequest,
    DispatchRequest,
    IncidentDetail,
    IncidentPage,
    IncidentSummary,
    NoteRequest,
    ResponseTimeReport,
)
from watchfloor.problems import InvalidInput, NotFound
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["incidents"])

IncidentId = Annotated[int, Path(ge=1, le=9_223_372_036_854_775_807, description="Incident id.")]
UnitCodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=40)]
FacilityQuery = Annotated[
    str | None, Query(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
]


async def _incident(db: DB, principal: Principal, incident_id: int, *, manage: bool) -> Incident:
    """The incident if the caller may see it (else 404) and, for an action, manage it (403)."""
    principal.require_anywhere(Perm.ALARMS_READ if not manage else Perm.INCIDENTS_MANAGE)
    incident = await service.get_incident(db, incident_id, lock=manage)
    facility = await db.get(Facility, incident.facility_id)
    region_id = facility.region_id if facility else None
    if not principal.allows(
        Perm.ALARMS_READ, facility_id=incident.facility_id, region_id=region_id
    ):
        raise NotFound(f"There is no incident {incident_id}.")
    if manage:
        principal.require(
            Perm.INCIDENTS_MANAGE, facility_id=incident.facility_id, region_id=region_id
        )
    return incident


async def _detail(db: DB, incident: Incident) -> IncidentDetail:
    return IncidentDetail.model_validate(await service.incident_detail(db, incident))


@router.get("/incidents", response_model=IncidentPage)
async def list_incidents(
    db: DB,
    principal: CurrentPrincipal,
    status: Annotated[list[IncidentStatus] | None, Query(max_length=6)] = None,
    open: Annotated[bool, Query(description="Only incidents not yet closed.")] = False,  # noqa: A002
    priority: Annotated[int | None, Query(ge=1, le=4)] = None,
    facility: FacilityQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> IncidentPage:
    """Incidents in the caller's scope, most urgent first, then oldest first."""
    principal.require_anywhere(Perm.ALARMS_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.ALARMS_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    rows, total = await service.list_incidents(
        db,
        principal.scope(Perm.ALARMS_READ),
        status=[s.value for s in status] if status else None,
        open_only=open,
        priority=priority,
        facility_id=facility_id,
        limit=limit,
        offset=offset,
    )
    facilities: dict[int, Facility | None] = {}
    items = []
    for incident in rows:
        if incident.facility_id not in facilities:
            facilities[incident.facility_id] = await db.get(Facility, incident.facility_id)
        items.append(
            IncidentSummary.model_validate(
                service.incident_summary(incident, facilities[incident.facility_id])
            )
        )
    return IncidentPage(items=items, total=total)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
async def get_incident(incident_id: IncidentId, db: DB, principal: CurrentPrincipal) -> Any:
    """An incident with its alarms, timeline, dispatched units and response times."""
    incident = await _incident(db, principal, incident_id, manage=False)
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentDetail)
async def acknowledge(
    incident_id: IncidentId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Take the incident: stops its escalation. 409 when it is already acknowledged."""
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.acknowledge(db, clock, principal, incident)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/dispatch", response_model=IncidentDetail)
async def dispatch(
    incident_id: IncidentId,
    body: DispatchRequest,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Dispatch response units of the incident's facility (each is notified now)."""
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.dispatch(db, clock, principal, incident, body.units)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/units/{unit_code}/en-route", response_model=IncidentDetail)
async def unit_en_route(
    incident_id: IncidentId,
    unit_code: UnitCodePath,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.unit_en_route(db, clock, principal, incident, unit_code)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/units/{unit_code}/on-scene", response_model=IncidentDetail)
async def unit_on_scene(
    incident_id: IncidentId,
    unit_code: UnitCodePath,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.unit_on_scene(db, clock, principal, incident, unit_code)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/contain", response_model=IncidentDetail)
async def contain(
    incident_id: IncidentId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.contain(db, clock, principal, incident)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/close", response_model=IncidentDetail)
async def close(
    incident_id: IncidentId,
    body: CloseRequest,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Close with a disposition: real, false_alarm (needs a cause), drill or test."""
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.close(db, clock, principal, incident, body.disposition, body.cause)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/confirm-cancel", response_model=IncidentDetail)
async def confirm_cancel(
    incident_id: IncidentId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Confirm alarms cancelled by their sender; an incident with no other alarm closes as a
    false alarm (cause "cancelled by sender")."""
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.confirm_cancel(db, clock, principal, incident)
    await db.commit()
    return await _detail(db, incident)


@router.post("/incidents/{incident_id}/notes", response_model=IncidentDetail, status_code=201)
async def add_note(
    incident_id: IncidentId,
    body: NoteRequest,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    incident = await _incident(db, principal, incident_id, manage=True)
    await service.add_note(db, clock, principal, incident, body.text)
    await db.commit()
    return await _detail(db, incident)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/reports/response-times", response_model=ResponseTimeReport)
async def response_times(
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    since: Annotated[datetime | None, Query(description="Start (default: 30 days ago).")] = None,
    until: Annotated[datetime | None, Query(description="End, exclusive (default: now).")] = None,
    facility: FacilityQuery = None,
) -> ResponseTimeReport:
    """How often each facility in scope, and all of them together (the watch floor), met each
    response-time target for incidents opened in [since, until)."""
    principal.require_anywhere(Perm.ALARMS_READ)
    try:
        end = _utc(until) if until else clock.now()
        start = _utc(since) if since else end - timedelta(days=30)
    except (OverflowError, ValueError):
        raise InvalidInput("since/until are out of range.") from None
    if start >= end:
        raise InvalidInput("'since' must be before 'until'.")
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.ALARMS_READ, facility_id=f.id, region_id=f.region_id)
        facilities = [f]
    else:
        scope = principal.scope(Perm.ALARMS_READ)
        facilities = list((await db.scalars(sites.facility_query(scope))).all())
    return await reports.response_time_report(
        db, facilities=facilities, since=start, until=end, now=clock.now()
    )
