"""Scheduled end-to-end test signals: proof that each facility's alarm path works.

Every `settings.test_signal_minutes` (default 15; 0 = off) the `TestSignalMonitor` hands one
synthetic `test.signal` event per facility to the events ingest batcher — the entry of the real
path, exactly as a device or integration would send it (source "system", sender
"system:test-signal"). From there it travels like any event: durable write with its outbox row,
the outbox relay, the bus (`event.<facility>.test_signal`), and the "test-signals" consumer
(`register`), which records in `test_signals` that the signal was processed. A site's own
integration may post `test.signal` too: the consumer records those the same way, and they count.

The monitor's `tick(now)` (run by the runtime every few seconds, driven by a FakeClock in tests)
also judges each facility: when its latest signal has not been processed `grace` seconds
(settings.test_signal_grace_seconds, default 120) after it was stored, it raises a P3 trouble
alarm `test_signal_missing` (rule "test_signal_missing", overridable per facility like any rule).
That alarm is written directly — a stored `test.signal_missing` event and the alarm, its incident
and its `alarm.*` message in one transaction — not through the bus consumer it is reporting
broken. The next signal that is processed clears it.

Each scheduled signal carries the idempotency key `test-signal:<slot>` (slot = minutes since the
epoch divided by the interval), so several processes, or a restart within a slot, store one
signal per facility and slot. After a restart the monitor judges nothing for one grace period:
the relay first publishes what the previous process left in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.alarms.models import Alarm, AlarmState
from watchfloor.bus import Message, outbox, subject_token
from watchfloor.clock import Clock, as_utc
from watchfloor.events.ingest import EventBatcher, ValidatedEvent, event_message, write_events
from watchfloor.events.models import Event, TestSignal
from watchfloor.schemas import OutModel
from watchfloor.sites.models import Facility

log = logging.getLogger("watchfloor.test_signal")

SIGNAL_TYPE = "test.signal"
MISSING_TYPE = "test.signal_missing"
RULE_KEY = "test_signal_missing"
SENDER = "system:test-signal"
CONSUMER = "test-signals"
SUBJECT = f"event.*.{subject_token(SIGNAL_TYPE)}"
DEFAULT_MINUTES = 15.0
DEFAULT_GRACE_SECONDS = 120
RETENTION = timedelta(days=7)  # signal records kept this long
TICK_SECONDS = 5.0


# --------------------------------------------------------------------------- records


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


async def _upsert(db: AsyncSession, event_id: int, values: dict[str, Any]) -> TestSignal:
    """The record of `event_id`, created or updated with `values` (only fields not yet set,
    except processed_at). The sender and the consumer may race to create it."""
    for _attempt in range(2):
        row = await db.scalar(select(TestSignal).where(TestSignal.event_id == event_id))
        if row is None:
            row = TestSignal(event_id=event_id, **values)
            try:
                async with db.begin_nested():
                    db.add(row)
                    await db.flush()
                return row
            except IntegrityError:
                continue  # the other side created it meanwhile: update theirs
        for name, value in values.items():
            if value is not None and (getattr(row, name) is None or name == "processed_at"):
                setattr(row, name, value)
        await db.flush()
        return row
    raise RuntimeError(f"could not record test signal of event {event_id}")  # pragma: no cover


async def record_sent(
    db: AsyncSession,
    *,
    facility_id: int,
    event_id: int,
    sent_at: datetime,
    received_at: datetime,
    source: str = "system",
    sender: str = SENDER,
) -> TestSignal:
    """Note a signal the ingest path acknowledged (flushes; the caller commits)."""
    return await _upsert(
        db,
        event_id,
        {
            "facility_id": facility_id,
            "sent_at": sent_at,
            "received_at": received_at,
            "source": source[:20],
            "sender": sender[:160],
        },
    )


async def record_processed(
    db: AsyncSession, clock: Clock, data: Mapping[str, Any]
) -> TestSignal | None:
    """The consumer's part: the `test.signal` event (its bus message body) got through. Records
    it and clears the facility's `test_signal_missing` alarms. Flushes; the caller commits."""
    event_id = _int(data.get("event_id"))
    facility_id = _int(data.get("facility_id"))
    if event_id is None or facility_id is None:
        return None
    event = await db.get(Event, event_id)
    if event is None or event.facility_id != facility_id:
        return None
    now = clock.now()
    row = await _upsert(
        db,
        event_id,
        {
            "facility_id": facility_id,
            "sent_at": as_utc(event.occurred_at),
            "received_at": as_utc(event.received_at),
            "source": (event.source or "")[:20],
            "sender": (event.sender or "")[:160],
            "processed_at": now,
        },
    )
    from watchfloor.alarms.service import clear_facility_alarms

    await clear_facility_alarms(db, clock, facility_id, [RULE_KEY], "Test signal processed again")
    return row


# --------------------------------------------------------------------------- status


class TestSignalRecord(OutModel):
    event_id: int | None
    source: str
    sender: str
    sent_at: datetime
    received_at: datetime | None
    processed_at: datetime | None


