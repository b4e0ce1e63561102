"""Fixtures of the roll-call tests."""

from __future__ import annotations

import pytest
from rollcall_helpers import RollSite, build


@pytest.fixture
async def rsite(db, clock) -> RollSite:  # type: ignore[no-untyped-def]
    return await build(db, clock)


@pytest.fixture
async def operator(make_token):  # type: ignore[no-untyped-def]
    return await make_token("operator", org=True)
