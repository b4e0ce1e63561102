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

from sqlalchemy import Table, and_, func, insert, or_, select, text, tuple_, update
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import subject_token
from watchfloor.bus.models import OutboxMessage
from watchfloor.clock import Clock
from watchfloor.db import urgent_writes
from watchfloor.events.models import Event
from watchfloor.sites.models import Device, DeviceStatus, Facility

log = logging.getLogger("watchfloor.events")

#: event types whose alarms are life safety (alarms.handlers has its own consumer for them)
LIFE_SAFETY_TYPES = frozenset(
    {"panic.pressed", "duress.code", "weapon.detected", "person.needs_help"}
)
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
            # thread with the previous batch: the JSON work overlaps the database work.
            for ev in events:
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

    # -- the writer

    async def _run(self, queue: asyncio.Queue[_Pending], urgent: bool = False) -> None:
        while True:
            first = await queue.get()
            batch = [first]
            count = len(first.events)
            while count < self.max_batch and not queue.empty():
                item = queue.get_nowait()
                batch.append(item)
                count += len(item.events)
            if count < self.max_batch and self.max_wait > 0 and not urgent:
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
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(error or RuntimeError("event write failed"))
            return
        self.transactions += 1
        self.events_written += len(events)
        for hook in self.on_commit:
            hook(len(events))
        if self.relay_kick is not None:
            try:
                self.relay_kick()
            except Exception:  # the relay also polls; a failed kick only delays
                log.exception("relay kick failed")
        at = 0
        for p in batch:
            n = len(p.events)
            if not p.future.done():
                p.future.set_result(receipts[at : at + n])
            at += n


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


async def write_events(
    db: AsyncSession, clock: Clock, events: Sequence[ValidatedEvent]
) -> list[EventReceipt]:
    """Write the events, their outbox rows and the device updates into `db` (flushed, not
    committed). The receipts come back in the events' order."""
    now = clock.now()
    keys = {(e.facility_id, e.idempotency_key) for e in events if e.idempotency_key}
    existing = await _existing_keys(db, keys) if keys else {}

    # Which events are new; duplicates point at the event (stored or in this batch) they repeat.
    new: list[ValidatedEvent] = []
    slot: list[tuple[str, int]] = []  # ("db", event id) | ("new", index into `new`)
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

    sqlite = db.get_bind().dialect.name == "sqlite"
    if sqlite:
        # Take SQLite's write lock now, so the ids counted below stay ours until commit.
        await db.execute(text("UPDATE events SET id = id WHERE 0"))

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
        await db.execute(
            update(DEVICES).where(DEVICES.c.id.in_(heard_only)).values(last_seen_at=now)
        )
        # A device heard for the first time is online (no alarm: it was never missing).
        await db.execute(
            update(DEVICES)
            .where(DEVICES.c.id.in_(heard_only), DEVICES.c.status == DeviceStatus.UNKNOWN)
            .values(status=DeviceStatus.ONLINE)
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
        for device_id in sorted(back):
            ev = by_device[device_id]
            restored.append(
                ValidatedEvent(
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
            )

    kept = [i for i, ev in enumerate(new) if id(ev) not in dropped]
    to_insert = [new[i] for i in kept] + restored
    ids: list[int] = []
    if to_insert:
        if sqlite:
            ids = await _insert_sqlite(db, now, to_insert)
        else:
            ids = await _insert_core(db, now, to_insert)

    id_of_new = {i: ids[pos] for pos, i in enumerate(kept)}
    receipts: list[EventReceipt] = []
    for kind, ref in slot:
        if kind == "db":
            receipts.append(EventReceipt(ref, duplicate=True))
        elif ref not in id_of_new:
            receipts.append(EventReceipt(0, skipped=True))
        else:
            receipts.append(EventReceipt(id_of_new[ref], duplicate=kind == "dup"))
    return receipts


# SQLite's DATETIME storage format as SQLAlchemy writes it (UTC, no offset, always microseconds)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_dumps = json.JSONEncoder(ensure_ascii=True).encode  # what SQLAlchemy's JSON type writes


def _sqlite_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: store UTC-aware datetimes only")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.strftime(_SQLITE_TIME)


_PAYLOAD_HEAD = '{"event_id": 0'


def _sqlite_values(ev: ValidatedEvent) -> tuple[str, str, str]:
    """(occurred_at as stored, attributes JSON, outbox payload JSON after its event id): the
    payload is `event_message` serialised, whose first key is the event id, known only at
    insert time."""
    found = ev._sqlite
    if found is None:
        payload = _dumps(event_message(0, ev))
        assert payload.startswith(_PAYLOAD_HEAD)
        found = ev._sqlite = (
            _sqlite_time(ev.occurred_at),
            _dumps(ev.attributes),
            payload[len(_PAYLOAD_HEAD) :],
        )
    return found


async def _insert_sqlite(
    db: AsyncSession, now: datetime, events: Sequence[ValidatedEvent]
) -> list[int]:
    """The events and their outbox rows as two plain executemany calls with ids we assign (the
    caller holds SQLite's write lock): no per-row ORM or type-processing work, and no RETURNING
    (which SQLAlchemy must run row by row on SQLite to keep the order). The values are written
    exactly as the Core types would write them (times as UTC text, JSON via json)."""
    conn = await db.connection()
    top = (await conn.execute(select(func.max(EVENTS.c.id)))).scalar_one() or 0
    ids = list(range(top + 1, top + 1 + len(events)))
    stamp = _sqlite_time(now)
    prepared = [_sqlite_values(ev) for ev in events]
    await conn.exec_driver_sql(
        "INSERT INTO events (id, facility_id, device_id, zone_id, type, occurred_at, received_at,"
        " idempotency_key, source, sender, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
            for eid, ev, values in zip(ids, events, prepared, strict=True)
        ],
    )
    await conn.exec_driver_sql(
        "INSERT INTO outbox (msg_id, subject, payload, created_at, published_at, attempts)"
        " VALUES (?,?,?,?,NULL,0)",
        [
            (
                f"event:{eid}",
                event_subject(ev.facility_code, ev.type),
                f'{{"event_id": {eid}{values[2]}',
                stamp,
            )
            for eid, ev, values in zip(ids, events, prepared, strict=True)
        ],
    )
    return ids


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
