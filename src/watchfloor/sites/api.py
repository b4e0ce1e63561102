"""REST API of the sites domain (thin: parse, authorise, call the service, return).

Reads need `sites:read`, changes `sites:write`, both checked against the facility's (or region's)
scope through the Principal. Lists only ever contain what the caller's scope covers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.problems import Forbidden
from watchfloor.schemas import Page
from watchfloor.sites import service
from watchfloor.sites.models import DeviceKind, DeviceStatus, Facility, FacilityKind, Region
from watchfloor.sites.schemas import (
    CODE_PATTERN,
    DeviceCreate,
    DeviceOut,
    DeviceUpdate,
    FacilityCreate,
    FacilityOut,
    FacilityUpdate,
    OrganisationOut,
    OrganisationUpdate,
    RegionCreate,
    RegionOut,
    RegionUpdate,
    ResponseUnitCreate,
    ResponseUnitOut,
    ResponseUnitUpdate,
    ZoneCreate,
    ZoneOut,
    ZoneUpdate,
)

router = APIRouter(tags=["sites"])

CodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=40, description="Facility code.")]
RegionCodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=40)]
ZoneCodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=40)]
DeviceCodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=60)]
UnitCodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=40)]
CodeQuery = Annotated[str | None, Query(pattern=CODE_PATTERN, max_length=40)]
TextQuery = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")]


async def _facility(db: DB, principal: Principal, code: str, perm: Perm) -> Facility:
    facility = await service.get_facility(db, code)
    principal.require(perm, facility_id=facility.id, region_id=facility.region_id)
    return facility


async def _visible_region(db: DB, principal: Principal, code: str) -> Region:
    region = await service.get_region(db, code)
    if not await service.region_visible(db, principal.scope(Perm.SITES_READ), region):
        raise Forbidden("Your roles do not cover this region.")
    return region


# -- organisation -------------------------------------------------------------------------------


@router.get("/organisation", response_model=OrganisationOut)
async def get_organisation(db: DB, principal: CurrentPrincipal) -> OrganisationOut:
    """The organisation this Watchfloor serves."""
    principal.require_anywhere(Perm.SITES_READ)
    return OrganisationOut.model_validate(await service.get_organisation(db))


@router.patch("/organisation", response_model=OrganisationOut)
async def update_organisation(
    body: OrganisationUpdate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> OrganisationOut:
    """Rename the organisation (creates it when none exists: then send code and name)."""
    principal.require_org(Perm.SITES_WRITE)
    org = await service.update_organisation(db, clock, principal, body)
    await db.commit()
    return OrganisationOut.model_validate(org)


# -- regions ------------------------------------------------------------------------------------


@router.get("/regions", response_model=list[RegionOut])
async def list_regions(db: DB, principal: CurrentPrincipal) -> list[RegionOut]:
    """Regions the caller's scope reaches, with how many facilities each holds."""
    principal.require_anywhere(Perm.SITES_READ)
    return await service.list_regions(db, principal.scope(Perm.SITES_READ))


