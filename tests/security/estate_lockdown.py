"""The lockdown domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from typing import Any

from watchfloor.lockdown import service
from watchfloor.sites.models import Facility


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """Add lockdown objects for facilities A and B; return the path values naming A's."""
    ids: dict[str, dict[str, int]] = {}
    for side, words in ((a, "ALFA lockdown"), (b, "Bravo lockdown")):
        facility = await db.get(Facility, side.facility_id)
        result = await service.start(
            db, clock, "system:test", [service.Target(facility)], reason=words
        )
        trigger = await service.set_trigger(
            db,
            clock,
            "system:test",
            facility=facility,
            alarm_type="weapon",
            scope="zone",
            enabled=True,
        )
        ids[side.code] = {"lockdown_id": result.lockdowns[0].id, "trigger_id": trigger.id}
    await db.flush()
    return ids[a.code]
