"""Facility registry logic: organisation, regions, facilities, zones, devices, response units.

Functions take a session and a clock, flush (never commit) and write an audit record for every
change in the same transaction. Authorisation is the caller's job (the API checks the Principal);
list functions take the caller's `Scope` so they only ever return what the caller may see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.clock import Clock
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.sites.models import Device, Facility, Organisation, Region, ResponseUnit, Zone
from watchfloor.sites.schemas import (
    DeviceCreate,
    DeviceOut,
    DeviceUpdate,
    FacilityCreate,
    FacilityOut,
    FacilityUpdate,
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
    hours_to_db,
)

Actor = Principal | str


def _jsonable(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def apply_changes(obj: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Set attributes that differ; return {field: [old, new]} for the audit record."""
    changed: dict[str, list[Any]] = {}
    for name, new in values.items():
        new = _jsonable(new)
        old = getattr(obj, name)
        if old != new:
            changed[name] = [old, new]
            setattr(obj, name, new)
    return changed


async def _flush(db: AsyncSession, what: str) -> None:
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise Conflict(f"{what} already exists.") from None


# -- organisation -------------------------------------------------------------------------------


async def find_organisation(db: AsyncSession) -> Organisation | None:
    return (
        await db.execute(select(Organisation).order_by(Organisation.id).limit(1))
    ).scalar_one_or_none()


async def get_organisation(db: AsyncSession) -> Organisation:
    org = await find_organisation(db)
    if org is None:
        raise NotFound("No organisation is set up yet. Import one with `watchfloor import`.")
    return org


async def update_organisation(
    db: AsyncSession, clock: Clock, actor: Actor, data: OrganisationUpdate
) -> Organisation:
    """Rename the organisation; creates it when none exists yet (then code and name are needed)."""
    org = await find_organisation(db)
    now = clock.now()
    values = data.model_dump(exclude_unset=True)
    if org is None:
        if not data.code or not data.name:
            raise InvalidInput("No organisation exists yet: send both 'code' and 'name'.")
        org = Organisation(code=data.code, name=data.name, created_at=now, updated_at=now)
        db.add(org)
        await _flush(db, "An organisation with that code")
        await audit.record(
            db,
            clock,
            actor,
            "organisation.create",
            target_type="organisation",
            target_id=org.code,
            details=values,
        )
        return org
    changed = apply_changes(org, values)
    if changed:
        org.updated_at = now
        await _flush(db, "An organisation with that code")
        await audit.record(
            db,
            clock,
            actor,
            "organisation.update",
            target_type="organisation",
            target_id=org.code,
            details=changed,
        )
    return org


# -- regions ------------------------------------------------------------------------------------


async def get_region(db: AsyncSession, code: str) -> Region:
    region = (await db.execute(select(Region).where(Region.code == code))).scalar_one_or_none()
    if region is None:
        raise NotFound(f"No region has the code '{code}'.")
    return region


def _visible_region_ids(scope: Scope) -> ColumnElement[bool]:
    """Regions a scope may see: its own regions and those of its facilities."""
    if scope.everything:
        return Region.id.is_not(None)
    conds: list[ColumnElement[bool]] = []
    if scope.region_ids:
        conds.append(Region.id.in_(scope.region_ids))
    if scope.facility_ids:
        conds.append(
            Region.id.in_(select(Facility.region_id).where(Facility.id.in_(scope.facility_ids)))
        )
    return or_(*conds) if conds else false()


async def list_regions(db: AsyncSession, scope: Scope) -> list[RegionOut]:
    counts = (
        select(Facility.region_id, func.count(Facility.id).label("n"))
        .group_by(Facility.region_id)
        .subquery()
    )
    rows = await db.execute(
        select(Region, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.region_id == Region.id)
        .where(_visible_region_ids(scope))
        .order_by(Region.code)
    )
    return [region_out(r, n) for r, n in rows.all()]


