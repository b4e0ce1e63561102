"""Test data and helpers shared by the alarms and incidents tests (imported by name).

Two facilities: HQ (America/Chicago, open Mon-Fri 08:00-18:00) and LAX (America/Los_Angeles,
open every day 08:00-18:00), with zones, devices and response units; the default rules and
response targets are seeded. `emit(...)` stores an event the way ingest does and runs the alarm
stage on its bus payload, as the alarms handler would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.defaults import ensure_defaults
from watchfloor.alarms.models import Alarm
from watchfloor.alarms.service import handle_event
from watchfloor.bus import subject_token
from watchfloor.bus.models import OutboxMessage
from watchfloor.clock import FakeClock
from watchfloor.events.models import Event
from watchfloor.incidents.escalation import ensure_default_policies
from watchfloor.sites.models import Device, Facility, Organisation, Region, ResponseUnit, Zone

WEEKDAY_HOURS = {d: ["08:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": None,
    "sun": None,
}
EVERY_DAY_HOURS = {d: ["08:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@dataclass
class Site:
    facilities: dict[str, int] = field(default_factory=dict)
    zones: dict[str, int] = field(default_factory=dict)  # "HQ/LOBBY" -> id
    devices: dict[str, int] = field(default_factory=dict)  # "HQ/DOOR-1" -> id


async def build_site(db: AsyncSession, clock: FakeClock) -> Site:
    now = clock.now()
    org = Organisation(code="AGENCY", name="Agency", created_at=now, updated_at=now)
    region = Region(code="R1", name="Region 1", organisation=org, created_at=now, updated_at=now)
    db.add_all([org, region])
    site = Site()
    layout: dict[str, dict[str, Any]] = {
        "HQ": {
            "tz": "America/Chicago",
            "hours": WEEKDAY_HOURS,
            "zones": {"LOBBY": "lobby", "PERIM": "perimeter", "SECURE": "secure_area"},
            "devices": {
                "DOOR-1": ("door", "LOBBY"),
                "READER-1": ("reader", "LOBBY"),
                "READER-2": ("reader", "SECURE"),
                "PANIC-1": ("panic_button", "SECURE"),
                "MOTION-1": ("sensor", "PERIM"),
                "CAM-1": ("camera", "LOBBY"),
            },
            "units": {"POLICE": "police", "GUARDS": "onsite_security"},
        },
        "LAX": {
            "tz": "America/Los_Angeles",
            "hours": EVERY_DAY_HOURS,
            "zones": {"YARD": "perimeter"},
            "devices": {"MOTION-9": ("sensor", "YARD"), "PANIC-9": ("panic_button", "YARD")},
            "units": {"LAPD": "police"},
        },
    }
    for code, spec in layout.items():
        facility = Facility(
            code=code,
            name=f"{code} Office",
            region=region,
            timezone=spec["tz"],
            operating_hours=spec["hours"],
            created_at=now,
            updated_at=now,
        )
        db.add(facility)
        await db.flush()
        site.facilities[code] = facility.id
        zones = {}
        for zcode, kind in spec["zones"].items():
            zone = Zone(
                facility_id=facility.id,
                code=zcode,
                name=f"{zcode.title()} zone",
                kind=kind,
                created_at=now,
                updated_at=now,
            )
            db.add(zone)
            await db.flush()
            zones[zcode] = zone
            site.zones[f"{code}/{zcode}"] = zone.id
        for dcode, (kind, zcode) in spec["devices"].items():
            device = Device(
                facility_id=facility.id,
                zone_id=zones[zcode].id,
                code=dcode,
                name=f"{dcode} device",
                kind=kind,
                created_at=now,
                updated_at=now,
            )
            db.add(device)
            await db.flush()
            site.devices[f"{code}/{dcode}"] = device.id
        for ucode, kind in spec["units"].items():
            db.add(
                ResponseUnit(
                    facility_id=facility.id,
                    code=ucode,
                    name=f"{ucode} unit",
                    kind=kind,
                    contacts=[],
                    created_at=now,
                    updated_at=now,
                )
            )
    await ensure_defaults(db, clock)
    await ensure_default_policies(db, clock)
    await db.commit()
    return site


async def store_event(
    db: AsyncSession,
    clock: FakeClock,
    site: Site,
    facility: str,
    type_: str,
    device: str | None = None,
    *,
    attributes: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """Write an Event row as ingest does; return its bus payload."""
    fid = site.facilities[facility]
    device_id = site.devices[f"{facility}/{device}"] if device else None
    zone_id = None
    if device_id is not None:
        zone_id = (await db.get(Device, device_id)).zone_id  # type: ignore[union-attr]
    when = occurred_at or clock.now()
    event = Event(
        facility_id=fid,
        device_id=device_id,
        zone_id=zone_id,
        type=type_,
        occurred_at=when,
        received_at=clock.now(),
        source="http",
        sender="test",
        attributes=attributes or {},
    )
    db.add(event)
    await db.flush()
    return {
        "event_id": event.id,
        "facility_id": fid,
        "facility_code": facility,
        "device_id": device_id,
        "device_code": device,
        "zone_id": zone_id,
        "type": type_,
        "occurred_at": when.isoformat(),
        "attributes": attributes or {},
        "source": "http",
    }


async def emit(
    db: AsyncSession,
    clock: FakeClock,
    site: Site,
    facility: str,
    type_: str,
    device: str | None = None,
    **kwargs: Any,
) -> list[Alarm]:
    """Store an event and run the alarm stage on it, committing like the handler does."""
    payload = await store_event(db, clock, site, facility, type_, device, **kwargs)
    alarms = await handle_event(db, clock, payload)
    await db.commit()
    return alarms


async def alarm_messages(db: AsyncSession, facility: str, priority: int | None = None) -> list[Any]:
    pattern = f"alarm.{subject_token(facility)}."
    rows = (
        await db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.subject.startswith(pattern))
            .order_by(OutboxMessage.id)
        )
    ).all()
    return [r for r in rows if priority is None or r.subject.endswith(f".p{priority}")]


async def count_alarms(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(Alarm)) or 0)
