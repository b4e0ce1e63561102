"""The demo loader adds completions for the demo staff once (a second run adds nothing), with
dates that make a mix of statuses and never a completion in the future."""

from __future__ import annotations

from sqlalchemy import func, select

from watchfloor.training.demo import load_demo_training
from watchfloor.training.models import TrainingCompletion


async def test_demo_training_is_idempotent_and_realistic(db, clock, estate) -> None:  # type: ignore[no-untyped-def]
    added = await load_demo_training(db, clock)
    await db.commit()
    assert added > 0
    assert await load_demo_training(db, clock) == 0
    n = await db.scalar(select(func.count()).select_from(TrainingCompletion))
    assert n == added
    latest = await db.scalar(select(func.max(TrainingCompletion.completed_on)))
    assert latest is not None and latest <= clock.now().date()
