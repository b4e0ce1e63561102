"""`watchfloor simulate doors` serving the doors recorded in the database, commanded through the
OSDP driver with the targets the lockdown service would build from the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from watchfloor.cli import app as cli_app
from watchfloor.config import Settings, get_settings
from watchfloor.lockdown.drivers.base import DoorCommand, DoorResult
from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver
from watchfloor.lockdown.simulator import fleet_from_database
from watchfloor.sites.models import Device, Facility, Organisation, Region

from .conftest import start_fleet, stop_fleet

pytestmark = pytest.mark.e2e


async def _seed(sessionmaker: Any, clock: Any) -> None:
    now = clock.now()
    org = Organisation(code="DRS", name="Doors Agency", created_at=now, updated_at=now)
    region = Region(code="DRS-R", name="Region", organisation=org, created_at=now, updated_at=now)
    hq = Facility(code="DRS-HQ", name="HQ", region=region, created_at=now, updated_at=now)
    fo = Facility(code="DRS-FO", name="FO", region=region, created_at=now, updated_at=now)

    def dev(
        facility: Facility, code: str, kind: str, address: str, protocol: str = "osdp"
    ) -> Device:
        return Device(
            facility=facility,
            code=code,
            name=code,
            kind=kind,
            protocol=protocol,
            address=address,
            created_at=now,
            updated_at=now,
        )

    devices = [
        dev(hq, "CTRL-1", "controller", "osdp://controller-1"),
        dev(hq, "CTRL-2", "controller", "osdp://controller-2"),
        dev(hq, "DOOR-001", "door", "osdp://controller-1/1"),
        dev(hq, "DOOR-002", "door", "osdp://controller-1/2"),
        dev(hq, "DOOR-017", "door", "osdp://controller-2/17"),  # second PD of controller 2
        dev(hq, "RDR-001", "reader", "osdp://controller-1/1"),  # a reader, not a door
        dev(hq, "DOOR-HTTP", "door", "", protocol="http"),  # not an OSDP door
        dev(fo, "CTRL-1", "controller", "osdp://controller-1"),
        dev(fo, "DOOR-001", "door", "osdp://controller-1/1"),
    ]
    async with sessionmaker() as db:
        db.add_all([org, region, hq, fo, *devices])
        await db.commit()


async def test_the_fleet_serves_the_databases_doors(
    sessionmaker: Any, clock: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _seed(sessionmaker, clock)
    url = settings.effective_database_url
    fleet = start_fleet("--database-url", url, "--facility", "DRS-HQ")
    try:
        monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", url)
        get_settings.cache_clear()
        try:
            every = await fleet_from_database()
            hq = await fleet_from_database(["DRS-HQ"])
        finally:
            get_settings.cache_clear()
        assert {(t.facility_code, t.door_code) for t in every} == {
            ("DRS-HQ", "DOOR-001"),
            ("DRS-HQ", "DOOR-002"),
            ("DRS-HQ", "DOOR-017"),
            ("DRS-FO", "DOOR-001"),
        }
        assert {t.controller_address for t in hq} == {"osdp://controller-1", "osdp://controller-2"}

        driver = OsdpDoorDriver(fleet_url=fleet.url, timeout=20, connect_timeout=5)
        try:
            results: dict[int, DoorResult] = {}
            async for result in driver.command(every, DoorCommand.LOCK):
                results[result.device_id] = result
        finally:
            await driver.close()
        for target in every:
            result = results[target.device_id]
            if target.facility_code == "DRS-HQ":
                assert result.ok and result.state == "locked", result
            else:  # the fleet was started for DRS-HQ only
                assert not result.ok and "no controller" in result.error
        assert fleet.control.state("DRS-HQ", "osdp://controller-2") == {"17": "locked"}
    finally:
        stop_fleet(fleet)


def test_simulate_doors_without_doors_in_the_database_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the command points WATCHFLOOR_DATABASE_URL at --database-url; keep that inside this test
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", settings.effective_database_url)
    try:
        result = CliRunner().invoke(
            cli_app, ["simulate", "doors", "--database-url", settings.effective_database_url]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "No OSDP doors" in result.output


def test_simulate_keeps_its_device_stream_options() -> None:
    runner = CliRunner()
    stream = runner.invoke(cli_app, ["simulate", "--help"])
    assert stream.exit_code == 0
    for option in ("--rate", "--duration", "--mqtt", "--token", "--seed", "--facility"):
        assert option in stream.output
    assert "doors" in stream.output
    doors = runner.invoke(cli_app, ["simulate", "doors", "--help"])
    assert doors.exit_code == 0
    assert "--sites" in doors.output and "--control-port" in doors.output
