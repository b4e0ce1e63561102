"""Test data of the lockdown tests (imported by name): region R1 with HQ (zones LOBBY and SECURE,
six doors on two controllers, plus a reader and a camera that are not doors) and LAX (three
doors), region R2 with NYC (two doors). Default alarm rules and escalation policies are seeded."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.defaults import ensure_defaults
from watchfloor.clock import FakeClock
from watchfloor.incidents.escalation import ensure_default_policies
from watchfloor.incidents.models import Incident
from watchfloor.sites.models import Device, Facility, Organisation, Region, Zone


@dataclass
class LockSite:
    facilities: dict[str, Facility] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)  # "HQ/LOBBY"
    doors: dict[str, Device] = field(default_factory=dict)  # "HQ/DOOR-1"
    regions: dict[str, Region] = field(default_factory=dict)

    def door_ids(self, facility: str) -> set[int]:
        return {d.id for k, d in self.doors.items() if k.startswith(facility + "/")}


LAYOUT = {
    "R1": {
        "HQ": {
            "zones": ["LOBBY", "SECURE"],
            "doors": {
                "DOOR-1": ("LOBBY", 1),
                "DOOR-2": ("LOBBY", 1),
                "DOOR-3": ("LOBBY", 1),
                "DOOR-4": ("SECURE", 2),
                "DOOR-5": ("SECURE", 2),
                "DOOR-6": ("SECURE", 2),
            },
        },
        "LAX": {"zones": ["YARD"], "doors": {f"DOOR-{i}": ("YARD", 1) for i in (1, 2, 3)}},
    },
    "R2": {"NYC": {"zones": ["MAIN"], "doors": {"DOOR-1": ("MAIN", 1), "DOOR-2": ("MAIN", 1)}}},
}


async def build_lock_site(db: AsyncSession, clock: FakeClock) -> LockSite:
    now = clock.now()
    org = Organisation(code="AGENCY", name="Agency", created_at=now, updated_at=now)
    db.add(org)
    site = LockSite()
    for rcode, facilities in LAYOUT.items():
        region = Region(
            code=rcode, name=f"Region {rcode}", organisation=org, created_at=now, updated_at=now
        )
        db.add(region)
        site.regions[rcode] = region
        for fcode, spec in facilities.items():
            facility = Facility(
                code=fcode,
                name=f"{fcode} Office",
                region=region,
                timezone="UTC",
                created_at=now,
                updated_at=now,
            )
            db.add(facility)
            await db.flush()
            site.facilities[fcode] = facility
            for zcode in spec["zones"]:
                zone = Zone(
                    facility_id=facility.id,
                    code=zcode,
                    name=f"{zcode.title()} zone",
                    created_at=now,
                    updated_at=now,
                )
                db.add(zone)
                await db.flush()
                site.zones[f"{fcode}/{zcode}"] = zone
            for ctrl in (1, 2):
                db.add(
                    Device(
                        facility_id=facility.id,
                        code=f"CTRL-{ctrl}",
                        name=f"Controller {ctrl}",
                        kind="controller",
                        protocol="osdp",
                        address=f"osdp://controller-{ctrl}",
                        created_at=now,
                        updated_at=now,
                    )
                )
            for n, (dcode, (zcode, ctrl)) in enumerate(spec["doors"].items(), start=1):
                door = Device(
                    facility_id=facility.id,
                    zone_id=site.zones[f"{fcode}/{zcode}"].id,
                    code=dcode,
                    name=f"Door {dcode[-1]}",
                    kind="door",
                    protocol="osdp",
                    address=f"osdp://controller-{ctrl}/{n}",
                    created_at=now,
                    updated_at=now,
                )
                db.add(door)
                await db.flush()
                site.doors[f"{fcode}/{dcode}"] = door
            for other, kind in (("RDR-1", "reader"), ("CAM-1", "camera")):
                db.add(
                    Device(
                        facility_id=facility.id,
                        zone_id=site.zones[f"{fcode}/{spec['zones'][0]}"].id,
                        code=other,
                        name=other,
                        kind=kind,
                        address="osdp://controller-1/99",
                        created_at=now,
                        updated_at=now,
                    )
                )
    await db.flush()
    await ensure_default_policies(db, clock)
    await ensure_defaults(db, clock)
    await db.commit()
    return site


async def open_incident(db: AsyncSession, clock: FakeClock, facility: Facility) -> Incident:
    now = clock.now()
    incident = Incident(
        facility_id=facility.id,
        title="Weapon detected",
        priority=1,
        status="new",
        opened_at=now,
        last_alarm_at=now,
        attention_at=now,
        priority_at=now,
        alarm_count=1,
        escalation={},
    )
    db.add(incident)
    await db.commit()
    return incident