@router.post("/regions", response_model=RegionOut, status_code=status.HTTP_201_CREATED)
async def create_region(
    body: RegionCreate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> RegionOut:
    principal.require_org(Perm.SITES_WRITE)
    region = await service.create_region(db, clock, principal, body)
    await db.commit()
    return service.region_out(region)


@router.get("/regions/{region_code}", response_model=RegionOut)
async def get_region(region_code: RegionCodePath, db: DB, principal: CurrentPrincipal) -> RegionOut:
    principal.require_anywhere(Perm.SITES_READ)
    region = await _visible_region(db, principal, region_code)
    return service.region_out(region, await service.count_facilities(db, region))


@router.patch("/regions/{region_code}", response_model=RegionOut)
async def update_region(
    region_code: RegionCodePath,
    body: RegionUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> RegionOut:
    principal.require_anywhere(Perm.SITES_WRITE)
    region = await service.get_region(db, region_code)
    principal.require(Perm.SITES_WRITE, facility_id=None, region_id=region.id)
    region = await service.update_region(db, clock, principal, region, body)
    await db.commit()
    return service.region_out(region, await service.count_facilities(db, region))


@router.delete("/regions/{region_code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_region(
    region_code: RegionCodePath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Delete an empty region (one with facilities is refused with 409)."""
    principal.require_org(Perm.SITES_WRITE)
    region = await service.get_region(db, region_code)
    await service.delete_region(db, clock, principal, region)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- facilities ---------------------------------------------------------------------------------


@router.get("/facilities", response_model=Page[FacilityOut])
async def list_facilities(
    db: DB,
    principal: CurrentPrincipal,
    q: Annotated[TextQuery, Query(description="Search name, code and city.")] = None,
    region: CodeQuery = None,
    kind: FacilityKind | None = None,
    state: Annotated[str | None, Query(max_length=60, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[FacilityOut]:
    """Facilities in the caller's scope, ordered by code; `total` counts every match."""
    principal.require_anywhere(Perm.SITES_READ)
    items, total = await service.list_facilities(
        db,
        principal.scope(Perm.SITES_READ),
        q=q,
        region=region,
        kind=kind.value if kind else None,
        state=state,
        limit=limit,
        offset=offset,
    )
    return Page(items=[service.facility_out(f) for f in items], total=total)


@router.post("/facilities", response_model=FacilityOut, status_code=status.HTTP_201_CREATED)
async def create_facility(
    body: FacilityCreate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> FacilityOut:
    """Add a facility to a region (needs `sites:write` for that region or the organisation)."""
    principal.require_anywhere(Perm.SITES_WRITE)
    region = await service.get_region(db, body.region)
    principal.require(Perm.SITES_WRITE, facility_id=None, region_id=region.id)
    facility = await service.create_facility(db, clock, principal, body, region)
    await db.commit()
    return service.facility_out(facility)


@router.get("/facilities/{code}", response_model=FacilityOut)
async def get_facility(code: CodePath, db: DB, principal: CurrentPrincipal) -> FacilityOut:
    return service.facility_out(await _facility(db, principal, code, Perm.SITES_READ))


@router.patch("/facilities/{code}", response_model=FacilityOut)
async def update_facility(
    code: CodePath, body: FacilityUpdate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> FacilityOut:
    """Change a facility; moving it to another region needs `sites:write` on both regions."""
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    new_region = None
    if body.region is not None and body.region != facility.region.code:
        principal.require(Perm.SITES_WRITE, facility_id=None, region_id=facility.region_id)
        new_region = await service.get_region(db, body.region)
        principal.require(Perm.SITES_WRITE, facility_id=None, region_id=new_region.id)
    facility = await service.update_facility(db, clock, principal, facility, body, new_region)
    await db.commit()
    return service.facility_out(facility)


@router.delete("/facilities/{code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_facility(
    code: CodePath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Delete a facility with its zones, devices, response units and staff records.

    Needs `sites:write` on the facility's region (a facility-scoped role cannot delete its own).
    """
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    principal.require(Perm.SITES_WRITE, facility_id=None, region_id=facility.region_id)
    await service.delete_facility(db, clock, principal, facility)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- zones --------------------------------------------------------------------------------------


@router.get("/facilities/{code}/zones", response_model=list[ZoneOut])
async def list_zones(code: CodePath, db: DB, principal: CurrentPrincipal) -> list[ZoneOut]:
    facility = await _facility(db, principal, code, Perm.SITES_READ)
    return [service.zone_out(z) for z in await service.list_zones(db, facility)]


@router.post(
    "/facilities/{code}/zones", response_model=ZoneOut, status_code=status.HTTP_201_CREATED
)
async def create_zone(
    code: CodePath, body: ZoneCreate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> ZoneOut:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    zone = await service.create_zone(db, clock, principal, facility, body)
    await db.commit()
    return service.zone_out(zone)


@router.get("/facilities/{code}/zones/{zone_code}", response_model=ZoneOut)
async def get_zone(
    code: CodePath, zone_code: ZoneCodePath, db: DB, principal: CurrentPrincipal
) -> ZoneOut:
    facility = await _facility(db, principal, code, Perm.SITES_READ)
    return service.zone_out(await service.get_zone(db, facility, zone_code))


@router.patch("/facilities/{code}/zones/{zone_code}", response_model=ZoneOut)
async def update_zone(
    code: CodePath,
    zone_code: ZoneCodePath,
    body: ZoneUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> ZoneOut:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    zone = await service.get_zone(db, facility, zone_code)
    zone = await service.update_zone(db, clock, principal, facility, zone, body)
    await db.commit()
    return service.zone_out(zone)


@router.delete("/facilities/{code}/zones/{zone_code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_zone(
    code: CodePath, zone_code: ZoneCodePath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Delete a zone; its devices stay, with no zone."""
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    zone = await service.get_zone(db, facility, zone_code)
    await service.delete_zone(db, clock, principal, facility, zone)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- devices ------------------------------------------------------------------------------------


@router.get("/facilities/{code}/devices", response_model=list[DeviceOut])
async def list_devices(
    code: CodePath,
    db: DB,
    principal: CurrentPrincipal,
    kind: DeviceKind | None = None,
    status_: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    zone: CodeQuery = None,
) -> list[DeviceOut]:
    facility = await _facility(db, principal, code, Perm.SITES_READ)
    devices = await service.list_devices(
        db,
        facility,
        kind=kind.value if kind else None,
        status=status_.value if status_ else None,
        zone=zone,
    )
    return [service.device_out(d) for d in devices]


@router.post(
    "/facilities/{code}/devices", response_model=DeviceOut, status_code=status.HTTP_201_CREATED
)
async def create_device(
    code: CodePath, body: DeviceCreate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> DeviceOut:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    device = await service.create_device(db, clock, principal, facility, body)
    await db.commit()
    return service.device_out(device)


@router.get("/facilities/{code}/devices/{device_code}", response_model=DeviceOut)
async def get_device(
    code: CodePath, device_code: DeviceCodePath, db: DB, principal: CurrentPrincipal
) -> DeviceOut:
    facility = await _facility(db, principal, code, Perm.SITES_READ)
    return service.device_out(await service.get_device(db, facility, device_code))


@router.patch("/facilities/{code}/devices/{device_code}", response_model=DeviceOut)
async def update_device(
    code: CodePath,
    device_code: DeviceCodePath,
    body: DeviceUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> DeviceOut:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    device = await service.get_device(db, facility, device_code)
    device = await service.update_device(db, clock, principal, facility, device, body)
    await db.commit()
    return service.device_out(device)


@router.delete("/facilities/{code}/devices/{device_code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_device(
    code: CodePath,
    device_code: DeviceCodePath,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Response:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    device = await service.get_device(db, facility, device_code)
    await service.delete_device(db, clock, principal, facility, device)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- response units -----------------------------------------------------------------------------


@router.get("/facilities/{code}/response-units", response_model=list[ResponseUnitOut])
async def list_units(code: CodePath, db: DB, principal: CurrentPrincipal) -> list[ResponseUnitOut]:
    facility = await _facility(db, principal, code, Perm.SITES_READ)
    return [service.unit_out(u) for u in await service.list_units(db, facility)]


@router.post(
    "/facilities/{code}/response-units",
    response_model=ResponseUnitOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_unit(
    code: CodePath,
    body: ResponseUnitCreate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> ResponseUnitOut:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    unit = await service.create_unit(db, clock, principal, facility, body)
    await db.commit()
    return service.unit_out(unit)


@router.get("/facilities/{code}/response-units/{unit_code}", response_model=ResponseUnitOut)
async def get_unit(
    code: CodePath, unit_code: UnitCodePath, db: DB, principal: CurrentPrincipal
) -> ResponseUnitOut:
    facility = await _facility(db, principal, code, Perm.SITES_READ)
    return service.unit_out(await service.get_unit(db, facility, unit_code))


@router.patch("/facilities/{code}/response-units/{unit_code}", response_model=ResponseUnitOut)
async def update_unit(
    code: CodePath,
    unit_code: UnitCodePath,
    body: ResponseUnitUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> ResponseUnitOut:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    unit = await service.get_unit(db, facility, unit_code)
    unit = await service.update_unit(db, clock, principal, facility, unit, body)
    await db.commit()
    return service.unit_out(unit)


@router.delete(
    "/facilities/{code}/response-units/{unit_code}", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_unit(
    code: CodePath, unit_code: UnitCodePath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    facility = await _facility(db, principal, code, Perm.SITES_WRITE)
    unit = await service.get_unit(db, facility, unit_code)
    await service.delete_unit(db, clock, principal, facility, unit)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
