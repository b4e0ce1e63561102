"""Test data of the roll-call tests (imported by name): the alarms tests' two facilities (HQ and
LAX, default alarm rules seeded) with staff at each, and helpers."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "alarms"))

from alarm_site import Site, build_site  # noqa: E402

from watchfloor.clock import FakeClock  # noqa: E402
from watchfloor.people.models import Person  # noqa: E402
from watchfloor.rollcall.models import RollCallEntry  # noqa: E402

HQ_STAFF = [
    # employee id, given, family, phone, active
    ("HQ-001", "Ana", "Alvarez", "+1 (214) 555-0101", True),
    ("HQ-002", "Ben", "Baker", "+1 214 555 0102", True),
    ("HQ-003", "Cleo", "Chen", "", True),
    ("HQ-004", "Dan", "Dormant", "+1 214 555 0104", False),  # not active: not asked
]
LAX_STAFF = [("LAX-001", "Lena", "Lopez", "+1 310 555 0199", True)]


@dataclass
class RollSite:
    site: Site
    people: dict[str, int] = field(default_factory=dict)  # employee id -> Person.id

    @property
    def hq(self) -> int:
        return self.site.facilities["HQ"]


async def build(db: AsyncSession, clock: FakeClock) -> RollSite:
    site = await build_site(db, clock)
    out = RollSite(site=site)
    now = clock.now()
    for code, staff in (("HQ", HQ_STAFF), ("LAX", LAX_STAFF)):
        for emp, given, family, phone, active in staff:
            person = Person(
                facility_id=site.facilities[code],
                employee_id=emp,
                given_name=given,
                family_name=family,
                email=f"{given.lower()}@example.org",
                phone=phone,
                contacts=[],
                active=active,
                created_at=now,
                updated_at=now,
            )
            db.add(person)
            await db.flush()
            out.people[emp] = person.id
    await db.commit()
    return out


def token_of(url: str) -> str:
    """The token at the end of an answer link (http://host/r/<token>)."""
    path = urlparse(url).path
    assert path.startswith("/r/"), url
    return path.removeprefix("/r/")


async def entry_of(db: AsyncSession, roll_call_id: int, employee_id: str) -> RollCallEntry:
    db.expire_all()
    return (
        await db.scalars(
            select(RollCallEntry).where(
                RollCallEntry.roll_call_id == roll_call_id,
                RollCallEntry.employee_id == employee_id,
            )
        )
    ).one()


def by_employee(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["employee_id"]: e for e in detail["entries"]}