async def region_visible(db: AsyncSession, scope: Scope, region: Region) -> bool:
    found = await db.execute(
        select(Region.id).where(Region.id == region.id).where(_visible_region_ids(scope))
    )
    return found.first() is not None


def region_out(region: Region, facility_count: int = 0) -> RegionOut:
    return RegionOut(
        code=region.code,
        name=region.name,
        facility_count=facility_count,
        created_at=region.created_at,
        updated_at=region.updated_at,
    )


async def count_facilities(db: AsyncSession, region: Region) -> int:
    n = await db.scalar(select(func.count(Facility.id)).where(Facility.region_id == region.id))
    return int(n or 0)


async def create_region(db: AsyncSession, clock: Clock, actor: Actor, data: RegionCreate) -> Region:
    org = await find_organisation(db)
    if org is None:
        raise Conflict("Set up the organisation first (PATCH /api/v1/organisation with a code).")
    if (await db.execute(select(Region.id).where(Region.code == data.code))).first():
        raise Conflict(f"A region with the code '{data.code}' already exists.")
    now = clock.now()
    region = Region(
        organisation_id=org.id, code=data.code, name=data.name, created_at=now, updated_at=now
    )
    db.add(region)
    await _flush(db, f"A region with the code '{data.code}'")
    await audit.record(
        db,
        clock,
        actor,
        "region.create",
        target_type="region",
        target_id=region.code,
        details=data.model_dump(mode="json"),
    )
    return region


async def update_region(
    db: AsyncSession, clock: Clock, actor: Actor, region: Region, data: RegionUpdate
) -> Region:
    changed = apply_changes(region, data.model_dump(exclude_unset=True))
    if changed:
        region.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "region.update",
            target_type="region",
            target_id=region.code,
            details=changed,
        )
    return region


async def delete_region(db: AsyncSession, clock: Clock, actor: Actor, region: Region) -> None:
    n = await count_facilities(db, region)
    if n:
        raise Conflict(
            f"Region '{region.code}' still has {n} facilities; move or delete them first."
        )
    await audit.record(
        db,
        clock,
        actor,
        "region.delete",
        target_type="region",
        target_id=region.code,
        details={"name": region.name},
    )
    await db.execute(delete(Region).where(Region.id == region.id))


# -- facilities ---------------------------------------------------------------------------------


async def get_facility(db: AsyncSession, code: str) -> Facility:
    facility = (
        await db.execute(
            select(Facility).options(joinedload(Facility.region)).where(Facility.code == code)
        )
    ).scalar_one_or_none()
    if facility is None:
        raise NotFound(f"No facility has the code '{code}'.")
    return facility


def scope_filter(scope: Scope) -> ColumnElement[bool]:
    """Facilities inside a scope (for list queries)."""
    if scope.everything:
        return Facility.id.is_not(None)
    conds: list[ColumnElement[bool]] = []
    if scope.facility_ids:
        conds.append(Facility.id.in_(scope.facility_ids))
    if scope.region_ids:
        conds.append(Facility.region_id.in_(scope.region_ids))
    return or_(*conds) if conds else false()


def facility_query(
    scope: Scope,
    *,
    q: str | None = None,
    region: str | None = None,
    kind: str | None = None,
    state: str | None = None,
) -> Select[Facility]:
    stmt = select(Facility).join(Region, Region.id == Facility.region_id).where(scope_filter(scope))
    if q:
        stmt = stmt.where(
            or_(
                Facility.name.icontains(q, autoescape=True),
                Facility.code.icontains(q, autoescape=True),
                Facility.city.icontains(q, autoescape=True),
            )
        )
    if region:
        stmt = stmt.where(Region.code == region)
    if kind:
        stmt = stmt.where(Facility.kind == kind)
    if state:
        stmt = stmt.where(func.lower(Facility.state) == state.lower())
    return stmt


