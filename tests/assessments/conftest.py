"""Fixtures of the assessments tests."""

from __future__ import annotations

import pytest
from asm_site import AsmSite, build


@pytest.fixture
async def site(db, clock) -> AsmSite:  # type: ignore[no-untyped-def]
    return await build(db, clock)


@pytest.fixture
async def manager(make_token, site):  # type: ignore[no-untyped-def]
    """A programme manager for the whole organisation."""
    return await make_token("programme_manager", org=True)


@pytest.fixture
async def hq_manager(make_token, site):  # type: ignore[no-untyped-def]
    """HQ's facility manager (nothing else)."""
    return await make_token("facility_manager", facility="HQ", name="hq-manager")
