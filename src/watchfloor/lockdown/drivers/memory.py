"""An in-process door driver for unit tests: no network, behaviour set per door or controller.

    driver = MemoryDoorDriver(timeout=0.05)
    driver.set_door(device_id, Behaviour.FAIL, error="Door held open")
    driver.set_controller("TX-DALLAS-FO", "osdp://controller-2", Behaviour.SILENT)
    async for result in driver.command(targets, DoorCommand.LOCK): ...

CONFIRM answers at once (after `delay` seconds when given); FAIL answers ok=False with the error;
LAG answers after `delay` seconds (a timeout result when that is beyond the driver's timeout);
SILENT never answers, so the door yields a timeout result after `timeout` seconds. A door's own
setting wins over its controller's, which wins over the default. `calls` records every command,
`states` every door's last confirmed state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from watchfloor.lockdown.drivers.base import DoorCommand, DoorResult, DoorTarget, commanded_state


class Behaviour(StrEnum):
    CONFIRM = "confirm"
    FAIL = "fail"
    LAG = "lag"
    SILENT = "silent"


@dataclass(frozen=True)
class Plan:
    behaviour: Behaviour = Behaviour.CONFIRM
    delay: float = 0.0
    error: str = ""


def timeout_error(seconds: float) -> str:
    return f"No confirmation from the controller within {seconds:g} s"


class MemoryDoorDriver:
    name = "memory"

    def __init__(self, timeout: float = 3.0, default: Plan | None = None) -> None:
        self.timeout = timeout
        self.default = default or Plan()
        self._doors: dict[int, Plan] = {}
        self._controllers: dict[tuple[str, str], Plan] = {}
        self.calls: list[tuple[DoorCommand, tuple[DoorTarget, ...]]] = []
        self.states: dict[int, str] = {}
        self.closed = False

    # -- behaviour -----------------------------------------------------------------------------

    def set_door(
        self, device_id: int, behaviour: Behaviour, *, delay: float = 0.0, error: str = ""
    ) -> None:
        self._doors[device_id] = Plan(behaviour, delay, error)

    def set_controller(
        self,
        facility_code: str,
        controller_address: str,
        behaviour: Behaviour,
        *,
        delay: float = 0.0,
        error: str = "",
    ) -> None:
        self._controllers[(facility_code, controller_address)] = Plan(behaviour, delay, error)

    def set_default(self, behaviour: Behaviour, *, delay: float = 0.0, error: str = "") -> None:
        self.default = Plan(behaviour, delay, error)

    def reset(self) -> None:
        self._doors.clear()
        self._controllers.clear()
        self.default = Plan()

    def plan_for(self, target: DoorTarget) -> Plan:
        if target.device_id in self._doors:
            return self._doors[target.device_id]
        return self._controllers.get(
            (target.facility_code, target.controller_address), self.default
        )

    # -- the driver ----------------------------------------------------------------------------

    async def _one(self, target: DoorTarget, command: DoorCommand) -> DoorResult:
        if not target.address:
            return DoorResult(target.device_id, False, "unknown", "The door has no address")
        plan = self.plan_for(target)
        if plan.behaviour is Behaviour.FAIL:
            if plan.delay:
                await asyncio.sleep(min(plan.delay, self.timeout))
            error = plan.error or "The controller refused the command"
            return DoorResult(target.device_id, False, "unknown", error)
        if plan.behaviour is Behaviour.SILENT or plan.delay > self.timeout:
            await asyncio.sleep(self.timeout)
            return DoorResult(target.device_id, False, "unknown", timeout_error(self.timeout))
        if plan.delay:
            await asyncio.sleep(plan.delay)
        state = commanded_state(command)
        self.states[target.device_id] = state
        return DoorResult(target.device_id, True, state)

    async def command(
        self, targets: Sequence[DoorTarget], command: DoorCommand
    ) -> AsyncIterator[DoorResult]:
        if self.closed:
            raise RuntimeError("The door driver is closed")
        self.calls.append((command, tuple(targets)))
        tasks = [asyncio.ensure_future(self._one(t, command)) for t in targets]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()

    async def close(self) -> None:
        self.closed = True
