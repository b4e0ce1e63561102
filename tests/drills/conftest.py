"""Fixtures of the drills tests: two regions, three facilities in different time zones (NYC-FO
with two doors on a controller and three staff, for lockdown drills), the in-process door driver,
and the seeded requirements (migration 0007)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drills_site import build_drills_site  # noqa: E402

from watchfloor.config import Settings  # noqa: E402


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with the in-process door driver (the runtime's engine uses it)."""
    return settings.model_copy(update={"doors_driver": "memory", "doors_timeout_seconds": 0.05})


@pytest.fixture
async def estate(db, clock) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return await build_drills_site(db, clock)
