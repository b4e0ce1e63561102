"""Fixtures of the alarms tests: the two-facility site with default rules."""

from __future__ import annotations

import pytest
from alarm_site import Site, build_site


@pytest.fixture
async def site(db, clock) -> Site:  # type: ignore[no-untyped-def]
    return await build_site(db, clock)
