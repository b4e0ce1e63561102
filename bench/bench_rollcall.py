"""Roll call: 5,000 answers over HTTP while the tally streams to a console (SSE).

A real `watchfloor serve` (uvicorn subprocess, SQLite, in-memory bus) with a facility of 5,000
people and an open roll call; its asks go by e-mail to a local aiosmtpd peer (its own process,
discarding what it accepts), and the answers start once every ask is out (people answer the
message they received; the fan-out time is reported too). A console is connected to the
roll-call board's stream (`/roll-calls/{id}/stream`). Every person answers once through their
own one-tap link (`POST /r/{token}`, the path a phone takes; one in 50 answers "I need help",
which also raises a P1 alarm), started at a steady pace without waiting for each other.
Latency = from just before the POST to the moment the console receives the tally update
carrying that person's answer (matched by entry id). At the end the last tally seen on the
stream must count every answer.

Baseline, measured in the same run: the same answers (same form posts, same pace) through a bare
FastAPI + sse-starlette app that echoes each posted answer to its stream: the bare HTTP round trip
plus SSE with no work in between. Printed both as a ratio and as the difference (the time
Watchfloor itself adds: the answer's transaction, audit record, outbox, relay, bus, broadcaster).

    .venv/bin/python -m bench.bench_rollcall [--answers 5000] [--rate 50]

Writes bench/results/rollcall.json and prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.bench_alarm_latency import _figures, _free_port, _start, _stop, _wait_up

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rollcall.json"
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 - a throwaway bench key
WAIT_S = 30.0  # an update later than this counts as missed
HELP_EVERY = 50

BARE_APP = """
import asyncio, json
from fastapi import FastAPI, Request
from sse_starlette.sse import EventSourceResponse

app = FastAPI()
clients: set[asyncio.Queue] = set()


@app.post("/r/{token}")
async def answer(token: str, request: Request) -> dict:
    form = await request.form()
    item = {"entry": {"id": int(token), "answer": form.get("answer")}}
    for q in list(clients):
        q.put_nowait(item)
    return {"ok": True}


@app.get("/stream")
async def stream() -> EventSourceResponse:
    q: asyncio.Queue = asyncio.Queue()
    clients.add(q)

    async def gen():
        try:
            yield {"event": "hello", "data": "{}"}
            while True:
                item = await q.get()
                yield {"event": "rollcall", "data": json.dumps(item)}
        finally:
            clients.discard(q)

    return EventSourceResponse(gen(), ping=3600)


@app.get("/api/health")
async def health() -> dict:
    return {"status": "ok"}
