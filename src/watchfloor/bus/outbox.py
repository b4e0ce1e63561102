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

from sqlalchemy import delete, event, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from watchfloor.bus import Bus
from watchfloor.bus.models import OutboxMessage, ProcessedMessage
from watchfloor.clock import Clock, SystemClock

log = logging.getLogger(__name__)

_DIRTY = "watchfloor.outbox_dirty"
_NEW = "watchfloor.outbox_new"  # OutboxMessage objects added in this session's transaction
_BULK = "watchfloor.outbox_bulk"  # (id, msg_id, subject, payload) inserted without the ORM
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
    row = OutboxMessage(
        msg_id=msg_id,
        subject=subject,
        payload=data,
        created_at=_now(clock),
        published_at=None,
        attempts=0,
    )
    db.add(row)
    info = db.sync_session.info
    info[_DIRTY] = True
    info.setdefault(_NEW, []).append(row)
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


async def handled_before(db: AsyncSession, consumer: str, msg_id: str) -> bool:
    """Whether `consumer` already recorded `msg_id` (a read: it takes no write lock). A handler
    that does its reads before writing checks this first, and still calls `first_delivery`
    in its transaction (which then settles a race with another process)."""
    found = await db.scalar(
        select(ProcessedMessage.msg_id).where(
            ProcessedMessage.consumer == consumer, ProcessedMessage.msg_id == msg_id
        )
    )
    return found is not None


# --- waking the relay after commits ---


def _committed_rows(rows: list[OutboxMessage]) -> list[tuple[int, str, str, Any]]:
    """(id, msg_id, subject, payload) of the rows this commit made durable, read without I/O:
    a row rolled back with a savepoint (no longer persistent) or expired is left to the scan."""
    found = []
    for row in rows:
        state = inspect(row)
        values = state.dict
        if not state.persistent or not all(
            k in values for k in ("id", "msg_id", "subject", "payload")
        ):
            continue
        found.append((values["id"], values["msg_id"], values["subject"], values["payload"]))
    return found


def note_bulk_rows(db: AsyncSession, rows: list[tuple[int, str, str, Any]]) -> None:
    """Outbox rows the caller inserted in this transaction without the ORM (the event batcher's
    bulk insert on SQLite) as (id, msg_id, subject, payload): handed to the relay in memory when
    the transaction commits, like rows added with `add`."""
    info = db.sync_session.info
    info[_DIRTY] = True
    info.setdefault(_BULK, []).extend(rows)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    rows: list[OutboxMessage] = session.info.pop(_NEW, [])
    bulk: list[tuple[int, str, str, Any]] = session.info.pop(_BULK, [])
    if not session.info.pop(_DIRTY, False):
        return
    try:
        bind = session.get_bind()
    except Exception:  # an unbound session: nothing to wake
        return
    engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
    if engine is None:
        return
    relays = list(_relays.get(engine, ()))
    committed = (_committed_rows(rows) if rows and relays else []) + bulk
    _hand_over(relays, committed, everything=len(committed) == len(rows) + len(bulk))


def _hand_over(
    relays: list[OutboxRelay], committed: list[tuple[int, str, str, Any]], *, everything: bool
) -> None:
    for relay in relays:
        # every row handed over in memory: nothing for a scan to find (and a scan per commit
        # is a database read per commit); anything else wakes the relay to scan
        if not (committed and relay.offer(committed) and everything):
            relay.kick()


