"""Test data of the assessments tests (imported by name): an organisation with two regions and a
facility in each (HQ: 50,000 sq ft, three active staff and one who left; FAR: no staff)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.clock import FakeClock
from watchfloor.people.models import Person
from watchfloor.sites.models import Facility, Organisation, Region


@dataclass
class AsmSite:
    hq: int
    far: int


async def build(db: AsyncSession, clock: FakeClock) -> AsmSite:
    now = clock.now()
    org = Organisation(code="ORG", name="Test Agency", created_at=now, updated_at=now)
    north = Region(code="NORTH", name="North", organisation=org, created_at=now, updated_at=now)
    south = Region(code="SOUTH", name="South", organisation=org, created_at=now, updated_at=now)
    hq = Facility(
        code="HQ",
        name="Headquarters Field Office",
        region=north,
        timezone="America/Chicago",
        floor_area_sqft=50_000,
        created_at=now,
        updated_at=now,
    )
    far = Facility(
        code="FAR",
        name="Far Away Office",
        region=south,
        timezone="America/Los_Angeles",
        created_at=now,
        updated_at=now,
    )
    db.add_all([org, north, south, hq, far])
    await db.flush()
    for i, active in enumerate([True, True, True, False], start=1):
        db.add(
            Person(
                facility_id=hq.id,
                employee_id=f"HQ-{i:03d}",
                given_name=f"Given{i}",
                family_name=f"Family{i}",
                contacts=[],
                active=active,
                created_at=now,
                updated_at=now,
            )
        )
    await db.commit()
    return AsmSite(hq=hq.id, far=far.id)
