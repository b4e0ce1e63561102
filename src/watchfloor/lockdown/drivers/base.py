"""The door driver interface: how the lockdown service commands door controllers.

A driver sends one command (lock, or unlock back to the normal schedule) to many doors at once and
yields one `DoorResult` per door as each confirmation, failure or timeout arrives. Retries,
backoff, flags and alarms are the lockdown service's job; a driver makes exactly one attempt per
door per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class DoorCommand(StrEnum):
    LOCK = "lock"
    UNLOCK = "unlock"  # back to the door's normal schedule


@dataclass(frozen=True)
class DoorTarget:
    """One door to command."""

    device_id: int  # the door's Device.id (kind "door")
    facility_code: str
    door_code: str  # Device.code, e.g. DOOR-012
    address: str  # Device.address, e.g. "osdp://controller-3/12"
    controller_address: str  # the controller Device.address, e.g. "osdp://controller-3"


@dataclass(frozen=True)
class DoorResult:
    device_id: int
    ok: bool  # True: the controller confirmed the door is in the commanded state
    state: str  # "locked" | "unlocked" | "unknown"
    error: str = ""  # why not, in words an operator understands


class DoorDriver(Protocol):
    name: str

    def command(
        self, targets: Sequence[DoorTarget], command: DoorCommand
    ) -> AsyncIterator[DoorResult]:
        """One attempt per door, all doors in flight at once; yields each door's result as its
        confirmation (or failure / timeout) arrives; every target yields exactly one result."""
        ...

    async def close(self) -> None: ...


def commanded_state(command: DoorCommand) -> str:
    """The state a door reports once it has carried out `command`."""
    return "locked" if command is DoorCommand.LOCK else "unlocked"
