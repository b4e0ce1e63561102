"""`watchfloor simulate` against a real `watchfloor serve` on the test's database: the events
are stored, every device is heard (heartbeats move it online), and the server's scheduled
end-to-end test signal gets through."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from watchfloor.config import Settings
from watchfloor.events.models import Event, TestSignal
from watchfloor.sites.models import Device, Facility, Organisation, Region

pytestmark = pytest.mark.e2e

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
KINDS = (
    ("DOOR-1", "door"),
    ("DOOR-2", "door"),
    ("READER-1", "reader"),
    ("PIR-1", "sensor"),
    ("CAM-1", "camera"),
    ("PANIC-1", "panic_button"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(sessionmaker: Any, clock: Any) -> None:
    now = clock.now()
    org = Organisation(code="SIM", name="Sim Agency", created_at=now, updated_at=now)
    region = Region(code="SIM-R", name="Region", organisation=org, created_at=now, updated_at=now)
    facilities = [
        Facility(code=code, name=code, region=region, created_at=now, updated_at=now)
        for code in ("SIM-HQ", "SIM-FO")
    ]
    devices = [
        Device(
            facility=f,
            code=code,
            name=code,
            kind=kind,
            supervision_seconds=8,  # heartbeats every 4 s: every device beats within the run
            created_at=now,
            updated_at=now,
        )
        for f in facilities
        for code, kind in KINDS
    ]
    async with sessionmaker() as db:
        db.add_all([org, region, *facilities, *devices])
        await db.commit()


def _env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": settings.effective_database_url,
        "WATCHFLOOR_VAR_DIR": str(settings.var_dir),
        "WATCHFLOOR_SECRET_KEY": settings.secret_key,
        "WATCHFLOOR_BUS_STREAM": settings.bus_stream,
        "WATCHFLOOR_BUS_PREFIX": settings.bus_prefix,
    }
    env.pop("WATCHFLOOR_MQTT_URL", None)  # over HTTP
    return env


def _serve(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            [WATCHFLOOR, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_simulator_feeds_a_real_server(
    settings: Settings, sessionmaker: Any, clock: Any, tmp_path: Path
) -> None:
    await _seed(sessionmaker, clock)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = _serve(settings, port, log)
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=base, timeout=2) as client:
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    if (await client.get("/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.1)
        sim = await asyncio.to_thread(
            subprocess.run,
            [WATCHFLOOR, "simulate", "--url", base, "--duration", "5", "--rate", "50"]
            + ["--seed", "4"],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sim.returncode == 0, sim.stdout + sim.stderr
        assert "Simulator finished" in sim.stderr

        async with sessionmaker() as db:
            devices = (await db.scalars(select(Device))).all()
            heartbeats = await db.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.type == "device.heartbeat", Event.source == "http")
            )
            total = await db.scalar(
                select(func.count()).select_from(Event).where(Event.source == "http")
            )
            senders = set(
                (await db.scalars(select(Event.sender).where(Event.source == "http"))).all()
            )
        assert total is not None and total >= 100, total  # ~50/s for 5 s, plus heartbeats
        assert heartbeats is not None and heartbeats >= len(devices)
        assert senders == {"token:demo-simulator"}
        assert {d.status for d in devices} == {"online"}, [(d.code, d.status) for d in devices]
        assert all(d.last_seen_at is not None for d in devices)

        # the server sent each facility its end-to-end test signal at start, and it got through
        deadline = time.monotonic() + 30
        while True:
            async with sessionmaker() as db:
                done = await db.scalar(
                    select(func.count(func.distinct(TestSignal.facility_id))).where(
                        TestSignal.processed_at.is_not(None)
                    )
                )
            if done == 2:
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
