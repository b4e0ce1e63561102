"""The in-process door driver the lockdown unit tests use, and `driver_for(settings)`."""

from __future__ import annotations

import pytest

from watchfloor.config import Settings
from watchfloor.lockdown.drivers import driver_for
from watchfloor.lockdown.drivers.base import DoorCommand, DoorResult, DoorTarget
from watchfloor.lockdown.drivers.memory import Behaviour, MemoryDoorDriver, timeout_error
from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver


def door(n: int, controller: int = 1, facility: str = "F-1") -> DoorTarget:
    ctrl = f"osdp://controller-{controller}"
    return DoorTarget(n, facility, f"DOOR-{n:03d}", f"{ctrl}/{n}", ctrl)


async def results(driver: MemoryDoorDriver, targets: list[DoorTarget]) -> dict[int, DoorResult]:
    out: dict[int, DoorResult] = {}
    async for result in driver.command(targets, DoorCommand.LOCK):
        assert result.device_id not in out
        out[result.device_id] = result
    assert set(out) == {t.device_id for t in targets}
    return out


async def test_each_behaviour_per_door_and_per_controller() -> None:
    driver = MemoryDoorDriver(timeout=0.05)
    driver.set_door(2, Behaviour.FAIL, error="Door held open")
    driver.set_door(3, Behaviour.SILENT)
    driver.set_door(4, Behaviour.LAG, delay=0.01)
    driver.set_door(5, Behaviour.LAG, delay=60)
    driver.set_controller("F-1", "osdp://controller-2", Behaviour.FAIL)
    driver.set_door(7, Behaviour.CONFIRM)  # the door's own setting wins over its controller's
    targets = [door(1), door(2), door(3), door(4), door(5), door(6, 2), door(7, 2)]
    out = await results(driver, targets)
    assert out[1] == DoorResult(1, True, "locked")
    assert out[2] == DoorResult(2, False, "unknown", "Door held open")
    assert out[3] == DoorResult(3, False, "unknown", timeout_error(0.05))
    assert out[4].ok and out[4].state == "locked"
    assert out[5].error == timeout_error(0.05)
    assert out[6].ok is False and out[6].error
    assert out[7].ok
    assert driver.states == {1: "locked", 4: "locked", 7: "locked"}
    assert driver.calls == [(DoorCommand.LOCK, tuple(targets))]


async def test_unlock_reports_the_unlocked_state_and_reset_clears_faults() -> None:
    driver = MemoryDoorDriver()
    driver.set_default(Behaviour.FAIL)
    assert not (await results(driver, [door(1)]))[1].ok
    driver.reset()
    out = [r async for r in driver.command([door(1)], DoorCommand.UNLOCK)]
    assert out == [DoorResult(1, True, "unlocked")]


async def test_a_door_without_an_address_fails_and_a_closed_driver_refuses() -> None:
    driver = MemoryDoorDriver()
    blank = DoorTarget(9, "F-1", "DOOR-009", "", "")
    assert (await results(driver, [blank]))[9].ok is False
    await driver.close()
    with pytest.raises(RuntimeError):
        async for _ in driver.command([door(1)], DoorCommand.LOCK):
            pass


async def test_driver_for_picks_the_configured_driver() -> None:
    memory = driver_for(Settings(doors_driver="memory", doors_timeout_seconds=1.5))
    assert isinstance(memory, MemoryDoorDriver) and memory.timeout == 1.5
    osdp = driver_for(
        Settings(
            doors_driver="osdp",
            doors_fleet_url="tcp://127.0.0.1:4999",
            doors_osdp_scbk="00" * 16,
            doors_outputs_per_pd=8,
        )
    )
    assert isinstance(osdp, OsdpDoorDriver)
    assert osdp.scbk == bytes(16) and osdp.outputs_per_pd == 8
    await osdp.close()


def test_door_settings_refuse_bad_values() -> None:
    from pydantic import ValidationError

    for bad in (
        {"doors_driver": "modbus"},
        {"doors_osdp_scbk": "not-hex"},
        {"doors_osdp_scbk": "00" * 8},
        {"doors_outputs_per_pd": 0},
        {"doors_outputs_per_pd": 65},
        {"doors_timeout_seconds": 0},
        {"doors_fleet_url": "http://127.0.0.1:4601"},
        {"doors_fleet_url": "tcp://127.0.0.1"},
        {"doors_osdp_endpoints": {"F-1": "tcp://:80"}},
        {"doors_osdp_endpoints": {"F-1": "tcp://h:99999"}},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)


async def test_endpoints_override_the_fleet_url_per_facility_and_controller() -> None:
    driver = OsdpDoorDriver(
        fleet_url="tcp://127.0.0.1:4601",
        endpoints={
            "F-1": "tcp://10.0.0.1:4601",
            "F-1/osdp://controller-2": "tcp://10.0.0.2:5000",
        },
    )
    assert driver.endpoint_for("F-1", "osdp://controller-1") == ("10.0.0.1", 4601)
    assert driver.endpoint_for("F-1", "osdp://controller-2") == ("10.0.0.2", 5000)
    assert driver.endpoint_for("F-2", "osdp://controller-1") == ("127.0.0.1", 4601)
    await driver.close()