async def list_facilities(
    db: AsyncSession,
    scope: Scope,
    *,
    q: str | None = None,
    region: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Facility], int]:
    """One page of the facilities the scope may see (ordered by code) and how many match."""
    stmt = facility_query(scope, q=q, region=region, kind=kind, state=state)
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = await db.execute(
        stmt.options(joinedload(Facility.region))
        .order_by(Facility.code)
        .limit(limit)
        .offset(offset)
    )
    return rows.scalars().all(), total


def facility_out(f: Facility) -> FacilityOut:
    return FacilityOut(
        code=f.code,
        name=f.name,
        region=f.region.code,
        kind=f.kind,
        address=f.address,
        city=f.city,
        state=f.state,
        postal_code=f.postal_code,
        latitude=f.latitude,
        longitude=f.longitude,
        timezone=f.timezone,
        population=f.population,
        floor_area_sqft=f.floor_area_sqft,
        operating_hours=f.operating_hours or {},
        created_at=f.created_at,
        updated_at=f.updated_at,
    )


def _facility_values(data: FacilityCreate | FacilityUpdate) -> dict[str, Any]:
    values = data.model_dump(exclude_unset=True, exclude={"region", "operating_hours"})
    if "operating_hours" in data.model_fields_set:
        values["operating_hours"] = hours_to_db(data.operating_hours)
    return values


async def create_facility(
    db: AsyncSession, clock: Clock, actor: Actor, data: FacilityCreate, region: Region
) -> Facility:
    if (await db.execute(select(Facility.id).where(Facility.code == data.code))).first():
        raise Conflict(f"A facility with the code '{data.code}' already exists.")
    now = clock.now()
    values = data.model_dump(exclude={"region", "operating_hours"})
    values["kind"] = _jsonable(values["kind"])
    facility = Facility(
        region_id=region.id,
        operating_hours=hours_to_db(data.operating_hours),
        created_at=now,
        updated_at=now,
        **values,
    )
    facility.region = region
    db.add(facility)
    await _flush(db, f"A facility with the code '{data.code}'")
    await audit.record(
        db,
        clock,
        actor,
        "facility.create",
        target_type="facility",
        target_id=facility.code,
        facility_id=facility.id,
        details=data.model_dump(mode="json"),
    )
    return facility


async def update_facility(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    facility: Facility,
    data: FacilityUpdate,
    new_region: Region | None = None,
) -> Facility:
    changed = apply_changes(facility, _facility_values(data))
    if new_region is not None and new_region.id != facility.region_id:
        changed["region"] = [facility.region.code, new_region.code]
        facility.region_id = new_region.id
        facility.region = new_region
    if changed:
        facility.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "facility.update",
            target_type="facility",
            target_id=facility.code,
            facility_id=facility.id,
            details=changed,
        )
    return facility


async def delete_facility(db: AsyncSession, clock: Clock, actor: Actor, facility: Facility) -> None:
    await audit.record(
        db,
        clock,
        actor,
        "facility.delete",
        target_type="facility",
        target_id=facility.code,
        facility_id=facility.id,
        details={"name": facility.name, "region": facility.region.code},
    )
    await db.execute(delete(Facility).where(Facility.id == facility.id))


# -- zones --------------------------------------------------------------------------------------


async def list_zones(db: AsyncSession, facility: Facility) -> Sequence[Zone]:
    rows = await db.execute(select(Zone).where(Zone.facility_id == facility.id).order_by(Zone.code))
    return rows.scalars().all()


async def find_zone(db: AsyncSession, facility: Facility, code: str) -> Zone | None:
    return (
        await db.execute(select(Zone).where(Zone.facility_id == facility.id, Zone.code == code))
    ).scalar_one_or_none()


async def get_zone(db: AsyncSession, facility: Facility, code: str) -> Zone:
    zone = await find_zone(db, facility, code)
    if zone is None:
        raise NotFound(f"Facility '{facility.code}' has no zone '{code}'.")
    return zone