class TestSignalStatus(OutModel):
    __test__ = False

    facility_code: str
    enabled: bool = Field(description="Whether Watchfloor sends scheduled test signals.")
    interval_minutes: float
    grace_seconds: int
    state: str = Field(
        description="ok: the latest signal was processed; pending: the latest is on its way "
        "(within the grace); missing: the latest was not processed in time; never: none yet."
    )
    last_success: TestSignalRecord | None = Field(
        description="The latest signal the pipeline processed."
    )
    latest: TestSignalRecord | None = Field(description="The latest signal sent or received.")
    missing_alarm_id: int | None = Field(
        default=None, description="The active test_signal_missing alarm, if any."
    )
    recent: list[TestSignalRecord] = Field(default_factory=list)


def _record(row: TestSignal) -> TestSignalRecord:
    return TestSignalRecord(
        event_id=row.event_id,
        source=row.source,
        sender=row.sender,
        sent_at=row.sent_at,
        received_at=row.received_at,
        processed_at=row.processed_at,
    )


def is_overdue(row: TestSignal, now: datetime, grace_seconds: float) -> bool:
    if row.processed_at is not None:
        return False
    stored = as_utc(row.received_at or row.sent_at)
    return now >= stored + timedelta(seconds=grace_seconds)


async def facility_status(
    db: AsyncSession,
    facility: Facility,
    now: datetime,
    *,
    minutes: float = DEFAULT_MINUTES,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    recent: int = 10,
) -> TestSignalStatus:
    rows = (
        await db.scalars(
            select(TestSignal)
            .where(TestSignal.facility_id == facility.id)
            .order_by(TestSignal.id.desc())
            .limit(max(recent, 1))
        )
    ).all()
    success = next((r for r in rows if r.processed_at is not None), None)
    if success is None:
        success = await db.scalar(
            select(TestSignal)
            .where(TestSignal.facility_id == facility.id, TestSignal.processed_at.is_not(None))
            .order_by(TestSignal.id.desc())
            .limit(1)
        )
    alarm_id = await db.scalar(
        select(Alarm.id)
        .where(
            Alarm.facility_id == facility.id,
            Alarm.rule_key == RULE_KEY,
            Alarm.state == AlarmState.ACTIVE,
        )
        .order_by(Alarm.id.desc())
        .limit(1)
    )
    latest = rows[0] if rows else None
    if latest is None:
        state = "never"
    elif latest.processed_at is not None:
        state = "ok"
    elif is_overdue(latest, now, grace_seconds):
        state = "missing"
    else:
        state = "pending"
    return TestSignalStatus(
        facility_code=facility.code,
        enabled=minutes > 0,
        interval_minutes=minutes,
        grace_seconds=grace_seconds,
        state=state,
        last_success=_record(success) if success else None,
        latest=_record(latest) if latest else None,
        missing_alarm_id=alarm_id,
        recent=[_record(r) for r in rows[:recent]],
    )


# --------------------------------------------------------------------------- the consumer


async def handle_message(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, msg: Message
) -> bool:
    """Handle one `event.*.test_signal` message; False for a redelivery or a foreign one."""
    if msg.data.get("type") != SIGNAL_TYPE:
        return False
    async with sessionmaker() as db:
        if not await outbox.first_delivery(db, CONSUMER, msg.msg_id, clock=clock):
            return False
        row = await record_processed(db, clock, msg.data)
        await db.commit()
    return row is not None


async def register(runtime: Any) -> None:
    sessionmaker = runtime.sessionmaker
    clock = runtime.clock

    async def _on_signal(msg: Message) -> None:
        await handle_message(sessionmaker, clock, msg)

    await runtime.bus.subscribe(SUBJECT, CONSUMER, _on_signal)


# --------------------------------------------------------------------------- the monitor


@dataclass
class TickResult:
    sent: list[int] = field(default_factory=list)  # facility ids sent a new signal
    raised: list[int] = field(default_factory=list)  # facility ids given a missing alarm


