"""The transactional outbox: only committed messages are published, in order, and a crash
loses none; consumers recognise a redelivery. Runs on both buses and both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from bus_helpers import Inbox
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import Message, outbox
from watchfloor.bus.memory import MemoryBus
from watchfloor.bus.models import OutboxMessage, ProcessedMessage
from watchfloor.bus.outbox import OutboxRelay
from watchfloor.clock import FakeClock

Maker = async_sessionmaker[AsyncSession]


async def _unpublished(sessionmaker: Maker) -> int:
    async with sessionmaker() as db:
        return int(
            await db.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
            )
            or 0
        )


async def test_relay_publishes_exactly_the_committed_rows_in_order(
    sessionmaker: Maker, bus: Any, clock: FakeClock
) -> None:
    inbox = Inbox()
    await bus.subscribe("event.>", "alarms", inbox)
    async with sessionmaker() as db:
        first = outbox.add(db, "event.HQ.panic_pressed", {"event_id": 1}, clock=clock)
        second = outbox.add(db, "event.HQ.door_forced", {"event_id": 2}, clock=clock)
        await db.commit()
    async with sessionmaker() as db:
        outbox.add(db, "event.HQ.glass_break", {"event_id": 99}, clock=clock)
        await db.rollback()  # the change failed: its message must never be sent
    async with sessionmaker() as db:
        [third] = await outbox.add_many(db, [("event.FO.motion_detected", {"event_id": 3})])
        await db.commit()

    relay = OutboxRelay(sessionmaker, bus, clock)
    await relay.drain(10)
    messages = await inbox.wait_for(3)
    await bus.wait_idle(10)
    assert [m.msg_id for m in messages] == [first, second, third]
    assert [m.data["event_id"] for m in messages] == [1, 2, 3]
    assert await _unpublished(sessionmaker) == 0
    async with sessionmaker() as db:
        rows = (await db.execute(select(OutboxMessage))).scalars().all()
    assert len(rows) == 3 and all(r.published_at == clock.now() for r in rows)
    assert relay.published_total == 3


async def test_a_commit_wakes_the_running_relay(
    sessionmaker: Maker, bus: Any, clock: FakeClock
) -> None:
    inbox = Inbox()
    await bus.subscribe("alarm.>", "console", inbox)
    relay = OutboxRelay(sessionmaker, bus, clock, poll_seconds=3600)  # polling alone: an hour
    task = asyncio.create_task(relay.run())
    try:
        async with sessionmaker() as db:
            outbox.add(db, "alarm.HQ.p1", {"alarm_id": 1})
            await db.commit()
        [message] = await inbox.wait_for(1)
        assert message.subject == "alarm.HQ.p1"
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await relay.close()


async def test_rows_left_by_a_crash_are_published_by_the_next_relay(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    """Memory bus: the process dies while a handler is still working on the messages. The rows
    stay unpublished; after the restart they are delivered again and the handler's
    first_delivery check skips the ones it had already committed."""
    handled: list[str] = []
    blocked = asyncio.Event()

    async def stuck(message: Message) -> None:
        blocked.set()
        await asyncio.Event().wait()  # never finishes: the crash happens meanwhile

    crashed_bus = MemoryBus()
    await crashed_bus.subscribe("event.>", "alarms", stuck)
    async with sessionmaker() as db:
        ids = [outbox.add(db, f"event.HQ.t{i}", {"i": i}) for i in range(3)]
        await db.commit()
    crashed = OutboxRelay(sessionmaker, crashed_bus, clock)
    assert await crashed.relay_once() == 3
    await asyncio.wait_for(blocked.wait(), 5)
    await crashed.close()  # the process is gone: publishes in flight are abandoned
    await crashed_bus.close()
    assert await _unpublished(sessionmaker) == 3

    # the first message had in fact been handled and committed before the crash
    async with sessionmaker() as db:
        assert await outbox.first_delivery(db, "alarms", ids[0])
        await db.commit()

    async def handler(message: Message) -> None:
        async with sessionmaker() as db:
            if not await outbox.first_delivery(db, "alarms", message.msg_id):
                return
            handled.append(message.msg_id)
            await db.commit()

    restarted_bus = MemoryBus()
    await restarted_bus.subscribe("event.>", "alarms", handler)
    restarted = OutboxRelay(sessionmaker, restarted_bus, clock)
    await restarted.drain(10)
    await restarted_bus.close()
    assert handled == ids[1:]
    assert await _unpublished(sessionmaker) == 0


class RecordingBus:
    """A broker-like bus (publish returns once stored) that can be told to fail."""

    publish_waits_for_handlers = False

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.published: list[tuple[str, str]] = []
        self.fail_on = fail_on or set()

    async def publish(self, subject: str, data: dict[str, Any], msg_id: str) -> None:
        if msg_id in self.fail_on:
            raise ConnectionError("broker unavailable")
        self.published.append((subject, msg_id))


async def test_broker_relay_stops_at_a_failed_publish_and_retries_it(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    async with sessionmaker() as db:
        ids = [outbox.add(db, f"notify.request.{i}", {"i": i}) for i in range(4)]
        await db.commit()
    bus = RecordingBus(fail_on={ids[2]})
    relay = OutboxRelay(sessionmaker, bus, clock)  # type: ignore[arg-type]
    assert await relay.relay_once() == 2
    assert [m for _, m in bus.published] == ids[:2]
    async with sessionmaker() as db:
        failed = await db.scalar(select(OutboxMessage).where(OutboxMessage.msg_id == ids[2]))
        assert failed is not None and failed.attempts == 1 and failed.published_at is None
    bus.fail_on.clear()  # the broker is back
    assert await relay.relay_once() == 2
    assert [m for _, m in bus.published] == ids  # still in order, none twice
    assert await relay.relay_once() == 0


async def test_first_delivery_is_true_once_per_consumer(sessionmaker: Maker) -> None:
    async with sessionmaker() as db:
        assert await outbox.first_delivery(db, "alarms", "m-1") is True
        assert await outbox.first_delivery(db, "alarms", "m-1") is False
        assert await outbox.first_delivery(db, "notify", "m-1") is True
        await db.commit()
    async with sessionmaker() as db:
        assert await outbox.first_delivery(db, "alarms", "m-1") is False
        assert await outbox.first_delivery(db, "alarms", "m-2") is True
        await db.rollback()  # the handler failed: its record goes with its work
    async with sessionmaker() as db:
        assert await outbox.first_delivery(db, "alarms", "m-2") is True
        await db.commit()


async def test_purge_drops_old_published_rows_and_dedupe_records(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(sessionmaker, bus, clock, retention=timedelta(hours=24))  # type: ignore[arg-type]
    async with sessionmaker() as db:
        outbox.add(db, "alarm.HQ.p1", {"old": True}, clock=clock)
        await outbox.first_delivery(db, "alarms", "old-msg", clock=clock)
        await db.commit()
    await relay.relay_once()
    clock.advance(hours=25)
    async with sessionmaker() as db:
        outbox.add(db, "alarm.HQ.p2", {"waiting": True}, clock=clock)  # not yet published
        await outbox.first_delivery(db, "alarms", "new-msg", clock=clock)
        await db.commit()
    assert await relay.purge() == (1, 1)
    async with sessionmaker() as db:
        left = (await db.execute(select(OutboxMessage.payload))).scalars().all()
        seen = (await db.execute(select(ProcessedMessage.msg_id))).scalars().all()
    assert left == [{"waiting": True}]
    assert seen == ["new-msg"]


async def test_add_can_be_awaited_or_not(sessionmaker: Maker) -> None:
    async with sessionmaker() as db:
        plain = outbox.add(db, "alarm.HQ.p1", {"a": 1})
        awaited = await outbox.add(db, "alarm.HQ.p2", {"a": 2}, msg_id="chosen-id")
        await db.commit()
    assert isinstance(plain, str) and len(plain) == 32
    assert awaited == "chosen-id"
    assert await _unpublished(sessionmaker) == 2
