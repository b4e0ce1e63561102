"""A small estate for the training tests: two regions, three facilities in different time zones,
staff of several roles (a guard, staff, security managers), the seeded course catalogue and role
requirements (migration 0008), and a helper to record completions."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from watchfloor.auth.principal import SYSTEM
from watchfloor.people.models import Person
from watchfloor.sites.models import Facility, Organisation, Region
from watchfloor.training import service

PEOPLE = [  # employee id, facility, given, family, role, vetting, vetting expires
    ("N-GUARD", "NYC-FO", "Gina", "Guard", "guard", "cleared", date(2027, 6, 1)),
    ("N-STAFF", "NYC-FO", "Sam", "Staff", "staff", "cleared", date(2025, 12, 1)),
    ("N-MGR", "NYC-FO", "Mona", "Manager", "facility_manager", "cleared", None),
    ("B-STAFF", "BOS-FO", "Bea", "Boston", "staff", "cleared", None),
    ("B-MGR", "BOS-FO", "Bob", "Manager", "facility_manager", "cleared", None),
    ("P-STAFF", "PHX-CH", "Pat", "Phoenix", "staff", "pending", None),
]


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
    people = {}
    for emp, fac, given, family, role, vet, vet_exp in PEOPLE:
        p = Person(
            facility_id=facs[fac].id, employee_id=emp, given_name=given, family_name=family,
            role=role, email=f"{emp.lower()}@example.org", contacts=[], vetting_status=vet,
            vetting_expires_on=vet_exp, created_at=now, updated_at=now,
        )  # fmt: skip
        db.add(p)
        people[emp] = p
    await db.commit()
    return {
        "facilities": {c: f.id for c, f in facs.items()},
        "people": {e: p.id for e, p in people.items()},
    }


@pytest.fixture
def record(sessionmaker, clock):  # type: ignore[no-untyped-def]
    """record(employee_id, course_code, completed_on) enters a completion as the system."""

    async def _record(employee_id: str, course: str, done: date) -> None:
        async with sessionmaker() as db:
            await service.record_completion(
                db, clock, SYSTEM, employee_id=employee_id, course_code=course, completed_on=done
            )
            await db.commit()

    return _record
