"""Test data of the drills tests (imported by name) and small helpers."""

from __future__ import annotations

from typing import Any

import httpx

from watchfloor.clock import FakeClock
from watchfloor.people.models import Person
from watchfloor.sites.models import Device, Facility, Organisation, Region, Zone

PROBLEM = "application/problem+json"


async def build_drills_site(db: Any, clock: FakeClock) -> dict[str, Any]:
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
    nyc = facs["NYC-FO"]
    lobby = Zone(facility_id=nyc.id, code="LOBBY", name="Lobby", created_at=now, updated_at=now)
    db.add(lobby)
    await db.flush()
    db.add(
        Device(facility_id=nyc.id, code="CTRL-1", name="Controller 1", kind="controller",
               protocol="osdp", address="osdp://controller-1", created_at=now, updated_at=now)
    )  # fmt: skip
    for n in (1, 2):
        db.add(
            Device(facility_id=nyc.id, zone_id=lobby.id, code=f"DOOR-{n}", name=f"Door {n}",
                   kind="door", protocol="osdp", address=f"osdp://controller-1/{n}",
                   created_at=now, updated_at=now)
        )  # fmt: skip
    people: dict[str, int] = {}
    for emp, given, family in (("NY-1", "Ana", "Alvarez"), ("NY-2", "Ben", "Baker"),
                               ("NY-3", "Cleo", "Chen")):  # fmt: skip
        person = Person(facility_id=nyc.id, employee_id=emp, given_name=given, family_name=family,
                        email=f"{given.lower()}@example.org", phone="", contacts=[], active=True,
                        created_at=now, updated_at=now)  # fmt: skip
        db.add(person)
        await db.flush()
        people[emp] = person.id
    await db.commit()
    return {"facilities": {c: f.id for c, f in facs.items()}, "people": people}


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["detail"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    """The field names a 422 problem names (last part of each error's loc)."""
    return [str(e["loc"][-1]) for e in body.get("errors", [])]
