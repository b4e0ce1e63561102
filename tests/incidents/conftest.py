"""Fixtures of the incidents tests: the alarms tests' two-facility site, and callers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "alarms"))

from alarm_site import Site, build_site  # noqa: E402


@pytest.fixture
async def site(db, clock) -> Site:  # type: ignore[no-untyped-def]
    return await build_site(db, clock)
