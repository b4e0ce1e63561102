"""Engine, sessions and the declarative base. SQLite in WAL mode; PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util.concurrency import await_only, in_greenlet

from watchfloor.clock import as_utc
from watchfloor.config import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store UTC-aware datetimes only")
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


# --- SQLite: one writer at a time, queued in the process instead of in SQLite's busy handler ---
#
# SQLite lets one transaction write at a time. A writer that finds the lock taken is put to
# sleep by SQLite's busy handler in growing steps (1, 2, 5, 10 ... 100 ms) and retries; under
# load a panic's alarm transaction could lose that race again and again behind ingest batches
# and relay bookkeeping. So within this process the write transactions of an engine queue at a
# `WriteGate` instead, taken just before the statement that starts the write (the first INSERT,
# UPDATE, DELETE, ... of a transaction: the moment SQLite itself would take its lock) and
# released when that transaction commits or rolls back. Waiting is a fair queue with a fast
# lane: code running under `urgent_writes()` (life-safety alarms) goes before every ordinary
# waiter. Other processes (the CLI, a second server) still meet SQLite's busy handler.

WRITE_WAIT_SECONDS = 10.0  # as long as SQLite's busy_timeout below
_urgent: ContextVar[bool] = ContextVar("watchfloor_urgent_writes", default=False)
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


@contextlib.contextmanager
def urgent_writes() -> Iterator[None]:
    """Write transactions started inside this block (in this task) jump the SQLite write queue
    (life-safety alarms). No effect on PostgreSQL, which has row locks."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


class WriteGate:
    """A lock with two queues (urgent first, each first-come first-served) for one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.owner: int | None = None  # id() of the DBAPI connection holding it
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()
        self.waits = 0  # acquisitions that had to queue (tests, diagnostics)

    @property
    def held(self) -> bool:
        return self.owner is not None

    async def acquire(self, owner: int, urgent: bool, wait_seconds: float) -> None:
        if self.owner is None and not self._urgent and not self._normal:
            self.owner = owner
            return
        self.waits += 1
        fut: asyncio.Future[None] = self.loop.create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(fut)
        try:
            async with asyncio.timeout(wait_seconds):
                await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._hand_on()  # it was handed to us as we gave up: pass it on
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
            raise
        self.owner = owner

    def release(self, owner: int) -> None:
        if self.owner != owner:
            return
        self._hand_on()

    def _hand_on(self) -> None:
        self.owner = None
        for queue in (self._urgent, self._normal):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    self.owner = -1  # reserved for the woken waiter (it sets its own id)
                    fut.set_result(None)
                    return


class _SqliteWriters:
    """The write gates of one SQLite engine (one per event loop: tests run several loops)."""

    def __init__(self) -> None:
        self._gates: dict[int, tuple[asyncio.AbstractEventLoop, WriteGate]] = {}
        self._held: dict[int, WriteGate] = {}  # DBAPI connection id -> the gate it holds
        self._mutex = threading.Lock()

    def gate(self, loop: asyncio.AbstractEventLoop) -> WriteGate:
        with self._mutex:
            found = self._gates.get(id(loop))
            if found is None or found[0] is not loop:
                # forget gates of closed loops (a closed loop's id may be reused)
                for key, (other, _g) in list(self._gates.items()):
                    if other.is_closed():
                        del self._gates[key]
                found = (loop, WriteGate(loop))
                self._gates[id(loop)] = found
            return found[1]

    def before_execute(self, conn: Any, statement: str) -> None:
        if not statement.lstrip()[:7].upper().startswith(_WRITES) or not in_greenlet():
            return
        dbapi = conn.connection.dbapi_connection
        key = id(dbapi)
        if key in self._held:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        gate = self.gate(loop)
        try:
            await_only(gate.acquire(key, _urgent.get(), WRITE_WAIT_SECONDS))
        except TimeoutError:
            raise sqlite3.OperationalError(
                f"database is locked (waited {WRITE_WAIT_SECONDS:.0f} s for this process's "
                "other writers)"
            ) from None
        self._held[key] = gate

    def ended(self, dbapi: Any) -> None:
        """The transaction of this DBAPI connection committed, rolled back or was closed."""
        # the engine passes its pool's proxy, the pool itself the DBAPI connection
        dbapi = getattr(dbapi, "dbapi_connection", None) or dbapi
        gate = self._held.pop(id(dbapi), None)
        if gate is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is gate.loop:
            gate.release(id(dbapi))
        elif not gate.loop.is_closed():
            gate.loop.call_soon_threadsafe(gate.release, id(dbapi))


_writers: weakref.WeakKeyDictionary[Engine, _SqliteWriters] = weakref.WeakKeyDictionary()


def _serialise_sqlite_writes(engine: AsyncEngine) -> None:
    sync: Engine = engine.sync_engine
    writers = _SqliteWriters()
    dialect: Any = sync.dialect

    def _before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        writers.before_execute(conn, statement)

    event.listen(sync, "before_cursor_execute", _before)

    def _wrap(name: str) -> None:
        original = getattr(dialect, name)

        def wrapped(dbapi_connection: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(dbapi_connection, *args, **kwargs)
            finally:
                writers.ended(dbapi_connection)

        setattr(dialect, name, wrapped)

    for name in ("do_commit", "do_rollback", "do_close", "do_terminate"):
        _wrap(name)
    _writers[sync] = writers


@contextlib.asynccontextmanager
async def sqlite_write_turn(engine: AsyncEngine, owner: int) -> AsyncIterator[None]:
    """Hold this process's SQLite write gate (the fast lane under `urgent_writes()`) around a
    write transaction run on the DBAPI connection itself, outside SQLAlchemy's statements (the
    ingest fast path); `owner` names the connection. No-op on PostgreSQL."""
    gate = write_gate(engine)
    if gate is None:
        yield
        return
    try:
        await gate.acquire(owner, _urgent.get(), WRITE_WAIT_SECONDS)
    except TimeoutError:
        raise sqlite3.OperationalError(
            f"database is locked (waited {WRITE_WAIT_SECONDS:.0f} s for this process's "
            "other writers)"
        ) from None
    try:
        yield
    finally:
        gate.release(owner)


def write_gate(engine: AsyncEngine) -> WriteGate | None:
    """This loop's SQLite write gate of the engine (None on PostgreSQL); for tests/diagnostics."""
    writers = _writers.get(engine.sync_engine)
    if writers is None:
        return None
    return writers.gate(asyncio.get_running_loop())


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    kwargs: dict[str, Any] = {"echo": settings.db_echo}
    if url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _serialise_sqlite_writes(engine)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session


def import_all_models() -> None:
    """Import every domain's models so Base.metadata is complete (migrations, tests)."""
    import watchfloor.alarms.models
    import watchfloor.assessments.models
    import watchfloor.audit.models
    import watchfloor.auth.models
    import watchfloor.bus.models
    import watchfloor.drills.models
    import watchfloor.events.models
    import watchfloor.incidents.models
    import watchfloor.lockdown.models
    import watchfloor.notify.models
    import watchfloor.panic.models
    import watchfloor.people.models
    import watchfloor.rollcall.models
    import watchfloor.rollout.models
    import watchfloor.sites.models
    import watchfloor.training.models  # noqa: F401
