"""Durable event ingest with group commit.

Callers (the HTTP API, the MQTT bridge, the supervisor, the panic page) hand validated events to
`EventBatcher.submit`. One writer task collects what concurrent callers submitted (up to
`max_batch` events, waiting at most `max_wait_ms` for more), writes all of it in ONE transaction —
the Event rows, one outbox row each, the devices' last_seen_at — commits, and only then resolves
the callers' futures. So an event is acknowledged only once it is durable, and the cost of a
commit (an fsync) is shared by every event in the batch.

Idempotency: an event with an idempotency key already stored for its facility (or seen earlier in
the same batch) is not stored again; its receipt carries the original event id and
`duplicate=True`.

Device supervision: a device heard from while marked offline is set online and a synthetic
`device.restored` event is written in the same transaction (see supervision.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, and_, case, insert, or_, select, tuple_, update
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import outbox, subject_token
from watchfloor.bus.models import OutboxMessage
from watchfloor.clock import Clock
from watchfloor.db import sqlite_write_turn, urgent_writes
from watchfloor.events.models import Event
from watchfloor.sites.models import Device, DeviceStatus, Facility

log = logging.getLogger("watchfloor.events")

#: event types whose alarms are life safety (alarms.handlers has its own consumer for them)
LIFE_SAFETY_TYPES = frozenset(
    {"panic.pressed", "duress.code", "weapon.detected", "person.needs_help"}
)
SERIALISE_CHUNK = 250  # events serialised between yields to the event loop
IDLE_CONNECTION_SECONDS = 1.0  # SQLite: a batcher lane idle this long gives its connection back
KEY_CHUNK = 400  # idempotency keys looked up per query (well under every driver's limit)
EVENTS: Table = Event.__table__  # type: ignore[assignment]
DEVICES: Table = Device.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]


@dataclass
class ValidatedEvent:
    """An event that passed validation and names a known facility (and usually a device)."""

    facility_id: int
    facility_code: str
    type: str
    occurred_at: datetime
    device_id: int | None = None
    device_code: str | None = None
    zone_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    source: str = "http"
    sender: str = ""
    heard: bool = True  # the device itself spoke: move its last_seen_at
    device_status: str | None = None  # set the device's status in the same transaction
    # Supervision: drop this event (and the status change) if the device was heard after this.
    unless_heard_since: datetime | None = None
    # SQLite: the row's text values, serialised once when submitted (see `_sqlite_values`)
    _sqlite: tuple[str, str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _message: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class EventReceipt:
    event_id: int  # 0 when skipped
    duplicate: bool = False
    skipped: bool = False  # a supervision event made moot: the device was heard meanwhile


@functools.lru_cache(maxsize=4096)
def event_subject(facility_code: str, event_type: str) -> str:
    return f"event.{subject_token(facility_code)}.{subject_token(event_type)}"


def event_message(event_id: int, ev: ValidatedEvent) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "facility_id": ev.facility_id,
        "facility_code": ev.facility_code,
        "device_id": ev.device_id,
        "device_code": ev.device_code,
        "zone_id": ev.zone_id,
        "type": ev.type,
        "occurred_at": ev.occurred_at.isoformat(),
        "attributes": ev.attributes,
        "source": ev.source,
    }


# --------------------------------------------------------------------------- device directory


@dataclass(frozen=True)
class FacilityRef:
    id: int
    code: str
    region_id: int


@dataclass(frozen=True)
class DeviceRef:
    id: int
    code: str
    zone_id: int | None
    kind: str


_directories: weakref.WeakSet[DeviceDirectory] = weakref.WeakSet()


def _registry_changed(*_args: Any) -> None:
    """A facility or device was added, changed or removed in this process: forget the caches
    (other processes catch up within the directory's TTL)."""
    for directory in list(_directories):
        directory.invalidate()


# the columns the directory caches: other updates (a device's last_seen_at and status, written
# for every event it sends) must not throw the cache away
_CACHED_COLUMNS = {
    Device: ("code", "zone_id", "kind", "facility_id"),
    Facility: ("code", "region_id"),
}


def _registry_updated(_mapper: Any, _connection: Any, target: Any) -> None:
    state = sa_inspect(target)
    columns = _CACHED_COLUMNS.get(type(target), ())
    if not columns or any(state.attrs[c].history.has_changes() for c in columns):
        _registry_changed()


for _model in (Device, Facility):
    sa_event.listen(_model, "after_insert", _registry_changed)
    sa_event.listen(_model, "after_delete", _registry_changed)
    sa_event.listen(_model, "after_update", _registry_updated)


class DeviceDirectory:
    """Facility and device look-ups for ingest, cached per facility.

    A facility's devices are loaded in one query and kept for `ttl` seconds; an unknown device
    code reloads the facility (at most once a second, so a flood of bad codes cannot hammer the
    database). `invalidate()` drops everything (call it after changing devices).
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = 30.0) -> None:
        self.sessionmaker = sessionmaker
        self.ttl = ttl
        self._facilities: dict[str, tuple[float, FacilityRef | None]] = {}
        self._devices: dict[int, tuple[float, dict[str, DeviceRef]]] = {}
        _directories.add(self)

    def invalidate(self) -> None:
        self._facilities.clear()
        self._devices.clear()

    async def facility(self, code: str) -> FacilityRef | None:
        hit = self._facilities.get(code)
        now = time.monotonic()
        if hit is not None and now - hit[0] < (self.ttl if hit[1] else 1.0):
            return hit[1]
        async with self.sessionmaker() as db:
            row = (
                await db.execute(
                    select(Facility.id, Facility.code, Facility.region_id).where(
                        Facility.code == code
                    )
                )
            ).one_or_none()
        ref = FacilityRef(row[0], row[1], row[2]) if row else None
        if len(self._facilities) > 10_000:
            self._facilities.clear()
        self._facilities[code] = (now, ref)
        return ref

    async def facility_by_id(self, facility_id: int) -> FacilityRef | None:
        for _at, ref in self._facilities.values():
            if ref is not None and ref.id == facility_id:
                return ref
        async with self.sessionmaker() as db:
            row = (
                await db.execute(select(Facility.code).where(Facility.id == facility_id))
            ).scalar_one_or_none()
        return None if row is None else await self.facility(row)

    async def _load(self, facility_id: int) -> dict[str, DeviceRef]:
        async with self.sessionmaker() as db:
            rows = await db.execute(
                select(Device.id, Device.code, Device.zone_id, Device.kind).where(
                    Device.facility_id == facility_id
                )
            )
            devices = {r[1]: DeviceRef(r[0], r[1], r[2], r[3]) for r in rows.all()}
        self._devices[facility_id] = (time.monotonic(), devices)
        return devices

    async def device(self, facility_id: int, code: str) -> DeviceRef | None:
        now = time.monotonic()
        hit = self._devices.get(facility_id)
        if hit is None or now - hit[0] >= self.ttl:
            devices = await self._load(facility_id)
        else:
            devices = hit[1]
            if code not in devices and now - hit[0] >= 1.0:
                devices = await self._load(facility_id)
        return devices.get(code)


# --------------------------------------------------------------------------- the batcher


@dataclass
class _Pending:
    events: list[ValidatedEvent]
    future: asyncio.Future[list[EventReceipt]]


class EventBatcher:
    """Group commit: many callers' events, one transaction. See the module docstring."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        relay_kick: Callable[[], Any] | None = None,
        *,
        max_batch: int = 500,
        max_wait_ms: float = 2.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.relay_kick = relay_kick
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.directory = DeviceDirectory(sessionmaker)
        bind = sessionmaker.kw.get("bind")
        self._sqlite = getattr(getattr(bind, "dialect", None), "name", None) == "sqlite"
        self.transactions = 0  # committed write transactions (tests, metrics)
        self.events_written = 0
        self.on_commit: list[Callable[[int], Any]] = []  # called with the batch's event count
        # two lanes, each with its own writer: submissions carrying a life-safety event never
        # queue behind a routine batch being written (on SQLite their write transaction also
        # goes first at the database's write gate, db.urgent_writes)
        self._queues: dict[bool, asyncio.Queue[_Pending]] = {}
        self._workers: dict[bool, asyncio.Task[None]] = {}
        self._connections: dict[bool, Any] = {}  # SQLite: each lane's own connection
        self._closed = False

    # -- public

    async def submit(self, events: Sequence[ValidatedEvent]) -> list[EventReceipt]:
        """Store the events durably (with everyone else's submitted meanwhile); their receipts
        in the same order. Raises if the write failed: then nothing of this call was stored."""
        if not events:
            return []
        if self._closed:
            raise RuntimeError("the event batcher is closed")
        loop = asyncio.get_running_loop()
        urgent = any(ev.type in LIFE_SAFETY_TYPES for ev in events)
        queue = self._queues.get(urgent)
        worker = self._workers.get(urgent)
        if queue is None or worker is None or worker.done():
            queue = self._queues[urgent] = asyncio.Queue()
            self._workers[urgent] = loop.create_task(
                self._run(queue, urgent),
                name="event-batcher-life-safety" if urgent else "event-batcher",
            )
        if self._sqlite:
            # Serialise here, in the caller's turn, while the writer may be waiting on SQLite's
            # thread with the previous batch: the JSON work overlaps the database work. A long
            # submission gives the loop back between chunks (a panic's work goes in between).
            for i, ev in enumerate(events):
                if i and not i % SERIALISE_CHUNK:
                    await asyncio.sleep(0)
                _sqlite_values(ev)
        fut: asyncio.Future[list[EventReceipt]] = loop.create_future()
        queue.put_nowait(_Pending(list(events), fut))
        return await asyncio.shield(fut)

    async def close(self) -> None:
        """Finish what was submitted, then stop the writer."""
        self._closed = True
        for lane, queue in list(self._queues.items()):
            worker = self._workers.get(lane)
            if worker is not None and not worker.done():
                await queue.join()
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        for lane in list(self._connections):
            await self._drop_connection(lane)  # a lane whose worker never ran

    # -- the writer

    async def _run(self, queue: asyncio.Queue[_Pending], urgent: bool = False) -> None:
        try:
            await self._serve(queue, urgent)
        finally:  # stopped (close, or the loop ending): give the lane's connection back
            await self._drop_connection(urgent)

    async def _serve(self, queue: asyncio.Queue[_Pending], urgent: bool) -> None:
        while True:
            if urgent in self._connections:
                try:  # an idle lane gives its connection back
                    first = await asyncio.wait_for(queue.get(), IDLE_CONNECTION_SECONDS)
                except TimeoutError:
                    await self._drop_connection(urgent)
                    continue
            else:
                first = await queue.get()
            batch = [first]
            count = len(first.events)
            while count < self.max_batch and not queue.empty():
                item = queue.get_nowait()
                batch.append(item)
                count += len(item.events)
            if count < self.max_batch and not urgent:
                # Let the loop run once (or wait max_wait): requests it has already read reach
                # submit and join this batch instead of waiting a whole write for the next.
                await asyncio.sleep(self.max_wait)
                while count < self.max_batch and not queue.empty():
                    item = queue.get_nowait()
                    batch.append(item)
                    count += len(item.events)
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _write(self, batch: list[_Pending]) -> None:
        events = [ev for p in batch for ev in p.events]
        receipts: list[EventReceipt] | None = None
        error: BaseException | None = None

        # a batch carrying a life-safety event jumps SQLite's in-process write queue (db.py)
        urgent = any(ev.type in LIFE_SAFETY_TYPES for ev in events)
        if self._sqlite:
            await self._write_sqlite(batch, events, urgent)
            return
        for attempt in range(3):
            try:
                async with self.sessionmaker() as db:
                    with urgent_writes() if urgent else contextlib.nullcontext():
                        receipts = await write_events(db, self.clock, events)
                        await db.commit()
                break
            except IntegrityError as exc:
                # Another process stored one of these idempotency keys between our look-up and
                # our insert: look again (the keys are now found) and write the rest.
                error = exc
                log.info("idempotency race on ingest (attempt %d); retrying", attempt + 1)
            except Exception as exc:  # the callers get the error; nothing was stored
                error = exc
                log.exception("event batch write failed")
                break
        if receipts is None:
            _fail(batch, error)
            return
        if self.relay_kick is not None:
            try:
                self.relay_kick()
            except Exception:  # the relay also polls; a failed kick only delays
                log.exception("relay kick failed")
        self._answer(batch, events, receipts)

    async def _write_sqlite(
        self, batch: list[_Pending], events: list[ValidatedEvent], urgent: bool
    ) -> None:
        """SQLite: the whole transaction — BEGIN IMMEDIATE, every write, COMMIT — in ONE call on
        the connection's own thread (`_write_transaction`), under this process's write gate, and
        the callers answered before the connection goes back to the pool. Through a Session the
        same write took five hand-offs between the event loop and that thread (begin, write,
        commit, close), each waiting its turn on a busy loop. Each lane keeps its connection
        from batch to batch (dropped after a failed write)."""
        engine: Any = self.sessionmaker.kw["bind"]
        now = self.clock.now()
        new, slot = _classify(events, {})  # stored keys: the insert itself skips them
        for ev in new:
            _sqlite_values(ev)  # serialised here (usually already done in submit)
        try:
            conn = self._connections.get(urgent)
            if conn is None:  # each lane keeps one connection: no check-out and reset per batch
                conn = self._connections[urgent] = await engine.connect()
            raw = await conn.get_raw_connection()
            aio: Any = raw.driver_connection  # aiosqlite.Connection
            with urgent_writes() if urgent else contextlib.nullcontext():
                async with sqlite_write_turn(engine, id(raw.dbapi_connection)):
                    ids_of_new, repeat_of, relayed = await aio._execute(
                        _write_transaction, aio, now, new
                    )
            outbox.committed_bulk_rows(engine.sync_engine, relayed)
            self._answer(batch, events, _receipts(slot, ids_of_new, repeat_of))
        except Exception as exc:  # the callers get the error; nothing was stored
            log.exception("event batch write failed")
            _fail(batch, exc)
            await self._drop_connection(urgent)

    async def _drop_connection(self, lane: bool) -> None:
        conn = self._connections.pop(lane, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _answer(
        self, batch: list[_Pending], events: list[ValidatedEvent], receipts: list[EventReceipt]
    ) -> None:
        """The batch is committed: count it and answer every caller."""
        self.transactions += 1
        self.events_written += len(events)
        for hook in self.on_commit:
            hook(len(events))
        at = 0
        for p in batch:
            n = len(p.events)
            if not p.future.done():
                p.future.set_result(receipts[at : at + n])
            at += n


def _fail(batch: list[_Pending], error: BaseException | None) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(error or RuntimeError("event write failed"))


async def _existing_keys(
    db: AsyncSession, keys: set[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    found: dict[tuple[int, str], int] = {}
    if db.get_bind().dialect.name == "sqlite":
        # One statement per facility, the keys as one JSON array parameter: SQLite answers it
        # from the (facility_id, idempotency_key) index without SQLAlchemy expanding (and
        # compiling) hundreds of bind parameters per chunk.
        per_facility: dict[int, list[str]] = {}
        for facility_id, wanted_key in keys:
            per_facility.setdefault(facility_id, []).append(wanted_key)
        conn = await db.connection()
        for facility_id, wanted in sorted(per_facility.items()):
            hits: Any = await conn.exec_driver_sql(
                "SELECT idempotency_key, id FROM events WHERE facility_id = ?"
                " AND idempotency_key IN (SELECT value FROM json_each(?))",
                (facility_id, _dumps(wanted)),
            )
            for hit in hits.all():
                found[(facility_id, str(hit[0]))] = int(hit[1])
        return found
    ordered = sorted(keys)
    for i in range(0, len(ordered), KEY_CHUNK):
        chunk = ordered[i : i + KEY_CHUNK]
        facility_ids = {f for f, _k in chunk}
        if len(facility_ids) == 1:
            cond = and_(
                Event.facility_id == chunk[0][0],
                Event.idempotency_key.in_([k for _f, k in chunk]),
            )
        else:
            cond = tuple_(Event.facility_id, Event.idempotency_key).in_(chunk)
        rows = await db.execute(
            select(Event.facility_id, Event.idempotency_key, Event.id).where(cond)
        )
        for fid, key, eid in rows.all():
            if key is not None:
                found[(fid, key)] = eid
    return found


def _classify(
    events: Sequence[ValidatedEvent], existing: dict[tuple[int, str], int]
) -> tuple[list[ValidatedEvent], list[tuple[str, int]]]:
    """Which events are new; the others point at the event (stored, or earlier in this batch)
    they repeat. Returns the new events and one slot per event: ("db", event id) | ("dup",
    index into new) | ("new", index into new)."""
    new: list[ValidatedEvent] = []
    slot: list[tuple[str, int]] = []
    first_in_batch: dict[tuple[int, str], int] = {}
    for ev in events:
        key = (ev.facility_id, ev.idempotency_key) if ev.idempotency_key else None
        if key is not None and key in existing:
            slot.append(("db", existing[key]))
        elif key is not None and key in first_in_batch:
            slot.append(("dup", first_in_batch[key]))
        else:
            if key is not None:
                first_in_batch[key] = len(new)
            slot.append(("new", len(new)))
            new.append(ev)
    return new, slot


def _restored_event(ev: ValidatedEvent, device_id: int, now: datetime) -> ValidatedEvent:
    """The synthetic `device.restored` of a device heard while it was marked offline."""
    return ValidatedEvent(
        facility_id=ev.facility_id,
        facility_code=ev.facility_code,
        type="device.restored",
        occurred_at=now,
        device_id=device_id,
        device_code=ev.device_code,
        zone_id=ev.zone_id,
        attributes={"previous_status": DeviceStatus.OFFLINE.value},
        source="system",
        sender="system:supervision",
        heard=False,
    )


def _receipts(
    slot: list[tuple[str, int]], ids_of_new: dict[int, int], repeat_of: dict[int, int]
) -> list[EventReceipt]:
    receipts: list[EventReceipt] = []
    for kind, ref in slot:
        if kind == "db":
            receipts.append(EventReceipt(ref, duplicate=True))
        elif ref in repeat_of:
            receipts.append(EventReceipt(repeat_of[ref], duplicate=True))
        elif ref not in ids_of_new:
            receipts.append(EventReceipt(0, skipped=True))
        else:
            receipts.append(EventReceipt(ids_of_new[ref], duplicate=kind == "dup"))
    return receipts


async def write_events(
    db: AsyncSession, clock: Clock, events: Sequence[ValidatedEvent]
) -> list[EventReceipt]:
    """Write the events, their outbox rows and the device updates into `db` (flushed, not
    committed). The receipts come back in the events' order."""
    if db.get_bind().dialect.name == "sqlite":
        return await _write_events_sqlite(db, clock.now(), events)
    now = clock.now()
    keys = {(e.facility_id, e.idempotency_key) for e in events if e.idempotency_key}
    existing = await _existing_keys(db, keys) if keys else {}
    new, slot = _classify(events, existing)

    # Devices heard: one UPDATE for all of them. Supervision status changes: one each.
    heard: set[int] = set()
    status_set: dict[int, ValidatedEvent] = {}
    by_device: dict[int, ValidatedEvent] = {}
    for ev in new:
        if ev.device_id is None:
            continue
        by_device.setdefault(ev.device_id, ev)
        if ev.heard:
            heard.add(ev.device_id)
        if ev.device_status:
            status_set[ev.device_id] = ev
    dropped: set[int] = set()  # id() of events made moot
    for device_id, sev in sorted(status_set.items()):
        values: dict[str, Any] = {"status": sev.device_status}
        if device_id in heard:
            values["last_seen_at"] = now
        stmt = update(DEVICES).where(DEVICES.c.id == device_id).values(**values)
        if sev.unless_heard_since is not None and device_id not in heard:
            stmt = stmt.where(
                or_(
                    DEVICES.c.last_seen_at.is_(None),
                    DEVICES.c.last_seen_at <= sev.unless_heard_since,
                )
            )
        if (await db.execute(stmt.returning(DEVICES.c.id))).scalar_one_or_none() is None:
            dropped.add(id(sev))
    heard_only = sorted(heard - set(status_set))
    restored: list[ValidatedEvent] = []
    if heard_only:
        # Heard now; a device heard for the first time is online (no alarm: it was never
        # missing).
        await db.execute(
            update(DEVICES)
            .where(DEVICES.c.id.in_(heard_only))
            .values(
                last_seen_at=now,
                status=case(
                    (DEVICES.c.status == DeviceStatus.UNKNOWN, DeviceStatus.ONLINE.value),
                    else_=DEVICES.c.status,
                ),
            )
        )
        # A device heard while offline is back: flip it (only one writer wins) and say so.
        back = (
            await db.execute(
                update(DEVICES)
                .where(DEVICES.c.id.in_(heard_only), DEVICES.c.status == DeviceStatus.OFFLINE)
                .values(status=DeviceStatus.ONLINE)
                .returning(DEVICES.c.id)
            )
        ).scalars()
        restored = [_restored_event(by_device[d], d, now) for d in sorted(back)]

    kept = [i for i, ev in enumerate(new) if id(ev) not in dropped]
    to_insert = [new[i] for i in kept] + restored
    ids = await _insert_core(db, now, to_insert) if to_insert else []
    return _receipts(slot, {i: ids[pos] for pos, i in enumerate(kept)}, {})


# --------------------------------------------------------------------------- SQLite fast path


async def _write_events_sqlite(
    db: AsyncSession, now: datetime, events: Sequence[ValidatedEvent]
) -> list[EventReceipt]:
    """SQLite: the whole write in ONE call on the database's own thread.

    Through SQLAlchemy each statement is a round trip between the event loop and aiosqlite's
    thread (a queue hand-off each way), and a batch takes about nine of them; under load every
    one waits for the loop. Here one statement through SQLAlchemy opens the transaction and
    takes this process's write gate (db.py) and SQLite's write lock, then `_write_sync` runs
    every other statement with the plain sqlite3 connection on aiosqlite's thread, in that same
    transaction (the session commits it as usual). The values are written exactly as the Core
    types write them (times as UTC text, JSON text)."""
    new, slot = _classify(events, {})  # stored keys: the insert itself skips them
    for ev in new:
        _sqlite_values(ev)  # serialised here (usually already done in submit)
    conn = await db.connection()
    # Take SQLite's write lock now, so the ids counted in _write_sync stay ours until commit.
    await conn.exec_driver_sql("UPDATE events SET id = id WHERE 0")
    raw = await conn.get_raw_connection()
    aio: Any = raw.driver_connection  # aiosqlite.Connection
    ids_of_new, repeat_of, relayed = await aio._execute(_write_sync, aio, now, new)
    outbox.note_bulk_rows(db, relayed)  # handed to the relay in memory on commit
    return _receipts(slot, ids_of_new, repeat_of)


def _write_transaction(
    aio: Any, now: datetime, new: list[ValidatedEvent]
) -> tuple[dict[int, int], dict[int, int], list[tuple[int, str, str, Any]]]:
    """`_write_sync` in a transaction of its own, begun and committed here (on aiosqlite's
    thread): BEGIN IMMEDIATE takes SQLite's write lock first, so the ids counted are ours."""
    sq: Any = aio._conn
    sq.execute("BEGIN IMMEDIATE")
    try:
        found = _write_sync(aio, now, new)
        sq.commit()
    except BaseException:
        sq.rollback()
        raise
    return found


def _write_sync(
    aio: Any, now: datetime, new: list[ValidatedEvent]
) -> tuple[dict[int, int], dict[int, int], list[tuple[int, str, str, Any]]]:
    """Runs on aiosqlite's thread inside the open transaction. Returns {index into new: event
    id} for the events written, {index into new: id of the stored event it repeats}, and the
    outbox rows written as (id, msg_id, subject, message)."""
    sq: Any = aio._conn  # the sqlite3 connection
    stamp = _sqlite_time(now)
    heard: set[int] = set()
    status_set: dict[int, int] = {}  # device id -> index into new
    first_of_device: dict[int, int] = {}
    for i, ev in enumerate(new):
        if ev.device_id is None:
            continue
        first_of_device.setdefault(ev.device_id, i)
        if ev.heard:
            heard.add(ev.device_id)
        if ev.device_status:
            status_set[ev.device_id] = i
    dropped: set[int] = set()  # indexes into new made moot
    for device_id, i in sorted(status_set.items()):
        sev = new[i]
        sql = "UPDATE devices SET status = ?"
        args: list[Any] = [sev.device_status]
        if device_id in heard:
            sql += ", last_seen_at = ?"
            args.append(stamp)
        sql += " WHERE id = ?"
        args.append(device_id)
        if sev.unless_heard_since is not None and device_id not in heard:
            sql += " AND (last_seen_at IS NULL OR last_seen_at <= ?)"
            args.append(_sqlite_time(sev.unless_heard_since))
        if sq.execute(sql + " RETURNING id", args).fetchone() is None:
            dropped.add(i)
    heard_only = sorted(heard - set(status_set))
    restored: list[ValidatedEvent] = []
    if heard_only:
        wanted = _dumps(heard_only)  # the ids as one JSON array parameter
        sq.execute(
            "UPDATE devices SET last_seen_at = ?, status = CASE WHEN status = ? THEN ? ELSE"
            " status END WHERE id IN (SELECT value FROM json_each(?))",
            (stamp, DeviceStatus.UNKNOWN.value, DeviceStatus.ONLINE.value, wanted),
        )
        back = sq.execute(
            "UPDATE devices SET status = ? WHERE status = ? AND id IN"
            " (SELECT value FROM json_each(?)) RETURNING id",
            (DeviceStatus.ONLINE.value, DeviceStatus.OFFLINE.value, wanted),
        ).fetchall()
        for (device_id,) in sorted(back):
            ev = _restored_event(new[first_of_device[device_id]], device_id, now)
            _sqlite_values(ev)
            restored.append(ev)
    kept = [i for i in range(len(new)) if i not in dropped]
    rows = [new[i] for i in kept] + restored
    if not rows:
        return {}, {}, []
    top = sq.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    ids = list(range(top + 1, top + 1 + len(rows)))
    prepared = [_sqlite_values(ev) for ev in rows]
    sq.executemany(
        "INSERT INTO events (id, facility_id, device_id, zone_id, type, occurred_at, received_at,"
        " idempotency_key, source, sender, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT DO NOTHING",
        [
            (
                eid,
                ev.facility_id,
                ev.device_id,
                ev.zone_id,
                ev.type,
                values[0],
                stamp,
                ev.idempotency_key,
                ev.source,
                ev.sender[:160],
                values[1],
            )
            for eid, ev, values in zip(ids, rows, prepared, strict=True)
        ],
    )
    # An event whose idempotency key is already stored was skipped by the insert (ON CONFLICT
    # DO NOTHING): the ids present say which were written; only the skipped are looked up.
    repeats: dict[int, int] = {}  # position in rows -> the stored event's id
    if any(ev.idempotency_key for ev in rows):
        written = sq.execute(
            "SELECT count(*) FROM events WHERE id BETWEEN ? AND ?", (ids[0], ids[-1])
        ).fetchone()[0]
        if written != len(ids):
            present = {
                r[0]
                for r in sq.execute(
                    "SELECT id FROM events WHERE id BETWEEN ? AND ?", (ids[0], ids[-1])
                )
            }
            for pos, eid in enumerate(ids):
                if eid in present:
                    continue
                ev = rows[pos]
                hit = sq.execute(
                    "SELECT id FROM events WHERE facility_id = ? AND idempotency_key = ?",
                    (ev.facility_id, ev.idempotency_key),
                ).fetchone()
                if hit is None:  # cannot happen: the only conflict is a stored key
                    raise RuntimeError(f"event {eid} was neither written nor found")
                repeats[pos] = hit[0]
    first = sq.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0] + 1
    relayed: list[tuple[int, str, str, Any]] = []
    outbox_rows = []
    for pos, (eid, ev, values) in enumerate(zip(ids, rows, prepared, strict=True)):
        if pos in repeats:
            continue
        row_id = first + len(relayed)
        msg_id, subject = f"event:{eid}", event_subject(ev.facility_code, ev.type)
        outbox_rows.append((row_id, msg_id, subject, f'{{"event_id":{eid}{values[2]}', stamp))
        relayed.append((row_id, msg_id, subject, _message(ev, eid)))
    sq.executemany(
        "INSERT INTO outbox (id, msg_id, subject, payload, created_at, published_at, attempts)"
        " VALUES (?,?,?,?,?,NULL,0)",
        outbox_rows,
    )
    ids_of_new = {i: ids[pos] for pos, i in enumerate(kept)}
    repeat_of = {i: repeats[pos] for pos, i in enumerate(kept) if pos in repeats}
    return ids_of_new, repeat_of, relayed


# SQLite's DATETIME storage format as SQLAlchemy writes it (UTC, no offset, always microseconds)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_stdlib_dumps = json.JSONEncoder(ensure_ascii=True).encode  # what SQLAlchemy's JSON type writes


def _dumps(value: Any) -> str:
    """JSON text (orjson: several times faster than json; any JSON reader reads both). Values
    orjson refuses (integers past 64 bits, which a device's free-form attributes may hold) go
    through json."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _stdlib_dumps(value)


def _sqlite_time(value: datetime) -> str:
    """As SQLAlchemy stores a datetime on SQLite: UTC, no offset, always with microseconds
    (str() of a naive datetime; formatting with strftime costs three times as much)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: store UTC-aware datetimes only")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    stored = str(value.replace(tzinfo=None))
    return stored if value.microsecond else stored + ".000000"


def _sqlite_time_of_iso(iso: str, value: datetime) -> str:
    """`_sqlite_time(value)`, cut from its ISO 8601 text already made for the bus message
    ("2026-12-05T12:46:04.123456+00:00" → "2026-12-05 12:46:04.123456") when it is UTC."""
    if iso.endswith("+00:00") and value.tzinfo is UTC:
        if len(iso) == 32:
            return f"{iso[:10]} {iso[11:26]}"
        if len(iso) == 25:
            return f"{iso[:10]} {iso[11:19]}.000000"
    return _sqlite_time(value)


_PAYLOAD_HEAD = '{"event_id":0'


def _sqlite_values(ev: ValidatedEvent) -> tuple[str, str, str]:
    """(occurred_at as stored, attributes JSON, outbox payload JSON after its event id): the
    payload is `event_message` serialised, whose first key is the event id, known only at
    insert time."""
    found = ev._sqlite
    if found is None:
        message = ev._message = event_message(0, ev)
        payload = _dumps(message)
        assert payload.startswith(_PAYLOAD_HEAD)
        found = ev._sqlite = (
            _sqlite_time_of_iso(message["occurred_at"], ev.occurred_at),
            _dumps(ev.attributes),
            payload[len(_PAYLOAD_HEAD) :],
        )
    return found


def _message(ev: ValidatedEvent, event_id: int) -> dict[str, Any]:
    """The bus message of a written event (the dict serialised by `_sqlite_values`, given its
    id: each event is written once)."""
    message = ev._message if ev._message is not None else event_message(event_id, ev)
    message["event_id"] = event_id
    return message


async def _insert_core(
    db: AsyncSession, now: datetime, events: Sequence[ValidatedEvent]
) -> list[int]:
    """The events (ids from RETURNING, in order) and their outbox rows, through Core."""
    rows = [
        {
            "facility_id": ev.facility_id,
            "device_id": ev.device_id,
            "zone_id": ev.zone_id,
            "type": ev.type,
            "occurred_at": ev.occurred_at,
            "received_at": now,
            "idempotency_key": ev.idempotency_key,
            "source": ev.source,
            "sender": ev.sender[:160],
            "attributes": ev.attributes,
        }
        for ev in events
    ]
    result = await db.execute(
        insert(EVENTS).returning(EVENTS.c.id, sort_by_parameter_order=True), rows
    )
    ids = [r[0] for r in result.all()]
    await db.execute(
        insert(OUTBOX),
        [
            {
                "msg_id": f"event:{eid}",
                "subject": event_subject(ev.facility_code, ev.type),
                "payload": event_message(eid, ev),
                "created_at": now,
                "published_at": None,
                "attempts": 0,
            }
            for eid, ev in zip(ids, events, strict=True)
        ],
    )
    return ids


__all__ = [
    "DeviceDirectory",
    "DeviceRef",
    "EventBatcher",
    "EventReceipt",
    "FacilityRef",
    "ValidatedEvent",
    "event_message",
    "event_subject",
    "write_events",
]
