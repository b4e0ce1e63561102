"""The transactional outbox, its relay to the bus, and consumer-side deduplication.

Producers call `add(db, subject, data)` in the same transaction as the change the message is
about; when that transaction commits, the relay is woken (a session hook calls `kick()` on the
relay serving that database) and publishes the row. A rolled-back transaction publishes nothing.
Rows left unpublished by a crash are published when any relay next runs (it also polls).

Consumers call `first_delivery(db, consumer, msg_id)` first thing in their transaction: False
means this consumer already handled the message (a redelivery) and the handler should return.

Relay modes:
- bus that confirms once handled (`MemoryBus`, one process): publishes run concurrently and a row
  is marked published when its handlers are done, so a crash mid-handling republishes it;
- broker bus (`NatsBus`): in one transaction the relay locks a batch (`FOR UPDATE SKIP LOCKED` on
  PostgreSQL, so several processes never publish a row twice), publishes each row and waits for
  JetStream's acknowledgement, marks the rows published and commits. JetStream's msg-id dedupe
  covers a crash between the publish and the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
import weakref
from collections.abc import Generator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from watchfloor.bus import Bus
from watchfloor.bus.models import OutboxMessage, ProcessedMessage
from watchfloor.clock import Clock, SystemClock

log = logging.getLogger(__name__)

_DIRTY = "watchfloor.outbox_dirty"
# relays by the engine they read (a commit on that engine wakes them)
_relays: weakref.WeakKeyDictionary[Engine, set[OutboxRelay]] = weakref.WeakKeyDictionary()


def _now(clock: Clock | None) -> datetime:
    return clock.now() if clock is not None else datetime.now(UTC)


class MsgId(str):
    """A message id. Awaiting it gives itself, so `outbox.add` may be called with or without
    `await` (it does no I/O: the row is flushed with the caller's transaction)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, MsgId]:
        return self
        yield  # pragma: no cover - makes this a generator


def new_msg_id() -> str:
    return uuid.uuid4().hex


def add(
    db: AsyncSession,
    subject: str,
    data: dict[str, Any],
    msg_id: str | None = None,
    *,
    clock: Clock | None = None,
) -> MsgId:
    """Queue a message in the caller's transaction; returns its msg_id. Nothing is sent unless
    the transaction commits. `data` must be JSON-serialisable (ISO strings for times)."""
    msg_id = MsgId(msg_id or new_msg_id())
    db.add(
        OutboxMessage(
            msg_id=msg_id,
            subject=subject,
            payload=data,
            created_at=_now(clock),
            published_at=None,
            attempts=0,
        )
    )
    db.sync_session.info[_DIRTY] = True
    return msg_id


async def add_many(
    db: AsyncSession,
    messages: Iterable[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str | None]],
    *,
    clock: Clock | None = None,
) -> list[str]:
    """Bulk form of `add` for hot paths (group commit): (subject, data[, msg_id]) tuples, one
    INSERT statement. Returns the msg_ids in order."""
    now = _now(clock)
    rows: list[dict[str, Any]] = []
    for item in messages:
        subject, data = item[0], item[1]
        msg_id = (item[2] if len(item) > 2 else None) or new_msg_id()
        rows.append(
            {
                "msg_id": msg_id,
                "subject": subject,
                "payload": data,
                "created_at": now,
                "published_at": None,
                "attempts": 0,
            }
        )
    if rows:
        await db.execute(insert(OutboxMessage), rows)
        db.sync_session.info[_DIRTY] = True
    return [r["msg_id"] for r in rows]


def _insert_for(db: AsyncSession) -> Any:
    name = db.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect: {name}")


async def first_delivery(
    db: AsyncSession, consumer: str, msg_id: str, *, clock: Clock | None = None
) -> bool:
    """Record that `consumer` handles `msg_id`, in the caller's transaction. False: it already
    did (the message is a redelivery) — skip it. If the transaction rolls back, so does this."""
    insert = _insert_for(db)
    stmt = (
        insert(ProcessedMessage)
        .values(consumer=consumer, msg_id=msg_id, processed_at=_now(clock))
        .on_conflict_do_nothing(index_elements=["consumer", "msg_id"])
    )
    result = await db.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)


