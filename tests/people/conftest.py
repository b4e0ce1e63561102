"""Fixtures for the people tests: a small organisation of three facilities in two regions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from watchfloor.sites.models import Facility, Organisation, Region


@dataclass
class Org:
    facilities: dict[str, Facility]
    regions: dict[str, Region]


@pytest.fixture
async def org(db, clock) -> Org:  # type: ignore[no-untyped-def]
    now = clock.now()
    organisation = Organisation(code="AGENCY", name="Test Agency", created_at=now, updated_at=now)
    south = Region(
        code="SOUTH", name="South", organisation=organisation, created_at=now, updated_at=now
    )
    north = Region(
        code="NORTH", name="North", organisation=organisation, created_at=now, updated_at=now
    )
    facilities = {
        code: Facility(code=code, name=name, region=region, created_at=now, updated_at=now)
        for code, name, region in (
            ("DAL-01", "Dallas Field Office", south),
            ("HOU-01", "Houston Field Office", south),
            ("NYC-01", "New York Field Office", north),
        )
    }
    db.add_all([organisation, south, north, *facilities.values()])
    await db.commit()
    return Org(facilities=facilities, regions={"SOUTH": south, "NORTH": north})
