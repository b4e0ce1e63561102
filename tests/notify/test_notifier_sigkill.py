"""Kill the notifier with SIGKILL in the middle of a fan-out, restart it, and check at a real SMTP
peer (aiosmtpd) that every recipient got exactly one message per channel attempt: one distinct
Message-ID per recipient, none lost, and any message seen twice is the very same message (same
Message-ID) re-sent because the killed process had claimed it but not recorded the outcome.

Runs `watchfloor serve` as a real subprocess on the test's database (SQLite or PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select

from watchfloor.config import Settings
from watchfloor.notify.models import Delivery, DeliveryState
from watchfloor.people.models import Person
from watchfloor.sites.models import Facility, Organisation, Region

from notify_site import SmtpPeer, _Handler, free_port  # isort: skip

pytestmark = pytest.mark.e2e

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
RECIPIENTS = 300
KILL_AFTER = 60  # messages at the peer before the kill


class SlowHandler(_Handler):
    """Accepts like the real peer, a little slowly, so the fan-out is still going at the kill."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.004)
        return await super().handle_DATA(server, session, envelope)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _start(settings: Settings, port: int, smtp_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": settings.effective_database_url,
        "WATCHFLOOR_VAR_DIR": str(settings.var_dir),
        "WATCHFLOOR_SECRET_KEY": settings.secret_key,
        "WATCHFLOOR_BUS_STREAM": settings.bus_stream,
        "WATCHFLOOR_BUS_PREFIX": settings.bus_prefix,
        "WATCHFLOOR_TEST_SIGNAL_MINUTES": "0",
        "WATCHFLOOR_NOTIFY_SMTP_HOST": "127.0.0.1",
        "WATCHFLOOR_NOTIFY_SMTP_PORT": str(smtp_port),
        "WATCHFLOOR_NOTIFY_BATCH": "25",
        "WATCHFLOOR_NOTIFY_RATE_LIMITS": '{"email": 0, "default": 0}',
        "WATCHFLOOR_NOTIFY_SMS_URL": "",
    }
    env.pop("WATCHFLOOR_MQTT_URL", None)
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
                if (await client.get("/api/health")).status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"server did not become healthy:\n{_tail(log)}")


async def _seed(sessionmaker: Any, clock: Any) -> list[str]:
    now = clock.now()
    org = Organisation(code="KILL", name="Kill Test", created_at=now, updated_at=now)
    region = Region(code="K-R", name="Region", organisation=org, created_at=now, updated_at=now)
    facility = Facility(code="K-HQ", name="HQ", region=region, created_at=now, updated_at=now)
    async with sessionmaker() as db:
        db.add_all([org, region, facility])
        await db.flush()
        emails = [f"staff{n:04d}@khq.example" for n in range(RECIPIENTS)]
        await db.execute(
            insert(Person),
            [
                {
                    "facility_id": facility.id,
                    "employee_id": f"K-{n:05d}",
                    "given_name": "Staff",
                    "family_name": f"N{n:04d}",
                    "job_title": "",
                    "role": "staff",
                    "email": email,
                    "phone": "",
                    "contacts": [],
                    "vetting_status": "cleared",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n, email in enumerate(emails)
            ],
        )
        await db.commit()
    return emails


async def _wait(predicate: Any, what: str, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}:\n{_tail(log)}")


async def test_sigkill_mid_fan_out_neither_loses_nor_doubles_a_message(
    settings: Settings, sessionmaker: Any, clock: Any, make_token: Any, tmp_path: Path
) -> None:
    emails = await _seed(sessionmaker, clock)
    headers = await make_token("operator", facility="K-HQ", name="kill-notify")
    peer = SmtpPeer()
    peer.controller = Controller(SlowHandler(peer), hostname="127.0.0.1", port=peer.port)
    peer.controller.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    proc = _start(settings, port, peer.port, log)
    try:
        await _wait_healthy(base, proc, log)
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            resp = await client.post(
                "/api/v1/alerts",
                json={
                    "template": "test",
                    "status": "Test",
                    "facilities": ["K-HQ"],
                    "audience": {"everyone": True},
                },
            )
        assert resp.status_code == 201, resp.text
        alert_id = resp.json()["alert_id"]

        async def enough() -> bool:
            return len(peer.received) >= KILL_AFTER

        await _wait(enough, f"{KILL_AFTER} messages at the SMTP peer", log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        at_kill = len(peer.received)
        async with sessionmaker() as db:
            states = dict(
                (
                    await db.execute(
                        select(Delivery.state, func.count())
                        .where(Delivery.alert_id == alert_id)
                        .group_by(Delivery.state)
                    )
                ).all()
            )
        in_flight = states.get(DeliveryState.SENDING, 0)
        assert at_kill < RECIPIENTS, "the fan-out finished before the kill: nothing was proved"
        assert states.get(DeliveryState.QUEUED, 0) > 0, states

        proc = _start(settings, port, peer.port, log)
        await _wait_healthy(base, proc, log)

        async def all_sent() -> bool:
            async with sessionmaker() as db:
                n = await db.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.alert_id == alert_id, Delivery.state == DeliveryState.SENT)
                )
            return n == RECIPIENTS

        await _wait(all_sent, "every delivery marked sent after the restart", log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        peer.stop()

    by_recipient: dict[str, set[str]] = {}
    for r in peer.received:
        by_recipient.setdefault(r.rcpt[0], set()).add(r.message_id)
    # nobody missed: every recipient has a message
    assert sorted(by_recipient) == sorted(emails)
    # nobody got two different messages: exactly one Message-ID per recipient and channel
    assert all(len(ids) == 1 for ids in by_recipient.values()), {
        k: v for k, v in by_recipient.items() if len(v) != 1
    }
    # a message seen twice was one the killed process had in flight (claimed, outcome not
    # recorded), re-sent with the same Message-ID; nothing else was repeated
    repeats = len(peer.received) - len(by_recipient)
    print(f"killed after {at_kill} messages; {in_flight} in flight; {repeats} re-sent")
    assert repeats <= in_flight, (repeats, in_flight)
    async with sessionmaker() as db:
        rows = (
            await db.execute(
                select(Delivery.key, Delivery.attempts, Delivery.provider_message_id).where(
                    Delivery.alert_id == alert_id
                )
            )
        ).all()
    assert {r.provider_message_id for r in rows} == {
        m for ids in by_recipient.values() for m in ids
    }