class TestSignalMonitor:
    """Sends the scheduled signals and raises `test_signal_missing` (see the module docstring)."""

    __test__ = False

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        batcher: EventBatcher,
        settings: Any = None,
        *,
        minutes: float | None = None,
        grace_seconds: float | None = None,
        relay_kick: Any = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.batcher = batcher
        if minutes is None:
            minutes = float(getattr(settings, "test_signal_minutes", DEFAULT_MINUTES))
        if grace_seconds is None:
            grace_seconds = float(
                getattr(settings, "test_signal_grace_seconds", DEFAULT_GRACE_SECONDS)
            )
        self.minutes = float(minutes)
        self.grace_seconds = float(grace_seconds)
        self.window = getattr(settings, "correlation_window_seconds", None)
        self.relay_kick = relay_kick
        self.started_at: datetime | None = None
        self._sent_slot: dict[int, int] = {}  # facility id -> last slot sent by this process
        self._pruned_slot: int | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return self.minutes > 0

    def slot(self, now: datetime) -> int:
        return int(now.timestamp() // (self.minutes * 60))

    async def stop(self) -> None:
        self._stopping = True

    async def run(self, every: float = TICK_SECONDS) -> None:
        self._stopping = False
        while not self._stopping:
            try:
                await self.tick(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("test signal tick failed")
            await asyncio.sleep(every)

    async def tick(self, now: datetime) -> TickResult:
        result = TickResult()
        if not self.enabled:
            return result
        if self.started_at is None:
            self.started_at = now
        result.sent = await self.send_due(now)
        result.raised = await self.check(now)
        return result

    async def send_due(self, now: datetime) -> list[int]:
        """One signal per facility and slot, through the ingest batcher."""
        slot = self.slot(now)
        async with self.sessionmaker() as db:
            facilities = (await db.execute(select(Facility.id, Facility.code))).all()
        due = [(fid, code) for fid, code in facilities if self._sent_slot.get(fid) != slot]
        if not due:
            return []
        schedule = f"every {self.minutes:g} min"
        events = [
            ValidatedEvent(
                facility_id=fid,
                facility_code=code,
                type=SIGNAL_TYPE,
                occurred_at=now,
                attributes={"schedule": schedule, "sequence": slot},
                idempotency_key=f"test-signal:{slot}",
                source="system",
                sender=SENDER,
                heard=False,
            )
            for fid, code in due
        ]
        receipts = await self.batcher.submit(events)
        acked = self.clock.now()
        async with self.sessionmaker() as db:
            for (fid, _code), ev, receipt in zip(due, events, receipts, strict=True):
                if receipt.event_id:
                    await record_sent(
                        db,
                        facility_id=fid,
                        event_id=receipt.event_id,
                        sent_at=ev.occurred_at,
                        received_at=acked,
                    )
            if self._pruned_slot != slot:
                await db.execute(delete(TestSignal).where(TestSignal.sent_at < now - RETENTION))
            await db.commit()
        self._pruned_slot = slot
        for fid, _code in due:
            self._sent_slot[fid] = slot
        return [fid for (fid, _c), r in zip(due, receipts, strict=True) if not r.duplicate]

    async def check(self, now: datetime) -> list[int]:
        """Raise `test_signal_missing` for each facility whose latest signal is overdue."""
        assert self.started_at is not None
        if now < self.started_at + timedelta(seconds=self.grace_seconds):
            return []  # just (re)started: let the relay publish what was left first
        async with self.sessionmaker() as db:
            latest_ids = select(func.max(TestSignal.id)).group_by(TestSignal.facility_id)
            rows = (
                await db.scalars(
                    select(TestSignal).where(
                        TestSignal.id.in_(latest_ids), TestSignal.processed_at.is_(None)
                    )
                )
            ).all()
            overdue = [r for r in rows if is_overdue(r, now, self.grace_seconds)]
            if not overdue:
                return []
            alarmed = set(
                (
                    await db.scalars(
                        select(Alarm.facility_id).where(
                            Alarm.facility_id.in_([r.facility_id for r in overdue]),
                            Alarm.rule_key == RULE_KEY,
                            Alarm.state == AlarmState.ACTIVE,
                        )
                    )
                ).all()
            )
        raised = []
        for row in overdue:
            if row.facility_id in alarmed:
                continue
            if await self._raise_missing(row, now):
                raised.append(row.facility_id)
        if raised:
            log.warning("test signal missing at %d facilit(ies)", len(raised))
        return raised

    async def _raise_missing(self, row: TestSignal, now: datetime) -> bool:
        from watchfloor.alarms.service import handle_event

        try:
            async with self.sessionmaker() as db:
                facility = await db.get(Facility, row.facility_id)
                if facility is None:
                    return False
                ev = ValidatedEvent(
                    facility_id=facility.id,
                    facility_code=facility.code,
                    type=MISSING_TYPE,
                    occurred_at=now,
                    attributes={
                        "signal_id": row.id,
                        "sent_at": as_utc(row.sent_at).isoformat(),
                        "grace_seconds": int(self.grace_seconds),
                    },
                    idempotency_key=f"test-signal-missing:{row.id}",
                    source="system",
                    sender=SENDER,
                    heard=False,
                )
                (receipt,) = await write_events(db, self.clock, [ev])
                if receipt.duplicate or not receipt.event_id:
                    return False  # raised before (and perhaps cleared since): once per signal
                alarms = await handle_event(
                    db,
                    self.clock,
                    event_message(receipt.event_id, ev),
                    correlation_window_seconds=self.window,
                )
                await db.commit()
        except IntegrityError:  # another process raised it at the same moment
            return False
        if self.relay_kick is not None:
            self.relay_kick()
        return bool(alarms)


__all__ = [
    "CONSUMER",
    "RULE_KEY",
    "SIGNAL_TYPE",
    "TestSignalMonitor",
    "TestSignalStatus",
    "facility_status",
    "handle_message",
    "record_processed",
    "record_sent",
    "register",
]
