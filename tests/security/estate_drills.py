"""The drills domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from typing import Any


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """Nothing yet."""
    return {}
