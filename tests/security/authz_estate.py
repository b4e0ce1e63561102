"""Test data for the security tests (a module, so test files can import it by name).

Two facilities, A and B, in different regions, each with a zone, a device, a response unit, a
person, a user granted there and an API token scoped there. Everything of A's carries the marker
"ALFA" in its codes and names, so a response that leaks A's data to B's callers can be spotted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watchfloor.auth import service as auth_service
from watchfloor.people.models import Person
from watchfloor.sites.models import (
    Device,
    Facility,
    Organisation,
    Region,
    ResponseUnit,
    Zone,
)

MARKER = "ALFA"


@dataclass
class Side:
    region_code: str
    code: str
    zone_code: str
    device_code: str
    unit_code: str
    employee_id: str
    username: str
    user_id: int = 0
    grant_id: int = 0
    token_id: int = 0
    facility_id: int = 0


@dataclass
class Estate:
    a: Side
    b: Side
    # auth headers of the callers
    callers: dict[str, dict[str, str]] = field(default_factory=dict)

    def path_values(self) -> dict[str, Any]:
        """Path parameter name → the value that names facility A's object."""
        a = self.a
        return {
            "code": a.code,
            "facility_code": a.code,
            "region_code": a.region_code,
            "zone_code": a.zone_code,
            "device_code": a.device_code,
            "unit_code": a.unit_code,
            "employee_id": a.employee_id,
            "user_id": a.user_id,
            "username": a.username,
            "grant_id": a.grant_id,
            "token_id": a.token_id,
        }


async def _side(db, clock, org: Organisation, prefix: str, label: str) -> Side:  # type: ignore[no-untyped-def]
    now = clock.now()
    side = Side(
        region_code=f"{prefix}-R",
        code=f"{prefix}-1",
        zone_code=f"{prefix}-Z1",
        device_code=f"{prefix}-D1",
        unit_code=f"{prefix}-U1",
        employee_id=f"{prefix}-P1",
        username=f"{prefix.lower()}-user",
    )
    region = Region(
        code=side.region_code,
        name=f"{label} Region",
        organisation=org,
        created_at=now,
        updated_at=now,
    )
    facility = Facility(
        code=side.code,
        name=f"{label} Field Office",
        region=region,
        address=f"1 {label} Street",
        latitude=32.7,
        longitude=-96.8,
        timezone="America/Chicago",
        created_at=now,
        updated_at=now,
    )
    zone = Zone(
        facility=facility,
        code=side.zone_code,
        name=f"{label} Lobby",
        kind="lobby",
        created_at=now,
        updated_at=now,
    )
    device = Device(
        facility=facility,
        zone=zone,
        code=side.device_code,
        name=f"{label} Front Door",
        kind="door",
        created_at=now,
        updated_at=now,
    )
    unit = ResponseUnit(
        facility=facility,
        code=side.unit_code,
        name=f"{label} Police",
        kind="police",
        contacts=[{"channel": "phone", "value": "+1 555 0100"}],
        created_at=now,
        updated_at=now,
    )
    db.add_all([region, facility, zone, device, unit])
    await db.flush()
    person = Person(
        facility_id=facility.id,
        employee_id=side.employee_id,
        given_name=label,
        family_name=f"{label}son",
        email=f"{prefix.lower()}@example.org",
        contacts=[],
        created_at=now,
        updated_at=now,
    )
    db.add(person)
    user = await auth_service.create_user(
        db,
        clock,
        "system:test",
        username=side.username,
        password="correct horse battery staple",
        display_name=f"{label} Manager",
        grants=[("facility_manager", auth_service.ScopeSpec.facility(side.code))],
    )
    token, _secret = await auth_service.create_token(
        db,
        clock,
        "system:test",
        name=f"{prefix.lower()}-door-feed",
        role="guard",
        scope=auth_service.ScopeSpec.facility(side.code),
    )
    await db.flush()
    side.user_id, side.grant_id, side.token_id = user.id, user.grants[0].id, token.id
    side.facility_id = facility.id
    return side


async def build_estate(db, clock, make_token) -> Estate:  # type: ignore[no-untyped-def]
    now = clock.now()
    org = Organisation(code="AGENCY", name="Test Agency", created_at=now, updated_at=now)
    db.add(org)
    a = await _side(db, clock, org, MARKER, "Alfa")
    b = await _side(db, clock, org, "BRAVO", "Bravo")
    await db.commit()
    est = Estate(a=a, b=b)
    est.callers["facility_manager@B"] = await make_token("facility_manager", facility=b.code)
    est.callers["admin@B"] = await make_token("admin", facility=b.code)
    est.callers["admin@org"] = await make_token("admin", org=True)
    return est
