"""The OSDP driver against the simulated controller fleet, a separate process speaking OSDP over
loopback TCP: confirmations come from the PDs' reported output status."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace

import pytest

from watchfloor.lockdown.drivers.base import DoorCommand, DoorResult, DoorTarget
from watchfloor.lockdown.drivers.measure import FanoutError, fanout
from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver, timeout_error

from .conftest import DOORS_PER_CONTROLLER, SCBK, Fleet, generated_args, start_fleet, stop_fleet

pytestmark = pytest.mark.e2e

SITE = "SIM-0001"
CTRL1 = "osdp://controller-1"
CTRL2 = "osdp://controller-2"


async def run(driver: OsdpDoorDriver, targets: list[DoorTarget], command: DoorCommand) -> dict:
    results: dict[int, DoorResult] = {}
    async for result in driver.command(targets, command):
        assert result.device_id not in results, "a door yielded two results"
        results[result.device_id] = result
    assert set(results) == {t.device_id for t in targets}, "every door yields one result"
    return results


def of(targets: list[DoorTarget], facility: str, controller: str | None = None) -> list:
    return [
        t
        for t in targets
        if t.facility_code == facility
        and (controller is None or t.controller_address == controller)
    ]


async def test_lock_then_unlock_is_confirmed_by_the_controllers(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    sent = sim.control.request(op="stats")["commands"]
    locked = await run(driver, targets, DoorCommand.LOCK)
    assert all(r.ok and r.state == "locked" and r.error == "" for r in locked.values())
    # one osdp_OUT per door reached the controllers: one attempt each
    assert sim.control.request(op="stats")["commands"] - sent == len(targets)
    # the controller's own view: every door's output is on
    assert set(sim.control.state(SITE, CTRL1).values()) == {"locked"}

    unlocked = await run(driver, targets, DoorCommand.UNLOCK)
    assert all(r.ok and r.state == "unlocked" for r in unlocked.values())
    assert set(sim.control.state(SITE, CTRL2).values()) == {"unlocked"}


async def test_a_failing_door_is_reported_with_a_reason_and_others_still_lock(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    sim.control.set("fail", facility=SITE, controller=CTRL1, door=3)
    site = of(targets, SITE)
    results = await run(driver, site, DoorCommand.LOCK)
    bad = next(t for t in site if t.address == f"{CTRL1}/3")
    assert results[bad.device_id].ok is False
    assert results[bad.device_id].state == "unknown"
    assert "lock fault" in results[bad.device_id].error
    assert all(r.ok for i, r in results.items() if i != bad.device_id)
    assert sim.control.state(SITE, CTRL1)["3"] == "fault"

    # repaired: the old fault report does not fail the next attempt
    sim.control.set("confirm", facility=SITE, controller=CTRL1, door=3)
    again = await run(driver, [bad], DoorCommand.LOCK)
    assert again[bad.device_id].ok and again[bad.device_id].state == "locked"
    assert sim.control.state(SITE, CTRL1)["3"] == "locked"


async def test_a_lagging_door_confirms_when_it_gets_there(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    sim.control.set("lag", facility=SITE, controller=CTRL2, door=5, delay=0.3)
    results = await run(driver, of(targets, SITE, CTRL2), DoorCommand.LOCK)
    assert all(r.ok and r.state == "locked" for r in results.values())


async def test_a_door_lagging_beyond_the_timeout_times_out(
    sim: Fleet, targets: list[DoorTarget]
) -> None:
    sim.control.set("lag", facility=SITE, controller=CTRL1, door=2, delay=600)
    sim.control.set("silent", facility=SITE, controller=CTRL1, door=4)
    driver = OsdpDoorDriver(fleet_url=sim.url, timeout=0.5, connect_timeout=5.0)
    try:
        await driver.warm_up(targets)
        results = await run(driver, of(targets, SITE, CTRL1), DoorCommand.LOCK)
    finally:
        await driver.close()
    slow = {t.device_id for t in of(targets, SITE, CTRL1) if t.address.endswith(("/2", "/4"))}
    for device_id, result in results.items():
        if device_id in slow:
            assert result.ok is False and result.error == timeout_error(0.5)
        else:
            assert result.ok, result


async def test_a_controller_that_dropped_off_fails_its_doors_without_waiting_for_the_timeout(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    await driver.warm_up(targets)  # connections open, as in a running system
    sim.control.drop(SITE, CTRL1)
    results = await run(driver, of(targets, SITE), DoorCommand.LOCK)
    for target in of(targets, SITE):
        result = results[target.device_id]
        if target.controller_address == CTRL1:
            assert result.ok is False
            assert result.error != timeout_error(driver.timeout)
            assert "Controller osdp://controller-1 at SIM-0001" in result.error or (
                "closed the connection" in result.error
            )
        else:
            assert result.ok
    # back online: the next command reconnects and confirms
    sim.control.restore(SITE, CTRL1)
    again = await run(driver, of(targets, SITE, CTRL1), DoorCommand.LOCK)
    assert all(r.ok for r in again.values())


async def test_a_controller_dropping_off_mid_command_fails_its_waiting_doors(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    await driver.warm_up(targets)
    sim.control.set("lag", facility=SITE, controller=CTRL1, delay=600)
    site = of(targets, SITE)
    others = {t.device_id for t in site if t.controller_address != CTRL1}
    results: dict[int, DoorResult] = {}
    async for result in driver.command(site, DoorCommand.LOCK):
        results[result.device_id] = result
        if others <= set(results) and len(results) == len(others):
            # every other door confirmed; controller 1's doors are ACKed but not locked yet
            await asyncio.to_thread(sim.control.drop, SITE, CTRL1)
    assert set(results) == {t.device_id for t in site}
    for target in site:
        result = results[target.device_id]
        if target.controller_address == CTRL1:
            assert result.ok is False
            assert result.error == "The controller closed the connection (offline)"
        else:
            assert result.ok


async def test_a_controller_that_stops_answering_fails_its_doors(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    await driver.warm_up(targets)
    sim.control.request(op="hang", facility=SITE, controller=CTRL2)
    results = await run(driver, of(targets, SITE, CTRL2), DoorCommand.LOCK)
    assert all(r.ok is False for r in results.values())
    assert {r.error for r in results.values()} == {"The controller stopped answering (offline)"}


async def test_malformed_and_unknown_addresses_get_a_clear_error_each(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    good = of(targets, SITE, CTRL1)[0]
    odd = [
        replace(good, device_id=9001, address="mqtt://watchfloor/door/1"),
        replace(good, device_id=9002, address="osdp://controller-1/0"),
        replace(good, device_id=9003, address=""),
        replace(good, device_id=9004, address="osdp://controller-2/1"),  # not under its controller
        replace(
            good,
            device_id=9005,
            address="osdp://controller-99/1",
            controller_address="osdp://controller-99",
        ),
        replace(good, device_id=9006, facility_code="NO-SUCH-SITE"),
        replace(good, device_id=9007, address=f"{CTRL1}/{DOORS_PER_CONTROLLER * 10}"),  # no PD
        replace(good, device_id=9008, address="osdp://controller-1/99999"),  # beyond 127 PDs
    ]
    results = await run(driver, [good, *odd, good], DoorCommand.LOCK)  # good listed twice
    assert results[good.device_id].ok
    for target in odd:
        result = results[target.device_id]
        assert result.ok is False and result.state == "unknown"
        assert result.error and result.error != timeout_error(driver.timeout)
    assert "not an OSDP door address" in results[9001].error
    assert "not an OSDP door address" in results[9002].error
    assert "does not belong to its controller" in results[9004].error
    assert "no controller osdp://controller-99 at SIM-0001" in results[9005].error
    assert "no controller osdp://controller-1 at NO-SUCH-SITE" in results[9006].error
    assert "has no PD at address" in results[9007].error
    assert "beyond what one OSDP controller can address" in results[9008].error


async def test_an_unreachable_gateway_fails_every_door_with_the_reason() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    door = DoorTarget(1, SITE, "DOOR-0001", f"{CTRL1}/1", CTRL1)
    driver = OsdpDoorDriver(fleet_url=f"tcp://127.0.0.1:{port}", timeout=20, connect_timeout=5)
    try:
        results = await run(driver, [door], DoorCommand.LOCK)
    finally:
        await driver.close()
    assert results[1].ok is False
    assert "is unreachable" in results[1].error


async def test_no_targets_yield_nothing(driver: OsdpDoorDriver) -> None:
    assert [r async for r in driver.command([], DoorCommand.LOCK)] == []


async def test_fanout_measures_until_every_door_is_confirmed_and_refuses_partial_success(
    driver: OsdpDoorDriver, sim: Fleet, targets: list[DoorTarget]
) -> None:
    seconds = await fanout(driver, targets)
    assert seconds > 0
    sim.control.set("fail", facility=SITE, controller=CTRL2, door=1)
    with pytest.raises(FanoutError) as failure:
        await fanout(driver, targets, DoorCommand.UNLOCK)
    assert len(failure.value.failed) == 1


async def test_secure_channel_with_the_shared_key_and_refusal_with_a_wrong_one(
    targets: list[DoorTarget],
) -> None:
    fleet = start_fleet(*generated_args(), env={"WATCHFLOOR_DOORS_OSDP_SCBK": SCBK})
    try:
        driver = OsdpDoorDriver(
            fleet_url=fleet.url, timeout=20, connect_timeout=2, scbk=bytes.fromhex(SCBK)
        )
        try:
            results = await run(driver, of(targets, SITE), DoorCommand.LOCK)
            assert all(r.ok for r in results.values())
            bus = next(iter(driver._buses.values()))
            assert bus.cp.sc_status() & 1, "secure channel is active"
        finally:
            await driver.close()
        wrong = OsdpDoorDriver(fleet_url=fleet.url, timeout=20, connect_timeout=1, scbk=bytes(16))
        try:
            results = await run(wrong, of(targets, SITE, CTRL1), DoorCommand.LOCK)
        finally:
            await wrong.close()
        assert all(r.ok is False for r in results.values())
        assert {r.error for r in results.values()} <= {
            "The controller did not complete the OSDP handshake",
            "The controller stopped answering (offline)",
        }
    finally:
        stop_fleet(fleet)


def test_the_control_port_refuses_bad_requests_and_changes_nothing(sim: Fleet) -> None:
    before = sim.control.state(SITE, CTRL1)
    for bad in (
        b"not json\n",
        b"[1, 2]\n",
        b'{"op": "explode"}\n',
        b'{"op": "set", "behaviour": "melt", "facility": "SIM-0001"}\n',
        b'{"op": "set", "behaviour": "lag", "delay": -1, "facility": "SIM-0001"}\n',
        b'{"op": "set", "behaviour": "fail", "facility": "SIM-0001", '
        b'"controller": "osdp://controller-1", "door": 999}\n',
        b'{"op": "drop", "facility": "NOPE", "controller": "osdp://controller-1"}\n',
    ):
        with socket.create_connection(("127.0.0.1", sim.control.address[1]), timeout=5) as s:
            s.sendall(bad)
            answer = json.loads(s.makefile().readline())
        assert answer["ok"] is False and answer["error"], bad
    assert sim.control.state(SITE, CTRL1) == before
    assert sim.control.request(op="stats")["doors"] > 0


def test_the_fleet_refuses_a_malformed_hello(sim: Fleet) -> None:
    for hello in (
        b"GET / HTTP/1.1\n",
        b'{"osdp_tunnel": 1, "facility": "SIM-0001", "controller": "controller-1", "pd": 0}\n',
        b'{"osdp_tunnel": 1, "facility": "SIM-0001", "controller": "osdp://controller-1", '
        b'"pd": 300}\n',
    ):
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
            s.sendall(hello)
            answer = json.loads(s.makefile().readline())
        assert answer["ok"] is False and answer["error"]
