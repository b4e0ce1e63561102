"""Door controller drivers: `driver_for(settings)` returns the configured one.

See base.py for the interface, osdp.py for OSDP over TCP and memory.py for the in-process
stand-in used by unit tests; docs/doors.md describes both.
"""

from __future__ import annotations

from watchfloor.config import Settings
from watchfloor.lockdown.drivers.base import DoorCommand, DoorDriver, DoorResult, DoorTarget

__all__ = ["DoorCommand", "DoorDriver", "DoorResult", "DoorTarget", "driver_for"]


def driver_for(settings: Settings) -> DoorDriver:
    """The door driver `settings.doors_driver` names ('osdp' or 'memory')."""
    if settings.doors_driver == "memory":
        from watchfloor.lockdown.drivers.memory import MemoryDoorDriver

        return MemoryDoorDriver(timeout=settings.doors_timeout_seconds)
    from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver

    return OsdpDoorDriver.from_settings(settings)