def committed_bulk_rows(engine: Engine, rows: list[tuple[int, str, str, Any]]) -> None:
    """Outbox rows committed outside a Session (the event batcher's one-trip SQLite write) as
    (id, msg_id, subject, payload): handed to the engine's relays in memory, as on a commit."""
    if rows:
        _hand_over(list(_relays.get(engine, ())), rows, everything=True)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_DIRTY, None)
    session.info.pop(_NEW, None)
    session.info.pop(_BULK, None)


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
        self._mark_lock = asyncio.Lock()
        self._high_water = 0  # highest row id a scan has handed to the bus
        # SQLite has one writer at a time, so rows commit in id order and a woken relay may read
        # only above the high-water mark; PostgreSQL transactions commit in any order, so there
        # every pass is a full scan
        bind = sessionmaker.kw.get("bind")
        self._commits_in_id_order = getattr(getattr(bind, "dialect", None), "name", "") == "sqlite"
        self._last_full_scan = float("-inf")
        self._bookkeeping: asyncio.Task[None] | None = None
        self._running = False  # run() is looping: only then are commits handed over in memory
        self._stopping = False
        self.published_total = 0
        engine = getattr(sessionmaker.kw.get("bind"), "sync_engine", None)
        if engine is not None:
            _relays.setdefault(engine, set()).add(self)

    # --- waking ---

    def kick(self) -> None:
        """Wake the relay now (called after commits that added outbox rows)."""
        self._wake.set()

    def offer(self, rows: Iterable[tuple[int, str, str, Any]]) -> bool:
        """Rows a commit on this relay's database just made durable, handed over in memory
        (id, msg_id, subject, payload): publish them now instead of after a re-read. The scan
        stays the path for everything else (other processes, a crash). False: not taken (this
        relay is not running on the in-process bus); the caller kicks it to scan instead."""
        if not self.concurrent or not self._running or self._stopping:
            return False
        try:
            for row_id, msg_id, subject, payload in rows:
                if row_id not in self._in_flight:
                    self._publish(row_id, msg_id, subject, payload)
        except RuntimeError:  # no running loop: the scan will find them
            return False
        return True

    def _publish(self, row_id: int, msg_id: str, subject: str, payload: Any) -> None:

        task = asyncio.ensure_future(self.bus.publish(subject, payload, msg_id))
        self._in_flight[row_id] = task
        task.add_done_callback(functools.partial(self._finished, row_id))

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
        started = await self._start_new(full=True)
        count = 0
        now = time.monotonic()
        if (
            len(self._done) + len(self._failed) >= MARK_BATCH
            or now - self._last_mark >= MARK_EVERY_SECONDS
        ):
            self._last_mark = now
            count = await self._mark_done()
        return count + started

    async def _start_new(self, *, full: bool) -> int:
        """Hand unpublished rows to the bus. `full=False` reads only rows above the highest id
        already handed over (a woken relay must not re-read, and re-decode, the rows it is still
        publishing or has yet to mark); a full scan (on start, then at least every poll
        interval) also finds rows that failed or that committed out of id order."""
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return 0
        limit = min(self.batch_size, room)
        stmt = select(
            OutboxMessage.id,
            OutboxMessage.msg_id,
            OutboxMessage.subject,
            OutboxMessage.payload,
        ).where(OutboxMessage.published_at.is_(None))
        if full:
            self._last_full_scan = time.monotonic()
            stmt = stmt.limit(limit + len(self._in_flight))
        else:
            stmt = stmt.where(OutboxMessage.id > self._high_water).limit(limit)
        async with self.sessionmaker() as db:
            rows = (await db.execute(stmt.order_by(OutboxMessage.id))).all()
            await db.rollback()
        started = 0
        for row in rows:
            if row.id in self._in_flight or started >= limit:
                continue
            self._high_water = max(self._high_water, row.id)
            self._publish(row.id, row.msg_id, row.subject, row.payload)
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
        # marking published is bookkeeping: start it when a batch of marks is due, without a
        # relay pass (the loop also does it on its poll)
        if len(self._done) + len(self._failed) >= MARK_BATCH and (
            self._bookkeeping is None or self._bookkeeping.done()
        ):
            self._last_mark = time.monotonic()
            self._bookkeeping = asyncio.get_running_loop().create_task(
                self._keep_books(), name="outbox-relay-bookkeeping"
            )

    async def _mark_done(self) -> int:
        async with self._mark_lock:
            done, failed = await self._write_marks()
        for row_id in (*done, *failed):
            self._in_flight.pop(row_id, None)
        self.published_total += len(done)
        return len(done)

    async def _keep_books(self) -> None:
        """The run loop's bookkeeping, off its path: mark rows published, record the beat,
        purge. A row leaves `_in_flight` only under `_lock`, so a full scan that read it before
        its mark committed never hands it to the bus again."""
        try:
            if self._done or self._failed:
                async with self._mark_lock:
                    done, failed = await self._write_marks()
                async with self._lock:
                    for row_id in (*done, *failed):
                        self._in_flight.pop(row_id, None)
                self.published_total += len(done)
            await self._beat()
            now = self.clock.now()
            if self._last_purge is None or now - self._last_purge >= self.purge_every:
                self._last_purge = now
                await self.purge(now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox relay bookkeeping failed; retrying")

    def _books_due(self) -> bool:
        marks = len(self._done) + len(self._failed)
        now = time.monotonic()
        if marks >= MARK_BATCH or (marks and now - self._last_mark >= MARK_EVERY_SECONDS):
            self._last_mark = now
            return True
        if self._last_beat is None or now - self._last_beat >= 1.0:
            return True
        return self._last_purge is None or self.clock.now() - self._last_purge >= self.purge_every

    async def _write_marks(self) -> tuple[list[int], list[int]]:
        """Mark done rows published and count failed attempts, in one transaction; returns
        the row ids written (the caller drops them from `_in_flight`)."""
        done, self._done = self._done, []
        failed, self._failed = self._failed, []
        if not done and not failed:
            return [], []
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
        return done, failed

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
        self._running = True
        try:
            await self._loop()
        finally:
            self._running = False

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self.concurrent:
                    await self._pass_concurrent()
                    continue
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

    async def _pass_concurrent(self) -> None:
        """One woken pass (memory bus): hand new rows to the bus, reading only rows above the
        high-water mark unless a full scan is due; bookkeeping writes run beside it, so a panic's
        alarm never waits for them."""
        full = (
            not self._commits_in_id_order
            or time.monotonic() - self._last_full_scan >= self.poll_seconds
        )
        while True:
            async with self._lock:
                started = await self._start_new(full=full)
            if started < self.batch_size:
                break
            full = not self._commits_in_id_order
        if (self._bookkeeping is None or self._bookkeeping.done()) and self._books_due():
            self._bookkeeping = asyncio.create_task(
                self._keep_books(), name="outbox-relay-bookkeeping"
            )

    def stop(self) -> None:
        """Ask `run()` to return after its current pass."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        """Stop being woken; cancel publishes still in flight (their rows stay unpublished)."""
        self.detach()
        if self._bookkeeping is not None:
            with contextlib.suppress(BaseException):
                await self._bookkeeping
            self._bookkeeping = None
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self._mark_done()
        self._in_flight.clear()
