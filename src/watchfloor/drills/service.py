"""The drills domain's logic (no HTTP here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass
class FacilityCompliance:
    """One facility's drills compliance, as the preparedness scorecard shows it."""

    status: str  # "in_place" | "under_review" | "gap" | "not_tracked"
    priority: str  # "high" | "medium" | "low"
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (text, console link)


async def facility_compliance(
    db: AsyncSession, facility_ids: Sequence[int], now: datetime, *, with_reasons: bool = True
) -> dict[int, FacilityCompliance]:
    """Compliance of each facility named (a facility left out is "not tracked"). The scorecard
    roll-up calls this for every facility in scope (10,000 and more) with with_reasons=False."""
    return {}
