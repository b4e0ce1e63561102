"""Shared fixtures. The suite runs on SQLite by default and on PostgreSQL when
WATCHFLOOR_DATABASE_URL points at one (CI runs it both ways).

Each test gets its own migrated database: on SQLite a copy of a file migrated once per run, on
PostgreSQL a database cloned from a template migrated once per run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.app import create_app
from watchfloor.auth import service as auth_service
from watchfloor.clock import FakeClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.migrate import upgrade

BASE_URL = os.environ.get("WATCHFLOOR_DATABASE_URL", "")
ON_POSTGRES = BASE_URL.startswith(("postgres", "postgresql"))
TEMPLATE_DB = f"wf_template_{os.getpid()}"


def _pg_admin_url() -> str:
    url = Settings(database_url=BASE_URL).effective_database_url
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_url())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_url_for(dbname: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(Settings(database_url=BASE_URL).effective_database_url)
    return url.set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head once per run; each test clones it."""
    if ON_POSTGRES:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"'))
        asyncio.run(_pg_exec(f'CREATE DATABASE "{TEMPLATE_DB}"'))
        url = _pg_url_for(TEMPLATE_DB)
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        url = f"sqlite+aiosqlite:///{path}"

    async def _migrate() -> None:
        engine = make_engine(Settings(database_url=url, var_dir=tmp_path_factory.mktemp("var")))
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    yield url
    if ON_POSTGRES:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"'))


@pytest.fixture
def database_url(template_db: str, tmp_path: Path) -> Iterator[str]:
    if ON_POSTGRES:
        name = f"wf_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"'))
        yield _pg_url_for(name)
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        src = Path(template_db.split(":///", 1)[1])
        dst = tmp_path / "watchfloor.db"
        shutil.copy(src, dst)
        yield f"sqlite+aiosqlite:///{dst}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        database_url=database_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-not-for-production",
        # on NATS (WATCHFLOOR_BUS_URL set) each test gets its own stream and subjects
        bus_stream=f"WFTEST_{run}",
        bus_prefix=f"t{run}.",
        # scheduled test signals add events to every facility: tests that want them turn them on
        test_signal_minutes=0,
        # one process builds many apps: frozen garbage of earlier tests would never be freed
        gc_tuning=False,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(settings: Settings, clock: FakeClock):  # type: ignore[no-untyped-def]
    application = create_app(settings, clock=clock)
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def running_app(app):  # type: ignore[no-untyped-def]
    """The app with its lifespan entered: the runtime (bus, relay, batcher, handlers, loops) runs.
    `await app.state.runtime.drain()` waits until every message has been handled (no sleeping).
    On NATS the test's own stream is deleted afterwards."""
    async with app.router.lifespan_context(app):
        yield app
    if app.state.settings.bus_url.startswith("nats"):
        from watchfloor.bus.nats import NatsBus

        settings = app.state.settings
        bus = NatsBus(settings.bus_url, stream=settings.bus_stream, prefix=settings.bus_prefix)
        await bus.start()
        await bus.delete_stream()
        await bus.close()


@pytest.fixture
async def live_client(running_app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """An HTTP client on the running app (the alarm pipeline is live)."""
    transport = httpx.ASGITransport(app=running_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def sessionmaker(app) -> async_sessionmaker[AsyncSession]:  # type: ignore[no-untyped-def]
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return maker


@pytest.fixture
async def db(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture
def make_token(sessionmaker, clock):  # type: ignore[no-untyped-def]
    """make_token(role, org=True | region="CODE" | facility="CODE") -> auth headers."""

    async def _make(
        role: str,
        *,
        org: bool = False,
        region: str | None = None,
        facility: str | None = None,
        name: str | None = None,
    ) -> dict[str, str]:
        if facility:
            spec = auth_service.ScopeSpec.facility(facility)
        elif region:
            spec = auth_service.ScopeSpec.region(region)
        else:
            assert org, "say which scope: org=True, region= or facility="
            spec = auth_service.ScopeSpec.org()
        async with sessionmaker() as session:
            _token, secret = await auth_service.create_token(
                session, clock, "system:test", name=name or f"test-{role}", role=role, scope=spec
            )
            await session.commit()
        return {"Authorization": f"Bearer {secret}"}

    return _make


__all__ = ["make_engine", "make_sessionmaker"]
