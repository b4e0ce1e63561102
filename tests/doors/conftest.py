"""A simulated door controller fleet, run as its own process (`watchfloor simulate doors`), and
OSDP drivers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from watchfloor.lockdown.drivers.base import DoorTarget
from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver
from watchfloor.lockdown.simulator import FleetProcess, generated_fleet

SITES = 3
DOORS_PER_SITE = 40
DOORS_PER_CONTROLLER = 20  # two controllers per site, two PDs (16 outputs each) per controller
SCBK = "000102030405060708090a0b0c0d0e0f"

Fleet = FleetProcess


def start_fleet(*args: str, env: dict[str, str] | None = None) -> FleetProcess:
    return FleetProcess(list(args), env={"WATCHFLOOR_DOORS_OSDP_SCBK": "", **(env or {})})


def stop_fleet(fleet: FleetProcess) -> None:
    fleet.stop()


def generated_args() -> list[str]:
    return [
        "--sites",
        str(SITES),
        "--doors-per-site",
        str(DOORS_PER_SITE),
        "--doors-per-controller",
        str(DOORS_PER_CONTROLLER),
    ]


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetProcess]:
    with start_fleet(*generated_args()) as started:
        yield started


@pytest.fixture
def sim(fleet: FleetProcess) -> Iterator[FleetProcess]:
    """The module's fleet, every door unlocked and every fault cleared before and after."""
    fleet.control.reset()
    yield fleet
    fleet.control.reset()


@pytest.fixture
def targets() -> list[DoorTarget]:
    return generated_fleet(SITES, DOORS_PER_SITE, DOORS_PER_CONTROLLER)


@pytest.fixture
async def driver(sim: FleetProcess) -> AsyncIterator[OsdpDoorDriver]:
    drv = OsdpDoorDriver(fleet_url=sim.url, timeout=20.0, connect_timeout=5.0)
    yield drv
    await drv.close()
