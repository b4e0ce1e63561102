"""Fixtures of the security tests: facility A's and facility B's data, and B's callers."""

from __future__ import annotations

import pytest
from authz_estate import Estate, build_estate


@pytest.fixture
async def estate(db, clock, make_token) -> Estate:  # type: ignore[no-untyped-def]
    return await build_estate(db, clock, make_token)
