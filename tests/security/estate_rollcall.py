"""The rollcall domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from watchfloor.rollcall import service
from watchfloor.rollcall.models import RollCallEntry
from watchfloor.sites.models import Facility

# the tests' app secret (tests/conftest.py `settings`): A's answer link is a real one
TEST_SECRET = "test-secret-key-not-for-production"


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """Add rollcall objects for facilities A and B; return the path values naming A's."""
    found: dict[str, Any] = {}
    for side in (a, b):
        facility = await db.get(Facility, side.facility_id)
        roll_call = await service.start(
            db,
            clock,
            "system:test",
            facility,
            secret_key=TEST_SECRET,
            public_url="http://testserver",
            reason=f"{facility.name} drill",
            exercise=True,
        )
        entry = (
            await db.scalars(
                select(RollCallEntry).where(RollCallEntry.roll_call_id == roll_call.id)
            )
        ).first()
        assert entry is not None
        if side is a:
            found = {
                "roll_call_id": roll_call.id,
                "entry_id": entry.id,
                "token": service.make_token(
                    TEST_SECRET, roll_call.id, entry.id, entry.person_id, clock.now()
                ),
            }
    await db.commit()
    return found
