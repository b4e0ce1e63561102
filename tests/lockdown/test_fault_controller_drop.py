"""Fault: a door controller drops off during a lockdown. The simulated fleet runs as its own
process (`watchfloor simulate doors`) speaking OSDP over loopback; Watchfloor's runtime commands
it through the OSDP driver. The dropped controller's doors are retried, flagged as failed, and
each raises a P1 alarm through the real alarm pipeline; the rest lock. Once the controller is
back, retrying the failed doors locks them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from watchfloor.alarms.models import Alarm
from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver
from watchfloor.lockdown.models import LockdownDoor
from watchfloor.lockdown.simulator import FleetProcess

pytestmark = pytest.mark.e2e


async def _until(check: Any, what: str, seconds: float = 30.0) -> None:
    """Wait for a real process to reach a state (no test logic depends on the pace)."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_controller_dropping_off_mid_lockdown(
    running_app, site, settings, clock, make_token, live_client
) -> None:
    runtime = running_app.state.runtime
    waits: list[float] = []

    async def backoff(seconds: float) -> None:  # the retries' waits move the fake clock
        waits.append(seconds)
        clock.advance(seconds=seconds)

    runtime.lockdown.sleep = backoff
    fleet = FleetProcess(
        ["--database-url", settings.effective_database_url, "--facility", "HQ"],
        env={"WATCHFLOOR_DOORS_OSDP_SCBK": ""},
    )
    driver = OsdpDoorDriver(fleet_url=fleet.url, timeout=2.0, connect_timeout=1.0)
    runtime.lockdown.driver = driver
    try:
        # controller 2 takes its time: its doors are still in flight when it drops off
        fleet.control.set("lag", facility="HQ", controller="osdp://controller-2", delay=3.0)
        op = await make_token("operator", facility="HQ")
        resp = await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=op)
        assert resp.status_code == 201, resp.text
        lockdown_id = resp.json()["items"][0]["id"]

        async def doors() -> dict[str, LockdownDoor]:
            async with runtime.sessionmaker() as db:
                rows = (
                    await db.scalars(
                        select(LockdownDoor).where(LockdownDoor.lockdown_id == lockdown_id)
                    )
                ).all()
            return {d.door_code: d for d in rows}

        async def first_controller_locked() -> bool:
            rows = await doors()
            return all(rows[c].state == "locked" for c in ("DOOR-1", "DOOR-2", "DOOR-3"))

        await _until(first_controller_locked, "controller 1's doors to lock")
        in_flight = await doors()
        assert all(in_flight[c].state == "commanded" for c in ("DOOR-4", "DOOR-5", "DOOR-6"))
        fleet.control.drop("HQ", "osdp://controller-2")

        await runtime.lockdown.wait(lockdown_id)
        await runtime.drain()
        rows = await doors()
        assert {c for c, d in rows.items() if d.state == "locked"} == {"DOOR-1", "DOOR-2", "DOOR-3"}
        for code in ("DOOR-4", "DOOR-5", "DOOR-6"):
            assert rows[code].state == "failed", rows[code].last_error
            assert rows[code].attempts == settings.lockdown_max_attempts  # retried
            assert rows[code].last_error and rows[code].alarm_raised
        assert waits == [0.5, 1.0, 2.0]
        async with runtime.sessionmaker() as db:
            alarms = (await db.scalars(select(Alarm).where(Alarm.type == "lock_failed"))).all()
        assert sorted(a.device_id for a in alarms) == sorted(
            site.doors[f"HQ/DOOR-{i}"].id for i in (4, 5, 6)
        )
        assert {a.priority for a in alarms} == {1}
        detail = (await live_client.get(f"/api/v1/lockdowns/{lockdown_id}", headers=op)).json()
        assert detail["state"] == "partial" and detail["counts"]["failed"] == 3
        assert [d["code"] for d in detail["doors"][:3]] == ["DOOR-4", "DOOR-5", "DOOR-6"]

        # the controller comes back: retrying the failed doors locks them
        fleet.control.restore("HQ", "osdp://controller-2")
        fleet.control.set("confirm", facility="HQ", controller="osdp://controller-2")
        retry = await live_client.post(f"/api/v1/lockdowns/{lockdown_id}/retry", headers=op)
        assert retry.status_code == 200, retry.text
        await runtime.lockdown.wait(lockdown_id)
        detail = (await live_client.get(f"/api/v1/lockdowns/{lockdown_id}", headers=op)).json()
        assert detail["state"] == "locked" and detail["counts"]["locked"] == 6
        state = fleet.control.state("HQ", "osdp://controller-2")
        assert set(state.values()) == {"locked"}
    finally:
        await driver.close()
        fleet.stop()
