"""Demo data of the training domain, loaded by `watchfloor demo` after the demo organisation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.clock import Clock


async def load_demo_training(db: AsyncSession, clock: Clock) -> int:
    """Add the demo's training data once (a second run adds nothing); returns how many rows were
    added. The caller commits."""
    return 0
