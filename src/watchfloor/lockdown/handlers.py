"""Bus subscriptions of the lockdown domain."""

from __future__ import annotations

from typing import Any


async def register(runtime: Any) -> None:
    """Subscribe this domain's handlers; the runtime awaits this at start."""
