"""Fixtures of the escalation tests: two facilities and incidents made directly in the database."""

from __future__ import annotations

import pytest
from escalation_helpers import MakeIncident
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import FakeClock
from watchfloor.incidents.models import Incident
from watchfloor.sites.models import Facility, Organisation, Region


@pytest.fixture
async def facilities(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> dict[str, int]:
    """Facilities ESC-1 and ESC-2 (region R1) and ESC-3 (region R2); ids by code."""
    now = clock.now()
    ids: dict[str, int] = {}
    async with sessionmaker() as db:
        org = Organisation(code="ORG", name="Agency", created_at=now, updated_at=now)
        for rcode, fcodes in (("R1", ("ESC-1", "ESC-2")), ("R2", ("ESC-3",))):
            region = Region(
                code=rcode, name=rcode, organisation=org, created_at=now, updated_at=now
            )
            for fcode in fcodes:
                db.add(
                    Facility(
                        code=fcode,
                        name=f"Office {fcode}",
                        region=region,
                        created_at=now,
                        updated_at=now,
                    )
                )
        await db.flush()
        for fcode in ("ESC-1", "ESC-2", "ESC-3"):
            from sqlalchemy import select

            ids[fcode] = (
                await db.execute(select(Facility.id).where(Facility.code == fcode))
            ).scalar_one()
        await db.commit()
    return ids


@pytest.fixture
def make_incident(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock, facilities: dict[str, int]
) -> MakeIncident:
    """make_incident(priority=1, facility="ESC-1") -> incident id; escalation started, committed."""
    from watchfloor.incidents.escalation import start_escalation

    async def _make(priority: int = 1, facility: str = "ESC-1", title: str = "Panic") -> int:
        now = clock.now()
        async with sessionmaker() as db:
            incident = Incident(
                facility_id=facilities[facility],
                title=title,
                priority=priority,
                status="new",
                opened_at=now,
                last_alarm_at=now,
                alarm_count=1,
                escalation={},
            )
            db.add(incident)
            await db.flush()
            await start_escalation(db, clock, incident)
            await db.commit()
            return incident.id

    return _make