# --- waking the relay after commits ---


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_DIRTY, False):
        return
    try:
        bind = session.get_bind()
    except Exception:  # an unbound session: nothing to wake
        return
    engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
    if engine is None:
        return
    for relay in list(_relays.get(engine, ())):
        relay.kick()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_DIRTY, None)


MARK_BATCH = 200  # mark published once this many rows are done ...
MARK_EVERY_SECONDS = 0.25  # ... or this long after the last marking


class OutboxRelay:
    """Publishes committed outbox rows in id order and marks them published."""

    BEAT_NAME = "relay"  # the name incidents.health watches

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        clock: Clock | None = None,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        retention: timedelta = timedelta(hours=24),
        purge_every: timedelta = timedelta(hours=1),
        max_in_flight: int = 5000,
        process: str = "",
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.clock: Clock = clock or SystemClock()
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.retention = retention
        self.purge_every = purge_every
        self.max_in_flight = max_in_flight
        self.process = process
        self.concurrent = bool(getattr(bus, "publish_waits_for_handlers", False))
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._done: list[int] = []
        self._failed: list[int] = []
        self._last_purge: datetime | None = None
        self._last_mark = float("-inf")
        self._last_beat: float | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self.published_total = 0
        engine = getattr(sessionmaker.kw.get("bind"), "sync_engine", None)
        if engine is not None:
            _relays.setdefault(engine, set()).add(self)

    # --- waking ---

    def kick(self) -> None:
        """Wake the relay now (called after commits that added outbox rows)."""
        self._wake.set()

    def detach(self) -> None:
        """Stop being woken by commits (the runtime calls this on stop)."""
        engine = getattr(self.sessionmaker.kw.get("bind"), "sync_engine", None)
        if engine is not None and engine in _relays:
            _relays[engine].discard(self)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # --- one pass ---

    async def relay_once(self) -> int:
        """Publish one batch of unpublished rows; returns how many rows it handed to the bus or
        marked published (0 = nothing to do)."""
        async with self._lock:
            if self.concurrent:
                return await self._relay_concurrent()
            return await self._relay_locked()

    async def _relay_locked(self) -> int:
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(
                    select(
                        OutboxMessage.id,
                        OutboxMessage.msg_id,
                        OutboxMessage.subject,
                        OutboxMessage.payload,
                    )
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                await db.rollback()
                return 0
            published: list[int] = []
            failed: int | None = None
            for row in rows:
                try:
                    await self.bus.publish(row.subject, row.payload, row.msg_id)
                except Exception:
                    log.exception("publishing outbox message %s failed; will retry", row.msg_id)
                    failed = row.id
                    break
                published.append(row.id)
            if published:
                await db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(published))
                    .values(published_at=self.clock.now())
                )
            if failed is not None:
                await db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == failed)
                    .values(attempts=OutboxMessage.attempts + 1)
                )
            await db.commit()
            self.published_total += len(published)
            return len(published)

    async def _relay_concurrent(self) -> int:
        # Hand new rows to the bus first: a panic's alarm must not wait behind bookkeeping
        # writes. Marking rows published is batched (a crash before it only re-publishes rows
        # whose consumers are idempotent).
        started = await self._start_new()
        count = 0
        now = time.monotonic()
        if (
            len(self._done) + len(self._failed) >= MARK_BATCH
            or now - self._last_mark >= MARK_EVERY_SECONDS
        ):
            self._last_mark = now
            count = await self._mark_done()
        return count + started

    async def _start_new(self) -> int:
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return 0
        limit = min(self.batch_size, room)
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(
                    select(
                        OutboxMessage.id,
                        OutboxMessage.msg_id,
                        OutboxMessage.subject,
                        OutboxMessage.payload,
                    )
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(limit + len(self._in_flight))
                )
            ).all()
            await db.rollback()
        started = 0
        for row in rows:
            if row.id in self._in_flight or started >= limit:
                continue
            task = asyncio.ensure_future(self.bus.publish(row.subject, row.payload, row.msg_id))
            self._in_flight[row.id] = task
            task.add_done_callback(functools.partial(self._finished, row.id))
            started += 1
        return started

    def _finished(self, row_id: int, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            self._in_flight.pop(row_id, None)
            return
        if task.exception() is not None:
            log.error("publishing outbox row %s failed: %r", row_id, task.exception())
            self._failed.append(row_id)
        else:
            self._done.append(row_id)
        self.kick()

    async def _mark_done(self) -> int:
        done, self._done = self._done, []
        failed, self._failed = self._failed, []
        if not done and not failed:
            return 0
        try:
            async with self.sessionmaker() as db:
                if done:
                    await db.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id.in_(done))
                        .values(published_at=self.clock.now())
                    )
                if failed:
                    await db.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id.in_(failed))
                        .values(attempts=OutboxMessage.attempts + 1)
                    )
                await db.commit()
        except BaseException:
            self._done.extend(done)
            self._failed.extend(failed)
            raise
        for row_id in (*done, *failed):
            self._in_flight.pop(row_id, None)
        self.published_total += len(done)
        return len(done)

    # --- housekeeping ---

    async def pending(self) -> int:
        """Unpublished rows in the outbox (including those being published now)."""
        async with self.sessionmaker() as db:
            value = await db.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
            )
            return int(value or 0)

    async def purge(self, now: datetime | None = None) -> tuple[int, int]:
        """Delete published rows and consumer dedupe records older than the retention."""
        cutoff = (now or self.clock.now()) - self.retention
        async with self.sessionmaker() as db:
            outbox = await db.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.published_at.is_not(None), OutboxMessage.published_at < cutoff
                )
            )
            processed = await db.execute(
                delete(ProcessedMessage).where(ProcessedMessage.processed_at < cutoff)
            )
            await db.commit()
        return int(getattr(outbox, "rowcount", 0)), int(getattr(processed, "rowcount", 0))

    async def drain(self, seconds: float = 10.0) -> None:
        """Publish until nothing is unpublished or in flight (tests, graceful stop)."""

        async def _loop() -> None:
            while True:
                moved = await self.relay_once()
                async with self._lock:
                    moved += await self._mark_done()  # no batching while draining
                if not self._in_flight and moved == 0 and await self.pending() == 0:
                    return
                if self._in_flight and moved == 0:
                    await asyncio.wait(list(self._in_flight.values()), timeout=0.5)

        await asyncio.wait_for(_loop(), seconds)

    async def _beat(self) -> None:
        # at most one write a second of real time; the beat itself is in the injected clock's time
        tick = time.monotonic()
        if self._last_beat is not None and tick - self._last_beat < 1.0:
            return
        now = self.clock.now()
        from watchfloor.incidents.escalation import record_beat

        async with self.sessionmaker() as db:
            await record_beat(db, self.BEAT_NAME, now, self.process)
            await db.commit()
        self._last_beat = tick

    async def run(self) -> None:
        """Loop until `stop()` (or cancelled): relay when woken or every poll interval, purge
        hourly, record the beat."""
        self._stopping = False
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                while await self.relay_once() >= self.batch_size:
                    pass
                await self._beat()
                now = self.clock.now()
                if self._last_purge is None or now - self._last_purge >= self.purge_every:
                    self._last_purge = now
                    await self.purge(now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                await asyncio.sleep(min(self.poll_seconds, 1.0))

    def stop(self) -> None:
        """Ask `run()` to return after its current pass."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        """Stop being woken; cancel publishes still in flight (their rows stay unpublished)."""
        self.detach()
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self._mark_done()
        self._in_flight.clear()