def zone_out(z: Zone) -> ZoneOut:
    return ZoneOut.model_validate(z)


async def create_zone(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, data: ZoneCreate
) -> Zone:
    if await find_zone(db, facility, data.code):
        raise Conflict(f"Facility '{facility.code}' already has a zone '{data.code}'.")
    now = clock.now()
    zone = Zone(
        facility_id=facility.id,
        code=data.code,
        name=data.name,
        kind=data.kind.value,
        floor=data.floor,
        created_at=now,
        updated_at=now,
    )
    db.add(zone)
    await _flush(db, f"Zone '{data.code}'")
    await audit.record(
        db,
        clock,
        actor,
        "zone.create",
        target_type="zone",
        target_id=f"{facility.code}/{zone.code}",
        facility_id=facility.id,
        details=data.model_dump(mode="json"),
    )
    return zone


async def update_zone(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, zone: Zone, data: ZoneUpdate
) -> Zone:
    changed = apply_changes(zone, data.model_dump(exclude_unset=True))
    if changed:
        zone.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "zone.update",
            target_type="zone",
            target_id=f"{facility.code}/{zone.code}",
            facility_id=facility.id,
            details=changed,
        )
    return zone


async def delete_zone(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, zone: Zone
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        "zone.delete",
        target_type="zone",
        target_id=f"{facility.code}/{zone.code}",
        facility_id=facility.id,
        details={"name": zone.name},
    )
    await db.execute(delete(Zone).where(Zone.id == zone.id))


# -- devices ------------------------------------------------------------------------------------


async def list_devices(
    db: AsyncSession,
    facility: Facility,
    *,
    kind: str | None = None,
    status: str | None = None,
    zone: str | None = None,
) -> Sequence[Device]:
    stmt = (
        select(Device)
        .options(joinedload(Device.zone))
        .where(Device.facility_id == facility.id)
        .order_by(Device.code)
    )
    if kind:
        stmt = stmt.where(Device.kind == kind)
    if status:
        stmt = stmt.where(Device.status == status)
    if zone:
        stmt = stmt.join(Zone, Zone.id == Device.zone_id).where(Zone.code == zone)
    return (await db.execute(stmt)).scalars().all()


async def get_device(db: AsyncSession, facility: Facility, code: str) -> Device:
    device = (
        await db.execute(
            select(Device)
            .options(joinedload(Device.zone))
            .where(Device.facility_id == facility.id, Device.code == code)
        )
    ).scalar_one_or_none()
    if device is None:
        raise NotFound(f"Facility '{facility.code}' has no device '{code}'.")
    return device


def device_out(d: Device) -> DeviceOut:
    return DeviceOut(
        code=d.code,
        name=d.name,
        kind=d.kind,
        zone=d.zone.code if d.zone is not None else None,
        protocol=d.protocol,
        address=d.address,
        status=d.status,
        supervision_seconds=d.supervision_seconds,
        last_seen_at=d.last_seen_at,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


async def _zone_for_device(db: AsyncSession, facility: Facility, code: str | None) -> Zone | None:
    if code is None:
        return None
    zone = await find_zone(db, facility, code)
    if zone is None:
        raise InvalidInput(
            f"Facility '{facility.code}' has no zone '{code}'.",
            errors=[{"loc": ["body", "zone"], "msg": "unknown zone", "type": "value_error"}],
        )
    return zone


async def create_device(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, data: DeviceCreate
) -> Device:
    exists = await db.execute(
        select(Device.id).where(Device.facility_id == facility.id, Device.code == data.code)
    )
    if exists.first():
        raise Conflict(f"Facility '{facility.code}' already has a device '{data.code}'.")
    zone = await _zone_for_device(db, facility, data.zone)
    now = clock.now()
    values = data.model_dump(exclude={"zone"})
    device = Device(
        facility_id=facility.id,
        zone_id=zone.id if zone else None,
        created_at=now,
        updated_at=now,
        **{k: _jsonable(v) for k, v in values.items()},
    )
    device.zone = zone
    db.add(device)
    await _flush(db, f"Device '{data.code}'")
    await audit.record(
        db,
        clock,
        actor,
        "device.create",
        target_type="device",
        target_id=f"{facility.code}/{device.code}",
        facility_id=facility.id,
        details=data.model_dump(mode="json"),
    )
    return device


async def update_device(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    facility: Facility,
    device: Device,
    data: DeviceUpdate,
) -> Device:
    changed = apply_changes(device, data.model_dump(exclude_unset=True, exclude={"zone"}))
    if "zone" in data.model_fields_set:
        zone = await _zone_for_device(db, facility, data.zone)
        old = device.zone.code if device.zone is not None else None
        if old != data.zone:
            changed["zone"] = [old, data.zone]
            device.zone_id = zone.id if zone else None
            device.zone = zone
    if changed:
        device.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "device.update",
            target_type="device",
            target_id=f"{facility.code}/{device.code}",
            facility_id=facility.id,
            details=changed,
        )
    return device


