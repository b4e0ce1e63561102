"""Bus subscriptions and background work of the drills domain.

None: a drill's timings are read from the lockdown and roll-call records when the drill ends (and
again on demand, `POST /drills/{id}/capture`, e.g. after the lockdown has been lifted), so nothing
needs to listen to the bus.
"""

from __future__ import annotations

from typing import Any


async def register(runtime: Any) -> None:
    """Nothing to subscribe to."""
