"""Bus subscriptions of the alarms domain: every stored event is evaluated against the rules.

Two consumers share the work so a panic never waits behind routine traffic:
- "alarms-life-safety" takes the life-safety event types (panic, duress, weapon) on their own
  subjects, with a worker of its own;
- "alarms" takes every other event type. Events that no rule of their facility can raise now
  (heartbeats, motion in opening hours: most of the traffic) are acknowledged without touching
  the database (`RulePrefilter`), and an evaluation that raises nothing writes nothing.

Each handled message is one transaction: the dedupe record (`first_delivery`), device
bookkeeping, alarms, incidents and the outbox messages commit together, so a crash part-way
leaves nothing half-done and the redelivered message is handled afresh; a message already
handled is acknowledged and skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from watchfloor.alarms import rules as evaluation
from watchfloor.alarms.cues import LifeSafetyCues
from watchfloor.alarms.models import AlarmRule
from watchfloor.alarms.service import handle_event
from watchfloor.bus import Message, outbox, subject_token
from watchfloor.clock import Clock
from watchfloor.db import urgent_writes
from watchfloor.events.ingest import LIFE_SAFETY_TYPES
from watchfloor.sites.models import Facility

log = logging.getLogger(__name__)

CONSUMER = "alarms"
LIFE_SAFETY_CONSUMER = "alarms-life-safety"
SUBJECT = "event.>"
# device bookkeeping the handler does whatever the rules say
ALWAYS_HANDLED = LIFE_SAFETY_TYPES | {"device.offline", "device.trouble", "device.restored"}
RULES_TTL_SECONDS = 2.0
#: rule conditions the prefilter evaluates itself (others are left to the alarm stage)
PREFILTERED_CONDITIONS = frozenset({"schedule", "attributes"})
_FLUSHED = "watchfloor.alarms.flushed"


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: Any) -> None:
    session.info[_FLUSHED] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_flush(session: Session, *_args: Any) -> None:
    session.info.pop(_FLUSHED, None)


@dataclass(frozen=True)
class _FacilityRules:
    loaded_at: float
    generation: int
    hours: dict[str, Any] | None
    timezone: str | None
    rules: dict[str, list[dict[str, Any]]]  # event type -> the conditions of its rules


_generation = 0  # bumped when a rule or a facility changes in this process


@event.listens_for(Session, "after_flush")
def _rules_changed(session: Session, _context: Any) -> None:
    global _generation
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, AlarmRule | Facility):
            _generation += 1
            return


class RulePrefilter:
    """Drops, without touching the database, the routine events that no rule of their facility
    can turn into an alarm now: a type no enabled rule uses, motion while the facility is open,
    an attribute below a rule's threshold. Anything a rule might raise (zone and count conditions
    are left to the alarm stage) goes on to the full handling. A facility's rules and hours are
    kept for `RULES_TTL_SECONDS` and dropped at once when this process changes a rule or a
    facility (another process's edit is seen within the TTL)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._facilities: dict[int, _FacilityRules] = {}

    async def may_raise(self, data: dict[str, Any]) -> bool:
        event_type = str(data.get("type") or "")
        if event_type in ALWAYS_HANDLED:
            return True
        try:
            facility_id = int(data["facility_id"])
        except (KeyError, TypeError, ValueError):
            return True  # malformed: let the alarm stage decide (it ignores what it cannot use)
        found = await self._rules(facility_id)
        candidates = found.rules.get(event_type)
        if not candidates:
            return False
        occurred = _when(data.get("occurred_at"))
        attributes = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
        for cond in candidates:
            if set(cond) - PREFILTERED_CONDITIONS:
                return True  # zones or a count: the alarm stage looks them up
            if occurred is None:
                return True
            if not evaluation.schedule_matches(cond, found.hours, found.timezone, occurred):
                continue
            if evaluation.attributes_match(cond, attributes or {}):
                return True
        return False

    async def _rules(self, facility_id: int) -> _FacilityRules:
        hit = self._facilities.get(facility_id)
        now = time.monotonic()
        if (
            hit is not None
            and hit.generation == _generation
            and now - hit.loaded_at < (RULES_TTL_SECONDS)
        ):
            return hit
        generation = _generation
        async with self._sessionmaker() as db:
            facility = (
                await db.execute(
                    select(Facility.operating_hours, Facility.timezone).where(
                        Facility.id == facility_id
                    )
                )
            ).one_or_none()
            rules: dict[str, list[dict[str, Any]]] = {}
            for rule in await evaluation.effective_rules(db, facility_id):
                rules.setdefault(rule.event_type, []).append(dict(rule.conditions or {}))
        found = _FacilityRules(
            now,
            generation,
            dict(facility[0] or {}) if facility is not None else None,
            facility[1] if facility is not None else None,
            rules,
        )
        if len(self._facilities) > 10_000:
            self._facilities.clear()
        self._facilities[facility_id] = found
        return found


def _when(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


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
        # it needs no dedupe look-up, no dedupe record and takes no write lock at all. Only an
        # evaluation that would change something asks whether this message was handled before
        # (a redelivery after a crash): then it is undone.
        with db.no_autoflush:
            alarms = await handle_event(
                db, clock, msg.data, correlation_window_seconds=correlation_window_seconds
            )
        if not alarms and not (db.new or db.dirty or db.deleted) and not _wrote(db):
            await db.rollback()
            return 0
        if await outbox.handled_before(db, CONSUMER, msg.msg_id):
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
    prefilter = RulePrefilter(sessionmaker)

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
        if not await prefilter.may_raise(msg.data):
            return  # no rule can raise it now; ingest already recorded the device as heard
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
