"""Fixtures of the events tests: two facilities with devices, and ingest tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from watchfloor.sites.models import Device, Facility, Organisation, Region, Zone


@dataclass
class Site:
    alpha_id: int
    bravo_id: int
    door_id: int
    panic_id: int
    cam_id: int


@pytest.fixture
async def site(db, clock) -> Site:  # type: ignore[no-untyped-def]
    now = clock.now()
    org = Organisation(code="TEST", name="Test Agency", created_at=now, updated_at=now)
    r1 = Region(code="R1", name="One", organisation=org, created_at=now, updated_at=now)
    r2 = Region(code="R2", name="Two", organisation=org, created_at=now, updated_at=now)
    alpha = Facility(
        code="ALPHA",
        name="Alpha",
        region=r1,
        timezone="America/Chicago",
        created_at=now,
        updated_at=now,
    )
    bravo = Facility(code="BRAVO", name="Bravo", region=r2, created_at=now, updated_at=now)
    lobby = Zone(
        facility=alpha, code="LOBBY", name="Lobby", kind="lobby", created_at=now, updated_at=now
    )
    door = Device(
        facility=alpha,
        zone=lobby,
        code="DOOR-1",
        name="Front door",
        kind="door",
        created_at=now,
        updated_at=now,
    )
    panic = Device(
        facility=alpha,
        code="PANIC-1",
        name="Panic",
        kind="panic_button",
        created_at=now,
        updated_at=now,
    )
    cam = Device(
        facility=bravo, code="CAM-1", name="Camera", kind="camera", created_at=now, updated_at=now
    )
    db.add_all([org, r1, r2, alpha, bravo, lobby, door, panic, cam])
    await db.commit()
    return Site(alpha.id, bravo.id, door.id, panic.id, cam.id)


@pytest.fixture
async def device_token(site, make_token):  # type: ignore[no-untyped-def]
    return await make_token("device", facility="ALPHA", name="alpha-door-feed")


def iso(when: datetime, delta: float = 0) -> str:
    return (when + timedelta(seconds=delta)).isoformat()
