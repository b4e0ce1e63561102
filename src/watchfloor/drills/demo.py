"""Demo data of the drills domain, loaded by `watchfloor demo` after the demo organisation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.clock import Clock


async def load_demo_drills(db: AsyncSession, clock: Clock) -> int:
    """Add the demo's drills data once (a second run adds nothing); returns how many rows were
    added. The caller commits."""
    return 0