"""


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


def _asks_pending(db_path: Path) -> int:
    """Deliveries not yet handed to the SMTP peer (read-only look at the server's database)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(
            "SELECT count(*) FROM notify_deliveries WHERE state IN ('queued', 'sending')"
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


async def _wait_asks_out(db_path: Path, limit_s: float = 300) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        if await asyncio.to_thread(_asks_pending, db_path) == 0:
            break
        await asyncio.sleep(0.25)
    return round(time.perf_counter() - start, 2)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _seed(env: dict[str, str], people: int) -> str:
    """One facility with `people` active staff; an org-wide operator token (returned)."""
    os.environ.update(env)
    from sqlalchemy import insert

    from watchfloor.auth import service as auth_service
    from watchfloor.clock import SystemClock
    from watchfloor.config import Settings
    from watchfloor.db import make_engine, make_sessionmaker
    from watchfloor.migrate import upgrade
    from watchfloor.people.models import Person
    from watchfloor.sites import service as sites_service
    from watchfloor.sites.schemas import FacilityCreate, OrganisationUpdate, RegionCreate

    clock = SystemClock()
    engine = make_engine(Settings())
    await upgrade(engine)
    try:
        async with make_sessionmaker(engine)() as db:
            actor = "system:bench"
            await sites_service.update_organisation(
                db, clock, actor, OrganisationUpdate(code="BENCH", name="Bench agency")
            )
            region = await sites_service.create_region(
                db, clock, actor, RegionCreate(code="R1", name="Region one")
            )
            facility = await sites_service.create_facility(
                db,
                clock,
                actor,
                FacilityCreate.model_validate(
                    {"code": "HQ", "name": "Headquarters", "region": "R1", "timezone": "UTC"}
                ),
                region,
            )
            now = clock.now()
            await db.execute(
                insert(Person),
                [
                    {
                        "facility_id": facility.id,
                        "employee_id": f"E{i:05d}",
                        "given_name": f"Person{i}",
                        "family_name": "Bench",
                        "job_title": "",
                        "role": "staff",
                        "email": f"p{i}@bench.example",
                        "phone": f"+1555{i:07d}",
                        "contacts": [],
                        "vetting_status": "cleared",
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(people)
                ],
            )
            _t, operator = await auth_service.create_token(
                db,
                clock,
                actor,
                name="bench-console",
                role="operator",
                scope=auth_service.ScopeSpec.org(),
            )
            await db.commit()
            return operator
    finally:
        await engine.dispose()


class Stream:
    """An SSE reader that timestamps each roll-call update by the entry it carries."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self.ready = asyncio.Event()
        self.last_tally: dict[str, int] | None = None
        self.last_version = 0

    async def run(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with client.stream("GET", url, headers=headers, timeout=None) as resp:
            resp.raise_for_status()
            event, data = "", ""
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "":
                    at = time.perf_counter()
                    if event == "hello":
                        self.ready.set()
                    elif event == "rollcall" and data:
                        msg = json.loads(data)
                        version = msg.get("version", 0)
                        if msg.get("tally") and version >= self.last_version:
                            self.last_version, self.last_tally = version, msg["tally"]
                        entry = msg.get("entry") or {}
                        key = entry.get("id")
                        if key is not None:
                            self.seen.setdefault(key, at)
                            fut = self.waiters.pop(key, None)
                            if fut is not None and not fut.done():
                                fut.set_result(at)
                    event, data = "", ""

    async def wait_for(self, key: int, limit_s: float) -> float:
        if key in self.seen:
            return self.seen[key]
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[key] = fut
        return await asyncio.wait_for(fut, limit_s)


async def _paced(one: Any, items: list[Any], rate: float) -> list[float | None]:
    """Start one answer every 1/rate s (not waiting for the previous update)."""
    tasks = []
    start = time.perf_counter()
    for i, item in enumerate(items):
        tasks.append(asyncio.create_task(one(item)))
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return list(await asyncio.gather(*tasks))


async def _measure_ours(
    base: str, operator: str, answers: int, rate: float, db_path: Path, every: int
) -> dict[str, Any]:
    from watchfloor.rollcall.service import make_token

    auth = {"Authorization": f"Bearer {operator}"}
    limits = httpx.Limits(max_connections=100)
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c,
        httpx.AsyncClient(base_url=base, timeout=60) as sse_client,
    ):
        resp = await c.post(
            "/api/v1/roll-calls",
            json={"facility_code": "HQ", "reason": "benchmark", "exercise": True},
            headers=auth,
        )
        resp.raise_for_status()
        detail = resp.json()
        started = datetime.fromisoformat(detail["started_at"])
        entries = detail["entries"][:answers]
        fanout_s = await _wait_asks_out(db_path)
        stream = Stream()
        reader = asyncio.create_task(
            stream.run(sse_client, f"/roll-calls/{detail['id']}/stream", auth)
        )
        await asyncio.wait_for(stream.ready.wait(), 20)
        items = []
        for i, e in enumerate(entries):
            token = make_token(SECRET, detail["id"], e["id"], None, started)
            items.append((e["id"], token, "need_help" if i % every == 0 else "safe"))

        by_kind: dict[str, list[float]] = {"safe": [], "need_help": []}

        async def one(item: tuple[int, str, str]) -> float | None:
            entry_id, token, answer = item
            t0 = time.perf_counter()
            try:
                r = await c.post(f"/r/{token}", data={"answer": answer})
            except httpx.HTTPError:
                return None  # counted as missed
            if r.status_code != 200:
                return None
            try:
                t1 = await stream.wait_for(entry_id, WAIT_S)
            except TimeoutError:
                return None
            by_kind[answer].append((t1 - t0) * 1000)
            return (t1 - t0) * 1000

        t_start = time.perf_counter()
        results = await _paced(one, items, rate)
        elapsed = time.perf_counter() - t_start
        samples = [r for r in results if r is not None]
        # the board's final tally counts every answer
        final = stream.last_tally or {}
        reader.cancel()
        got = (await c.get(f"/api/v1/roll-calls/{detail['id']}", headers=auth)).json()["tally"]
    return {
        **_figures(samples),
        "missed": len(results) - len(samples),
        "answers_per_second": round(len(results) / elapsed, 1),
        "final_tally_on_stream": final,
        "final_tally_in_database": got,
        "people": len(detail["entries"]),
        "asks_out_seconds": fanout_s,
        "safe_answers": _figures(by_kind["safe"]),
        "need_help_answers": _figures(by_kind["need_help"]),
        "asked": detail["asked"],
    }


async def _measure_bare(base: str, answers: int, rate: float, every: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=100)
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c,
        httpx.AsyncClient(base_url=base, timeout=60) as sse_client,
    ):
        stream = Stream()
        reader = asyncio.create_task(stream.run(sse_client, "/stream", {}))
        await asyncio.wait_for(stream.ready.wait(), 20)
        items = [(i, str(i), "need_help" if i % every == 0 else "safe") for i in range(answers)]

        async def one(item: tuple[int, str, str]) -> float | None:
            key, token, answer = item
            t0 = time.perf_counter()
            try:
                r = await c.post(f"/r/{token}", data={"answer": answer})
            except httpx.HTTPError:
                return None  # counted as missed
            if r.status_code != 200:
                return None
            try:
                t1 = await stream.wait_for(key, WAIT_S)
            except TimeoutError:
                return None
            return (t1 - t0) * 1000

        results = await _paced(one, items, rate)
        samples = [r for r in results if r is not None]
        reader.cancel()
    return {**_figures(samples), "missed": len(results) - len(samples)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--answers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50.0, help="answers started per second")
    parser.add_argument(
        "--help-every",
        type=int,
        default=HELP_EVERY,
        help="one in N answers is 'need help' (0: none)",
    )
    args = parser.parse_args(argv if argv is not None else [])
    every = args.help_every or 10**9
    with tempfile.TemporaryDirectory(prefix="wf-bench-rollcall-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "WATCHFLOOR_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
            "WATCHFLOOR_VAR_DIR": str(work / "var"),
            "WATCHFLOOR_SECRET_KEY": SECRET,
            "WATCHFLOOR_TEST_SIGNAL_MINUTES": "0",
        }
        smtp_port = _free_port()
        env["WATCHFLOOR_NOTIFY_SMTP_HOST"] = "127.0.0.1"
        env["WATCHFLOOR_NOTIFY_SMTP_PORT"] = str(smtp_port)
        env.pop("WATCHFLOOR_BUS_URL", None)
        env.pop("WATCHFLOOR_MQTT_URL", None)
        operator = asyncio.run(_seed(env, args.answers))
        exe = str(Path(sys.executable).parent / "watchfloor")
        port = _free_port()
        peer = _start_peer(smtp_port)
        ours = _start(
            [exe, "serve", "--host", "127.0.0.1", "--port", str(port)], env, work / "ours.log", work
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base, ours, work / "ours.log")
            try:
                result_ours = asyncio.run(
                    _measure_ours(base, operator, args.answers, args.rate, work / "bench.db", every)
                )
            except Exception:
                lines = (work / "ours.log").read_text().splitlines()
                errors = [ln for ln in lines if "ERROR" in ln or "WARNING" in ln][:20]
                print(f"server exit code: {ours.poll()}; first errors:\n" + "\n".join(errors))
                raise
        finally:
            _stop(ours)
            _stop(peer)
        (work / "bare_app.py").write_text(BARE_APP)
        port = _free_port()
        bare = _start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--app-dir",
                str(work),
            ],
            env,
            work / "bare.log",
            work,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base, bare, work / "bare.log")
            result_bare = asyncio.run(_measure_bare(base, args.answers, args.rate, every))
        finally:
            _stop(bare)

    def ratio(key: str) -> float | None:
        a, b = result_ours[key], result_bare[key]
        return None if a is None or b is None else round(a / max(b, 1e-6), 2)

    def diff(key: str) -> float | None:
        a, b = result_ours[key], result_bare[key]
        return None if a is None or b is None else round(a - b, 2)

    answered = sum(
        (result_ours["final_tally_on_stream"] or {}).get(k, 0) for k in ("safe", "need_help")
    )
    out = {
        "benchmark": "rollcall",
        "description": "roll-call answer POST (one-tap link) -> tally update on the board's SSE "
        "stream, 5,000 people, paced answers; baseline: bare FastAPI + SSE echo",
        "measured_at": _now_iso(),
        "answers": args.answers,
        "rate_per_second": args.rate,
        "need_help_every": args.help_every,
        "watchfloor": result_ours,
        "baseline_bare_fastapi_sse": result_bare,
        "ratio_p50": ratio("p50_ms"),
        "ratio_p99": ratio("p99_ms"),
        "added_p50_ms": diff("p50_ms"),
        "added_p99_ms": diff("p99_ms"),
        "stream_tally_counts_every_answer": answered == args.answers - result_ours["missed"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"rollcall answer->tally p50: {result_ours['p50_ms']} ms (baseline "
        f"{result_bare['p50_ms']} ms, ratio {out['ratio_p50']}, +{out['added_p50_ms']} ms)"
    )
    print(
        f"rollcall answer->tally p99: {result_ours['p99_ms']} ms (baseline "
        f"{result_bare['p99_ms']} ms, ratio {out['ratio_p99']}, +{out['added_p99_ms']} ms)"
    )
    print(
        f"rollcall answers: {args.answers} at {args.rate}/s, achieved "
        f"{result_ours['answers_per_second']}/s, missed {result_ours['missed']}, "
        f"baseline missed {result_bare['missed']}"
    )
    for kind in ("safe", "need_help"):
        f = result_ours[f"{kind}_answers"]
        print(
            f"rollcall {kind} answers only: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms (n={f['n']})"
        )
    print(
        f"rollcall asks out (e-mail to the local SMTP peer) in {result_ours['asks_out_seconds']} s "
        f"before the answers started"
    )
    print(
        f"rollcall final tally on the stream: {result_ours['final_tally_on_stream']} "
        f"(database: {result_ours['final_tally_in_database']})"
    )
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
