"""E-mail fan-out benchmark (`make bench`, or `python -m bench.bench_notify`).

An alert to N recipients (default 10,000; BENCH_NOTIFY_RECIPIENTS to change) through a local
aiosmtpd peer (its own process, discarding what it accepts), against raw `smtplib` sending the
same messages (same headers, same bodies) to the same peer in the same run over one connection.

Ours is timed end to end: `send_alert` (recipients resolved, 10,000 delivery rows and the CAP
document written, committed) plus the delivery engine claiming, sending over its pooled SMTP
connections and recording every outcome, until every delivery is marked sent. SQLite, default
settings (4 pooled SMTP connections, batches of 200).

Writes bench/results/notify.json and prints one line per figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from watchfloor.clock import SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.migrate import upgrade
from watchfloor.notify.delivery import DeliveryEngine, Outgoing, build_email
from watchfloor.notify.models import Delivery, DeliveryState
from watchfloor.notify.service import Audience, send_alert
from watchfloor.people.models import Person
from watchfloor.sites.models import Facility, Organisation, Region

RESULTS = Path(__file__).parent / "results" / "notify.json"
RECIPIENTS = int(os.environ.get("BENCH_NOTIFY_RECIPIENTS", "10000"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_peer(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the aiosmtpd peer did not start")


async def _prepare(path: Path, port: int) -> tuple[Settings, Any, int]:
    settings = Settings(
        database_url=f"sqlite:///{path}",
        var_dir=path.parent / "var",
        secret_key="bench-secret",  # noqa: S106 - a throwaway database
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=port,
        public_url="https://watchfloor.example",
    )
    engine = make_engine(settings)
    await upgrade(engine)
    maker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with maker() as db:
        org = Organisation(code="BENCH", name="Bench", created_at=now, updated_at=now)
        region = Region(code="R", name="R", organisation=org, created_at=now, updated_at=now)
        fac = Facility(
            code="BENCH-1",
            name="Bench Field Office",
            region=region,
            latitude=32.7,
            longitude=-96.8,
            created_at=now,
            updated_at=now,
        )
        db.add_all([org, region, fac])
        await db.flush()
        fid = fac.id
        await db.execute(
            insert(Person),
            [
                {
                    "facility_id": fid,
                    "employee_id": f"B-{n:06d}",
                    "given_name": "Staff",
                    "family_name": f"N{n:06d}",
                    "job_title": "",
                    "role": "staff",
                    "email": f"staff{n:06d}@bench.example",
                    "phone": f"+1555{n:07d}",
                    "contacts": [],
                    "vetting_status": "cleared",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(RECIPIENTS)
            ],
        )
        await db.commit()
    return settings, (engine, maker), fid


def _raw_smtplib(settings: Settings, outgoing: list[Outgoing]) -> float:
    """The baseline: the same messages through one plain smtplib connection. Messages/s."""
    now = datetime.now(UTC)
    msgs = [build_email(settings, o, o.body, now) for o in outgoing]
    start = time.perf_counter()
    with smtplib.SMTP(settings.notify_smtp_host, settings.notify_smtp_port) as conn:
        for msg in msgs:
            conn.sendmail(msg.sender, [msg.to], msg.data)
    return len(msgs) / (time.perf_counter() - start)


async def _ours(settings: Settings, maker: Any, fid: int) -> tuple[float, float, list[Outgoing]]:
    clock = SystemClock()
    sender = DeliveryEngine(maker, clock, settings, secret_key=settings.secret_key)
    start = time.perf_counter()
    async with maker() as db:
        alert = await send_alert(
            db,
            clock,
            template="lockdown",
            facility_ids=[fid],
            audience=Audience(everyone_at_facilities=True),
            sender="bench",
        )
        alert_id = alert.id
        await db.commit()
    written = time.perf_counter()
    while True:
        await sender.tick()
        async with maker() as db:
            left = await db.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.alert_id == alert_id, Delivery.state == DeliveryState.QUEUED)
            )
        if not left:
            break
    done = time.perf_counter()
    await sender.close()
    async with maker() as db:
        sent = await db.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.alert_id == alert_id, Delivery.state == DeliveryState.SENT)
        )
        if sent != RECIPIENTS:
            raise RuntimeError(f"only {sent} of {RECIPIENTS} deliveries were sent")
        rows = (
            await db.execute(
                select(Delivery).where(Delivery.alert_id == alert_id, Delivery.rank == 0)
            )
        ).scalars()
        # the baseline sends exactly the texts we sent (with the acknowledgement link)
        sender2 = DeliveryEngine(maker, clock, settings, secret_key=settings.secret_key)
        sender2._alert_created = {alert_id: alert.created_at}
        outgoing = []
        for d in rows:
            item = Outgoing(
                d.id, d.alert_id, d.channel, d.address, d.subject, d.body, d.key, "Actual", 1
            )
            outgoing.append(
                Outgoing(
                    d.id,
                    d.alert_id,
                    d.channel,
                    d.address,
                    d.subject,
                    sender2.full_body(item),
                    d.key,
                    "Actual",
                    1,
                )
            )
        await sender2.close()
    return RECIPIENTS / (done - start), RECIPIENTS / (done - written), outgoing


async def _run() -> dict[str, Any]:
    port = _free_port()
    peer = _start_peer(port)
    tmp = Path(tempfile.mkdtemp(prefix="wf-bench-notify-"))
    try:
        settings, (engine, maker), fid = await _prepare(tmp / "bench.db", port)
        ours_total, ours_send, outgoing = await _ours(settings, maker, fid)
        await engine.dispose()
        raw = await asyncio.get_running_loop().run_in_executor(
            None, _raw_smtplib, settings, outgoing
        )
    finally:
        peer.terminate()
        peer.wait(timeout=10)
    return {
        "recipients": RECIPIENTS,
        "ours_messages_per_second": round(ours_total, 1),
        "ours_send_only_messages_per_second": round(ours_send, 1),
        "raw_smtplib_messages_per_second": round(raw, 1),
        "ratio": round(ours_total / raw, 3),
        "target_ratio": 0.5,
        "smtp_connections": settings.notify_smtp_connections,
        "batch": settings.notify_batch,
        "database": "sqlite",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    result = asyncio.run(_run())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    n = result["recipients"]
    print(
        f"notify e-mail fan-out ({n} recipients, end to end): "
        f"{result['ours_messages_per_second']} msg/s"
    )
    print(f"notify fan-out, sending only: {result['ours_send_only_messages_per_second']} msg/s")
    print(f"raw smtplib, same messages: {result['raw_smtplib_messages_per_second']} msg/s")
    print(f"notify ratio (ours / raw smtplib): {result['ratio']} (target >= 0.5)")


if __name__ == "__main__":
    main()
