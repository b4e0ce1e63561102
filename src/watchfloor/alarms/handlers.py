"""Bus subscriptions of the alarms domain: every stored event is evaluated against the rules.

Two consumers share the work so a panic never waits behind routine traffic:
- "alarms-life-safety" takes the life-safety event types (panic, duress, weapon) on their own
  subjects, with a worker of its own;
- "alarms" takes every other event type. Types that no enabled rule uses and that need no device
  bookkeeping (heartbeats, most of the traffic) are acknowledged without touching the database.

Each handled message is one transaction: the dedupe record (`first_delivery`), device
bookkeeping, alarms, incidents and the outbox messages commit together, so a crash part-way
leaves nothing half-done and the redelivered message is handled afresh; a message already
handled is acknowledged and skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from watchfloor.alarms.cues import LifeSafetyCues
from watchfloor.alarms.models import AlarmRule
from watchfloor.alarms.service import handle_event
from watchfloor.bus import Message, outbox, subject_token
from watchfloor.clock import Clock
from watchfloor.db import urgent_writes
from watchfloor.events.ingest import LIFE_SAFETY_TYPES

log = logging.getLogger(__name__)

CONSUMER = "alarms"
LIFE_SAFETY_CONSUMER = "alarms-life-safety"
SUBJECT = "event.>"
# device bookkeeping the handler does whatever the rules say
ALWAYS_HANDLED = LIFE_SAFETY_TYPES | {"device.offline", "device.trouble", "device.restored"}
RULE_TYPES_TTL_SECONDS = 2.0
_FLUSHED = "watchfloor.alarms.flushed"


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: Any) -> None:
    session.info[_FLUSHED] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_flush(session: Session, *_args: Any) -> None:
    session.info.pop(_FLUSHED, None)


class RuleTypes:
    """The event types some enabled rule uses, re-read at most every couple of seconds."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._types: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    async def get(self) -> frozenset[str]:
        if time.monotonic() - self._read_at >= RULE_TYPES_TTL_SECONDS:
            async with self._sessionmaker() as db:
                rows = await db.scalars(
                    select(AlarmRule.event_type).where(AlarmRule.enabled.is_(True)).distinct()
                )
                self._types = frozenset(rows.all())
            self._read_at = time.monotonic()
        return self._types


async def handle_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    msg: Message,
    *,
    correlation_window_seconds: float | None = None,
) -> int:
    """Handle one `event.*` message; returns how many alarms it raised (0 for a redelivery)."""

    async with sessionmaker() as db:
        # Reads first: most routine events raise nothing (motion in opening hours, a refused
        # card below its count), and an evaluation that changes nothing is safe to repeat, so
        # it needs no dedupe record and takes no write lock at all.
        if await outbox.handled_before(db, CONSUMER, msg.msg_id):
            return 0
        with db.no_autoflush:
            alarms = await handle_event(
                db, clock, msg.data, correlation_window_seconds=correlation_window_seconds
            )
        if not alarms and not (db.new or db.dirty or db.deleted) and not _wrote(db):
            await db.rollback()
            return 0
        if not await outbox.first_delivery(db, CONSUMER, msg.msg_id, clock=clock):
            raise RuntimeError(f"{msg.msg_id} was handled by another consumer meanwhile")
        await db.commit()
    return len(alarms)


def _wrote(db: AsyncSession) -> bool:
    """Whether the session flushed changes in its transaction (outbox messages or rows)."""
    return bool(db.sync_session.info.get("watchfloor.outbox_dirty")) or bool(
        db.sync_session.info.get(_FLUSHED)
    )


class LifeSafetyHandler:
    """The life-safety consumer (panic, duress, weapon). Several bus workers call `handle`
    concurrently, each message in its own transaction, written last: the look-ups of one
    panic overlap another's write, and on SQLite its write transaction jumps the in-process
    write queue (`db.urgent_writes`), so a burst of panics does not queue one whole
    transaction after another behind routine writes."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        correlation_window_seconds: float | None = None,
        cues: LifeSafetyCues | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.window = correlation_window_seconds
        self.cues = cues
        self.transactions = 0

    async def handle(self, msg: Message) -> int:
        """Handle one message; returns how many alarms it raised (0 for a redelivery)."""
        if self.cues is not None:
            await self.cues.cue(msg.data)  # the console's P1 cue, before the bookkeeping
        with urgent_writes():
            async with self.sessionmaker() as db:
                count = await self._handle_in(db, msg)
                await db.commit()
        self.transactions += 1
        return count

    async def _handle_in(self, db: AsyncSession, msg: Message) -> int:
        """Reads first, writes last: the look-ups (facility, device, zone, rules, earlier
        alarms) run before the transaction's first write, so on SQLite they do not hold the
        write lock that every other writer is waiting for. The dedupe record is written in the
        same transaction; if another process recorded it meanwhile, the whole transaction fails
        and the bus redelivers, to be skipped."""
        if await outbox.handled_before(db, CONSUMER, msg.msg_id):
            return 0
        with db.no_autoflush:
            alarms = await handle_event(
                db, self.clock, msg.data, correlation_window_seconds=self.window
            )
        if not await outbox.first_delivery(db, CONSUMER, msg.msg_id, clock=self.clock):
            raise RuntimeError(f"{msg.msg_id} was handled by another consumer meanwhile")
        return len(alarms)


#: bus workers per life-safety subject on the in-process bus (messages handled concurrently)
LIFE_SAFETY_WORKERS = 16


async def register(runtime: Any) -> None:
    """Subscribe both consumers; the runtime awaits this at start."""
    sessionmaker = runtime.sessionmaker
    clock = runtime.clock
    window = getattr(runtime.settings, "correlation_window_seconds", None)
    rule_types = RuleTypes(sessionmaker)

    # SQLite: its write transactions go before every queued routine write (db.urgent_writes)
    life_safety = LifeSafetyHandler(
        sessionmaker, clock, window, cues=LifeSafetyCues(sessionmaker, runtime.bus)
    )

    async def _on_life_safety(msg: Message) -> None:
        await life_safety.handle(msg)

    async def _on_event(msg: Message) -> None:
        event_type = str(msg.data.get("type") or "")
        if event_type in LIFE_SAFETY_TYPES:
            return  # the life-safety consumer has it
        if event_type not in ALWAYS_HANDLED and event_type not in await rule_types.get():
            return  # no rule looks at it; ingest already recorded the device as heard
        await handle_message(sessionmaker, clock, msg, correlation_window_seconds=window)

    in_process = bool(getattr(runtime.bus, "publish_waits_for_handlers", False))
    workers = LIFE_SAFETY_WORKERS if in_process else 1
    for event_type in sorted(LIFE_SAFETY_TYPES):
        subject = f"event.*.{subject_token(event_type)}"
        # several workers on the in-process bus, so one panic's look-ups overlap another's
        # write (a broker bus shares a durable across processes instead)
        workers = (
            LIFE_SAFETY_WORKERS if getattr(runtime.bus, "publish_waits_for_handlers", False) else 1
        )
        for _ in range(workers):
            await runtime.bus.subscribe(
                subject, LIFE_SAFETY_CONSUMER + "-" + subject_token(event_type), _on_life_safety
            )
    await runtime.bus.subscribe(SUBJECT, CONSUMER, _on_event)
