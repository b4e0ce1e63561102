"""A small estate for the rollout tests: two regions, three facilities in different time zones,
panic buttons and doors, and the seeded countermeasure catalogue (migration 0006)."""

from __future__ import annotations

from typing import Any

import pytest

from watchfloor.sites.models import Device, Facility, Organisation, Region


@pytest.fixture
async def estate(db, clock) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    now = clock.now()
    org = Organisation(code="AGENCY", name="Test Agency", created_at=now, updated_at=now)
    east = Region(code="EAST", name="East", organisation=org, created_at=now, updated_at=now)
    west = Region(code="WEST", name="West", organisation=org, created_at=now, updated_at=now)
    facs = {
        "NYC-FO": Facility(code="NYC-FO", name="New York Field Office", region=east,
                           timezone="America/New_York", created_at=now, updated_at=now),
        "BOS-FO": Facility(code="BOS-FO", name="Boston Field Office", region=east,
                           timezone="America/New_York", created_at=now, updated_at=now),
        "PHX-CH": Facility(code="PHX-CH", name="Phoenix Courthouse", region=west,
                           timezone="America/Phoenix", created_at=now, updated_at=now),
    }  # fmt: skip
    db.add_all([org, east, west, *facs.values()])
    await db.flush()
    db.add_all(
        [
            Device(facility_id=facs["NYC-FO"].id, code="PB1", name="Lobby panic button",
                   kind="panic_button", status="offline", created_at=now, updated_at=now),
            Device(facility_id=facs["NYC-FO"].id, code="D1", name="Front door", kind="door",
                   status="online", created_at=now, updated_at=now),
            Device(facility_id=facs["BOS-FO"].id, code="D1", name="Front door", kind="door",
                   status="online", created_at=now, updated_at=now),
        ]
    )  # fmt: skip
    await db.commit()
    return {"facilities": {c: f.id for c, f in facs.items()}}
