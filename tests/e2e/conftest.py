"""A real Watchfloor server in a subprocess, on the test's own database, for browser tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from watchfloor.clock import SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from web.seed import seed_all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(url: str, var_dir: Path) -> None:
    engine = make_engine(Settings(database_url=url, var_dir=var_dir))
    try:
        async with make_sessionmaker(engine)() as session:
            await seed_all(session, SystemClock())
    finally:
        await engine.dispose()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Seed the test database, start `watchfloor serve` on a free port, yield its base URL."""
    var_dir = tmp_path / "server-var"
    asyncio.run(_seed(database_url, var_dir))
    port = _free_port()
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": database_url,
        # on NATS, a stream and subjects of this server's own (no backlog from another test)
        "WATCHFLOOR_BUS_STREAM": f"WFE2E_{uuid.uuid4().hex[:10]}",
        "WATCHFLOOR_BUS_PREFIX": f"e{uuid.uuid4().hex[:10]}.",
        "WATCHFLOOR_VAR_DIR": str(var_dir),
        "WATCHFLOOR_SECRET_KEY": "e2e-secret-key-not-for-production",
    }
    exe = Path(sys.executable).parent / "watchfloor"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    "the server exited:\n" + (tmp_path / "server.log").read_text()[-3000:]
                )
            try:
                if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.2)  # waiting for a real process to listen; no test logic depends on it
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
