"""Ingest benchmarks (`make bench`, or `python -m bench.bench_ingest`).

(a) Durable batch ingest through `EventBatcher` on SQLite (Event rows + outbox rows + device
    last_seen, one transaction per 1,000-event submission, 4 concurrent submitters) against raw
    `sqlite3` executemany of the same rows into the same migrated schema with the same durability
    (WAL, synchronous=NORMAL, one commit per 1,000 events).
(b) Single-event HTTP ingest over a real uvicorn server with its runtime on, as `watchfloor
    serve` runs it (token auth, validation, group commit, and the alarm stage, relay and console
    in the same process), sending the simulator's traffic mix (TRAFFIC_MIX; BENCH_HTTP_TYPE=<type>
    sends one type only), against a bare FastAPI endpoint that parses the same JSON into the same
    pydantic model, both driven by the same concurrent keep-alive clients for the same time.

Both sides run with the garbage-collector settings a Watchfloor server uses (runtime.tune_gc,
Settings.gc_tuning): the batch figures in this process, the bare FastAPI server as well as ours.

Writes bench/results/ingest.json and prints one line per figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from watchfloor.auth import service as auth_service
from watchfloor.clock import SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.events.ingest import EventBatcher, ValidatedEvent, event_message, event_subject
from watchfloor.migrate import upgrade
from watchfloor.runtime import tune_gc
from watchfloor.sites.models import Device, Facility, Organisation, Region

RESULTS = Path(__file__).parent / "results" / "ingest.json"
DEVICES = 100
BATCH = 1000
BATCH_EVENTS = int(os.environ.get("BENCH_INGEST_EVENTS", "100000"))
SUBMITTERS = 4
HTTP_SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", "4"))  # per round and side
HTTP_ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
HTTP_CLIENTS = 8  # httpx's pool slows down past ~10 connections


async def _prepare(path: Path) -> tuple[int, list[int]]:
    """A migrated database with one facility and DEVICES devices."""
    settings = Settings(database_url=f"sqlite:///{path}", var_dir=path.parent / "var")
    engine = make_engine(settings)
    await upgrade(engine)
    maker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with maker() as db:
        org = Organisation(code="BENCH", name="Bench", created_at=now, updated_at=now)
        region = Region(code="R", name="R", organisation=org, created_at=now, updated_at=now)
        fac = Facility(code="BENCH-1", name="Bench", region=region, created_at=now, updated_at=now)
        devices = [
            Device(
                facility=fac,
                code=f"D-{i}",
                name=f"D {i}",
                kind="sensor",
                created_at=now,
                updated_at=now,
            )
            for i in range(DEVICES)
        ]
        db.add_all([org, region, fac, *devices])
        await db.commit()
        ids = [d.id for d in devices]
        fid = fac.id
    await engine.dispose()
    return fid, ids


def _events(facility_id: int, device_ids: list[int], n: int) -> list[ValidatedEvent]:
    base = datetime.now(UTC) - timedelta(seconds=n)
    return [
        ValidatedEvent(
            facility_id=facility_id,
            facility_code="BENCH-1",
            type="motion.detected",
            occurred_at=base + timedelta(microseconds=i),
            device_id=device_ids[i % len(device_ids)],
            device_code=f"D-{i % len(device_ids)}",
            attributes={"count": i % 7},
            idempotency_key=f"k-{i}",
            source="http",
            sender="token:bench",
        )
        for i in range(n)
    ]


async def _ours(path: Path, events: list[ValidatedEvent]) -> float:
    settings = Settings(database_url=f"sqlite:///{path}", var_dir=path.parent / "var")
    engine = make_engine(settings)
    maker = make_sessionmaker(engine)
    batcher = EventBatcher(maker, SystemClock(), max_batch=BATCH, max_wait_ms=0)
    chunks = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    queue: asyncio.Queue[list[ValidatedEvent]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)

    async def submitter() -> None:
        while not queue.empty():
            await batcher.submit(queue.get_nowait())

    await batcher.submit(chunks[0][:1])  # warm up (connection, statement cache)
    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
    elapsed = time.perf_counter() - started
    await batcher.close()
    await engine.dispose()
    return len(events) / elapsed


def _raw(path: Path, events: list[ValidatedEvent]) -> float:
    """The same rows with plain sqlite3: events (ids from the rowid), outbox rows, device
    last_seen; one commit per BATCH, WAL + synchronous=NORMAL as the app's engine uses."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        chunk = events[i : i + BATCH]
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.execute("BEGIN")
        first = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]) + 1
        conn.executemany(
            "INSERT INTO events (facility_id, device_id, zone_id, type, occurred_at, received_at,"
            " idempotency_key, source, sender, attributes) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.facility_id,
                    e.device_id,
                    e.zone_id,
                    e.type,
                    e.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    now,
                    e.idempotency_key,
                    e.source,
                    e.sender,
                    json.dumps(e.attributes),
                )
                for e in chunk
            ],
        )
        conn.executemany(
            "INSERT INTO outbox (msg_id, subject, payload, created_at, published_at, attempts)"
            " VALUES (?,?,?,?,NULL,0)",
            [
                (
                    f"event:{first + j}",
                    event_subject(e.facility_code, e.type),
                    json.dumps(event_message(first + j, e)),
                    now,
                )
                for j, e in enumerate(chunk)
            ],
        )
        conn.executemany(
            "UPDATE devices SET last_seen_at = ? WHERE id = ?",
            [(now, d) for d in sorted({e.device_id for e in chunk})],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(events) / elapsed


# --------------------------------------------------------------------------- HTTP

BARE_APP = """
from fastapi import FastAPI
from watchfloor.config import Settings
from watchfloor.events.schemas import EventIn
from watchfloor.runtime import tune_gc
app = FastAPI()
tune_gc(Settings())  # the garbage-collector settings a Watchfloor server runs with

@app.post("/api/v1/events", status_code=201)
async def post_event(body: EventIn) -> dict:
    return {"event_id": 1, "duplicate": False}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(args: list[str], env: dict[str, str], port: int, cwd: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited on start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


#: the device traffic of `watchfloor simulate` in proportion (heartbeats, motion and people seen,
#: refused cards, a door held open, now and then a forced door): 3 events in 100 raise an alarm,
#: about twice the simulator's share
TRAFFIC_MIX: list[tuple[str, dict[str, Any], int]] = [
    ("device.heartbeat", {"firmware": "sim-1.0"}, 48),
    ("motion.detected", {"count": 1}, 28),
    ("person.detected", {"confidence": 0.9, "count": 1}, 10),
    ("reader.access_denied", {"reason": "expired"}, 7),
    ("door.held_open", {"held_seconds": 45}, 2),
    ("door.forced", {"door": "Front"}, 1),
]


def _mix() -> list[tuple[str, dict[str, Any]]]:
    """The events the HTTP clients send, in turn: BENCH_HTTP_TYPE=<type> sends only that type
    (e.g. door.forced: an alarm for every event)."""
    only = os.environ.get("BENCH_HTTP_TYPE")
    if only:
        attrs = next((a for t, a, _w in TRAFFIC_MIX if t == only), {})
        return [(only, attrs)]
    return [(t, a) for t, a, weight in TRAFFIC_MIX for _ in range(weight)]


async def _load(port: int, headers: dict[str, str], seconds: float) -> tuple[float, int]:
    """Requests per second from HTTP_CLIENTS concurrent keep-alive clients; and errors."""
    done = errors = 0
    run = f"{time.time_ns():x}"
    mix = _mix()
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=HTTP_CLIENTS, max_keepalive_connections=HTTP_CLIENTS)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30, headers=headers
    ) as client:

        async def worker(w: int) -> None:
            nonlocal done, errors
            i = 0
            while time.perf_counter() < stop:
                etype, attributes = mix[(w * 7 + i) % len(mix)]
                body = {
                    "device": f"D-{(w + i) % DEVICES}",
                    "type": etype,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "idempotency_key": f"h-{run}-{w}-{i}",
                    "attributes": attributes,
                }
                r = await client.post("/api/v1/events", json=body)
                if r.status_code == 201:
                    done += 1
                else:
                    errors += 1
                    if errors == 1:
                        print(f"ingest http: first error {r.status_code}: {r.text[:200]}")
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(HTTP_CLIENTS)))
        elapsed = time.perf_counter() - started
    return done / elapsed, errors


async def _token(path: Path) -> str:
    settings = Settings(database_url=f"sqlite:///{path}", var_dir=path.parent / "var")
    engine = make_engine(settings)
    maker = make_sessionmaker(engine)
    async with maker() as db:
        _t, secret = await auth_service.create_token(
            db,
            SystemClock(),
            "system:bench",
            name="bench",
            role="device",
            scope=auth_service.ScopeSpec.facility("BENCH-1"),
        )
        await db.commit()
    await engine.dispose()
    return secret


def _http(tmp: Path, db_path: Path) -> dict[str, Any]:
    """Both servers run side by side; each is loaded in turn, HTTP_ROUNDS times (ours, bare,
    ours, bare, ...), and the medians are compared, so a noisy moment on this shared machine
    touches both sides instead of one."""
    secret = asyncio.run(_token(db_path))
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": f"sqlite:///{db_path}",
        "WATCHFLOOR_VAR_DIR": str(tmp / "var"),
        "WATCHFLOOR_SECRET_KEY": "bench-secret-key",
    }
    env.pop("WATCHFLOOR_MQTT_URL", None)
    env.pop("WATCHFLOOR_BUS_URL", None)
    (tmp / "bare_app.py").write_text(BARE_APP)
    results: dict[str, Any] = {}
    ours_port, bare_port = _free_port(), _free_port()
    try:
        ours = _serve(["--factory", "watchfloor.app:create_app"], env, ours_port, tmp)
        results["http_ours_lifespan"] = 1
    except RuntimeError:
        # the full runtime could not start here: measure the ingest route without it
        print("ingest http: the app's runtime did not start; measuring with --lifespan off")
        ours = _serve(
            ["--factory", "watchfloor.app:create_app", "--lifespan", "off"], env, ours_port, tmp
        )
        results["http_ours_lifespan"] = 0
    bare = _serve(["bare_app:app"], {**env, "PYTHONPATH": str(tmp)}, bare_port, tmp)
    auth = {"Authorization": f"Bearer {secret}"}
    ours_rates: list[float] = []
    bare_rates: list[float] = []
    errors = 0
    try:
        asyncio.run(_load(ours_port, auth, 1.0))  # warm up
        asyncio.run(_load(bare_port, {}, 1.0))
        for _ in range(HTTP_ROUNDS):
            rate, errs = asyncio.run(_load(ours_port, auth, HTTP_SECONDS))
            ours_rates.append(rate)
            errors += errs
            rate, _errs = asyncio.run(_load(bare_port, {}, HTTP_SECONDS))
            bare_rates.append(rate)
    finally:
        for proc in (ours, bare):
            proc.terminate()
            proc.wait(10)
    results["http_ours_events_per_s"] = statistics.median(ours_rates)
    results["http_bare_events_per_s"] = statistics.median(bare_rates)
    results["http_ours_errors"] = errors
    results["http_round_ratios"] = [
        round(o / b, 3) for o, b in zip(ours_rates, bare_rates, strict=True)
    ]
    return results


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wf-bench-ingest-"))
    try:
        template = tmp / "template.db"
        facility_id, device_ids = asyncio.run(_prepare(template))
        events = _events(facility_id, device_ids, BATCH_EVENTS)
        ours_db, raw_db, http_db = tmp / "ours.db", tmp / "raw.db", tmp / "http.db"
        for target in (ours_db, raw_db, http_db):
            shutil.copy(template, target)
        tune_gc(Settings(var_dir=tmp / "var"))  # as a server runs (both sides, this process)
        raw = _raw(raw_db, events)
        ours = asyncio.run(_ours(ours_db, events))
        figures: dict[str, Any] = {
            "batch_events": len(events),
            "batch_ours_events_per_s": round(ours),
            "batch_raw_sqlite3_events_per_s": round(raw),
            "batch_ratio": round(ours / raw, 3),
        }
        print(f"ingest batch: {ours:,.0f} events/s durable via EventBatcher (target >= 50,000)")
        print(f"ingest batch: {raw:,.0f} events/s raw sqlite3 executemany (baseline)")
        print(f"ingest batch: ratio {ours / raw:.3f} (target >= 0.25)")
        http = _http(tmp, http_db)
        ratio = http["http_ours_events_per_s"] / http["http_bare_events_per_s"]
        figures.update(
            {
                "http_clients": HTTP_CLIENTS,
                "http_seconds": HTTP_SECONDS,
                "http_rounds": HTTP_ROUNDS,
                "http_round_ratios": http["http_round_ratios"],
                "http_ours_events_per_s": round(http["http_ours_events_per_s"]),
                "http_ours_errors": http["http_ours_errors"],
                "http_bare_fastapi_events_per_s": round(http["http_bare_events_per_s"]),
                "http_ratio": round(ratio, 3),
                "http_ours_with_runtime": bool(http["http_ours_lifespan"]),
            }
        )
        print(f"ingest http: {http['http_ours_events_per_s']:,.0f} events/s single-event POST")
        print(
            f"ingest http: {http['http_bare_events_per_s']:,.0f} events/s bare FastAPI (baseline)"
        )
        print(
            f"ingest http: ratio {ratio:.3f} of the medians (target >= 0.6); rounds: "
            + ", ".join(f"{r:.3f}" for r in http["http_round_ratios"])
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
