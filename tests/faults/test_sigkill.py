"""Kill the server with SIGKILL during sustained ingest, restart it, and check that nothing
acknowledged was lost: every event that got a 2xx is stored exactly once, and every panic press
has its P1 alarm, its incident and that incident's escalation timers.

Runs `watchfloor serve` as a real subprocess on the test's database (SQLite or PostgreSQL) and the
configured bus (memory, or NATS when WATCHFLOOR_BUS_URL is set).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from watchfloor.alarms.models import Alarm
from watchfloor.bus.models import OutboxMessage
from watchfloor.config import Settings
from watchfloor.events.models import Event
from watchfloor.incidents.models import EscalationTimer, Incident
from watchfloor.sites.models import Device, Facility, Organisation, Region

pytestmark = pytest.mark.e2e

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
INGEST_SECONDS = 2.5  # sustained ingest before the kill
CLIENTS = 6
PANIC_EVERY = 7  # every 7th event is a panic press


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": settings.effective_database_url,
        "WATCHFLOOR_VAR_DIR": str(settings.var_dir),
        "WATCHFLOOR_SECRET_KEY": settings.secret_key,
        "WATCHFLOOR_BUS_STREAM": settings.bus_stream,
        "WATCHFLOOR_BUS_PREFIX": settings.bus_prefix,
    }
    env.pop("WATCHFLOOR_MQTT_URL", None)  # this test is about HTTP ingest
    with log.open("ab") as out:
        return subprocess.Popen(
            [WATCHFLOOR, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"server did not become healthy:\n{_tail(log)}")


async def _seed(sessionmaker: Any, clock: Any) -> None:
    now = clock.now()
    org = Organisation(code="KILL", name="Kill Test", created_at=now, updated_at=now)
    region = Region(code="K-R", name="Region", organisation=org, created_at=now, updated_at=now)
    facility = Facility(code="K-HQ", name="HQ", region=region, created_at=now, updated_at=now)
    devices = [
        Device(
            facility=facility,
            code=code,
            name=code,
            kind=kind,
            created_at=now,
            updated_at=now,
        )
        for code, kind in (("PANIC-1", "panic_button"), ("DOOR-1", "door"), ("PIR-1", "sensor"))
    ]
    async with sessionmaker() as db:
        db.add_all([org, region, facility, *devices])
        await db.commit()


def _event(n: int) -> dict[str, Any]:
    if n % PANIC_EVERY == 0:
        device, kind = "PANIC-1", "panic.pressed"
    elif n % 2:
        device, kind = "DOOR-1", "device.heartbeat"
    else:
        device, kind = "PIR-1", "motion.detected"
    return {
        "device": device,
        "type": kind,
        "occurred_at": datetime.now(UTC).isoformat(),
        "idempotency_key": f"kill-{n}",
    }


async def test_sigkill_during_ingest_loses_nothing_acknowledged(
    settings: Settings, sessionmaker: Any, clock: Any, make_token: Any, tmp_path: Path
) -> None:
    await _seed(sessionmaker, clock)
    headers = await make_token("device", facility="K-HQ", name="kill-feed")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    acked: dict[str, int] = {}  # idempotency key -> event id the server acknowledged
    sent: dict[str, dict[str, Any]] = {}
    counter = iter(range(1, 10**9))

    proc = _start(settings, port, log)
    try:
        await _wait_healthy(base, proc, log)
        killed = asyncio.Event()

        async def client_loop() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=5, headers=headers) as client:
                while not killed.is_set():
                    n = next(counter)
                    body = _event(n)
                    sent[body["idempotency_key"]] = body
                    try:
                        r = await client.post("/api/v1/events", json=body)
                    except httpx.TransportError:
                        continue  # the server is gone: not acknowledged
                    if 200 <= r.status_code < 300:
                        acked[body["idempotency_key"]] = r.json()["event_id"]
                    else:
                        assert r.status_code >= 500 or r.status_code == 503, r.text

        async def killer() -> None:
            await asyncio.sleep(INGEST_SECONDS)
            proc.send_signal(signal.SIGKILL)  # mid-stream: clients are still posting
            proc.wait(10)
            await asyncio.sleep(0.3)
            killed.set()

        await asyncio.gather(killer(), *(client_loop() for _ in range(CLIENTS)))
        assert proc.returncode == -signal.SIGKILL
        assert len(acked) >= 20, f"too little ingest before the kill: {len(acked)} events"

        # restart; the senders retry what was not acknowledged, and repeat some that were
        proc = _start(settings, port, log)
        await _wait_healthy(base, proc, log)
        unacked = [k for k in sent if k not in acked]
        repeats = list(acked)[:10]
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            for key in [*unacked, *repeats]:
                r = await client.post("/api/v1/events", json=sent[key])
                assert r.status_code in (200, 201), r.text
                if key in acked:
                    assert r.json()["event_id"] == acked[key], "a repeat returns the original"
                acked[key] = r.json()["event_id"]

        # wait (bounded) for the pipeline to catch up: outbox drained, every panic alarmed
        panic_keys = {k for k in acked if sent[k]["type"] == "panic.pressed"}
        deadline = time.monotonic() + 60
        while True:
            async with sessionmaker() as db:
                unpublished = await db.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                )
                alarmed = await db.scalar(
                    select(func.count(func.distinct(Alarm.event_id)))
                    .join(Event, Event.id == Alarm.event_id)
                    .where(Event.type == "panic.pressed")
                )
            if unpublished == 0 and alarmed == len(panic_keys):
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"pipeline did not catch up: {unpublished} unpublished, "
                    f"{alarmed}/{len(panic_keys)} panics alarmed\n{_tail(log)}"
                )
            await asyncio.sleep(0.2)

        async with sessionmaker() as db:
            rows = (
                await db.execute(
                    select(Event.idempotency_key, Event.id, func.count()).group_by(
                        Event.idempotency_key, Event.id
                    )
                )
            ).all()
            stored: dict[str, list[int]] = {}
            for key, event_id, _ in rows:
                stored.setdefault(key, []).append(event_id)
            for key, event_id in acked.items():
                assert stored.get(key) == [event_id], (
                    f"{key}: acknowledged once, stored {stored.get(key)}"
                )

            panic_alarms = (
                (
                    await db.execute(
                        select(Alarm)
                        .join(Event, Event.id == Alarm.event_id)
                        .where(Event.type == "panic.pressed")
                    )
                )
                .scalars()
                .all()
            )
            by_event: dict[int, list[Alarm]] = {}
            for alarm in panic_alarms:
                by_event.setdefault(alarm.event_id or 0, []).append(alarm)
            for key in panic_keys:
                alarms = by_event.get(acked[key], [])
                assert len(alarms) == 1, f"panic {key} has {len(alarms)} alarms"
                alarm = alarms[0]
                assert alarm.priority == 1
                assert alarm.incident_id is not None
                incident = await db.get(Incident, alarm.incident_id)
                assert incident is not None
                timers = await db.scalar(
                    select(func.count())
                    .select_from(EscalationTimer)
                    .where(EscalationTimer.incident_id == incident.id)
                )
                assert timers, f"incident {incident.id} of panic {key} has no escalation timers"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
