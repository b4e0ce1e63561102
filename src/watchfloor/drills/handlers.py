"""Bus subscriptions and background work of the drills domain."""

from __future__ import annotations

from typing import Any


async def register(runtime: Any) -> None:
    """Nothing to subscribe to yet."""