async def delete_device(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, device: Device
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        "device.delete",
        target_type="device",
        target_id=f"{facility.code}/{device.code}",
        facility_id=facility.id,
        details={"name": device.name, "kind": device.kind},
    )
    await db.execute(delete(Device).where(Device.id == device.id))


# -- response units -----------------------------------------------------------------------------


async def list_units(db: AsyncSession, facility: Facility) -> Sequence[ResponseUnit]:
    rows = await db.execute(
        select(ResponseUnit)
        .where(ResponseUnit.facility_id == facility.id)
        .order_by(ResponseUnit.code)
    )
    return rows.scalars().all()


async def get_unit(db: AsyncSession, facility: Facility, code: str) -> ResponseUnit:
    unit = (
        await db.execute(
            select(ResponseUnit).where(
                ResponseUnit.facility_id == facility.id, ResponseUnit.code == code
            )
        )
    ).scalar_one_or_none()
    if unit is None:
        raise NotFound(f"Facility '{facility.code}' has no response unit '{code}'.")
    return unit


def unit_out(u: ResponseUnit) -> ResponseUnitOut:
    return ResponseUnitOut.model_validate(u)


async def create_unit(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, data: ResponseUnitCreate
) -> ResponseUnit:
    exists = await db.execute(
        select(ResponseUnit.id).where(
            ResponseUnit.facility_id == facility.id, ResponseUnit.code == data.code
        )
    )
    if exists.first():
        raise Conflict(f"Facility '{facility.code}' already has a response unit '{data.code}'.")
    now = clock.now()
    values = data.model_dump(mode="json")
    unit = ResponseUnit(facility_id=facility.id, created_at=now, updated_at=now, **values)
    db.add(unit)
    await _flush(db, f"Response unit '{data.code}'")
    await audit.record(
        db,
        clock,
        actor,
        "response_unit.create",
        target_type="response_unit",
        target_id=f"{facility.code}/{unit.code}",
        facility_id=facility.id,
        details=values,
    )
    return unit


async def update_unit(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    facility: Facility,
    unit: ResponseUnit,
    data: ResponseUnitUpdate,
) -> ResponseUnit:
    changed = apply_changes(unit, data.model_dump(mode="json", exclude_unset=True))
    if changed:
        unit.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "response_unit.update",
            target_type="response_unit",
            target_id=f"{facility.code}/{unit.code}",
            facility_id=facility.id,
            details=changed,
        )
    return unit


async def delete_unit(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, unit: ResponseUnit
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        "response_unit.delete",
        target_type="response_unit",
        target_id=f"{facility.code}/{unit.code}",
        facility_id=facility.id,
        details={"name": unit.name, "kind": unit.kind},
    )
    await db.execute(delete(ResponseUnit).where(ResponseUnit.id == unit.id))
