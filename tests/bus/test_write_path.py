"""The low-latency write path of the alarm pipeline: SQLite writers queue in the process (life
safety first) instead of in SQLite's busy handler; committed outbox rows reach the bus without a
relay pass; life-safety messages are handled concurrently. Runs on both databases (the write gate
itself only exists on SQLite)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bus_helpers import Inbox
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.alarms.handlers import CONSUMER, LifeSafetyHandler
from watchfloor.bus import Message, outbox
from watchfloor.bus.memory import MemoryBus
from watchfloor.bus.models import ProcessedMessage
from watchfloor.bus.outbox import OutboxRelay
from watchfloor.clock import FakeClock
from watchfloor.db import urgent_writes, write_gate

Maker = async_sessionmaker[AsyncSession]


def _engine(sessionmaker: Maker) -> Any:
    return sessionmaker.kw["bind"]


def _sqlite_only(sessionmaker: Maker) -> None:
    if _engine(sessionmaker).dialect.name != "sqlite":
        pytest.skip("the in-process write gate exists for SQLite only (PostgreSQL has row locks)")


async def _until(condition: Any) -> None:
    """Yield to the event loop until `condition()` holds (no sleeping, no clock)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_sqlite_writers_queue_in_the_process_life_safety_first(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    _sqlite_only(sessionmaker)
    gate = write_gate(_engine(sessionmaker))
    assert gate is not None
    order: list[str] = []

    async def writer(name: str, urgent: bool) -> None:
        async with sessionmaker() as db:
            if urgent:
                with urgent_writes():
                    await outbox.first_delivery(db, "gate-test", name, clock=clock)
            else:
                await outbox.first_delivery(db, "gate-test", name, clock=clock)
            order.append(name)
            await db.commit()

    async with sessionmaker() as holder:
        await outbox.first_delivery(holder, "gate-test", "holder", clock=clock)
        assert gate.held
        routine = asyncio.create_task(writer("routine", urgent=False))
        await _until(lambda: len(gate._normal) == 1)
        panic = asyncio.create_task(writer("panic", urgent=True))
        await _until(lambda: len(gate._urgent) == 1)
        await holder.commit()
    await asyncio.gather(routine, panic)
    assert order == ["panic", "routine"]  # the later, urgent writer went first
    assert not gate.held
    async with sessionmaker() as db:
        seen = set((await db.scalars(select(ProcessedMessage.msg_id))).all())
    assert {"holder", "routine", "panic"} <= seen


async def test_a_rolled_back_or_closed_write_frees_the_gate(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    _sqlite_only(sessionmaker)
    gate = write_gate(_engine(sessionmaker))
    assert gate is not None
    async with sessionmaker() as db:
        await outbox.first_delivery(db, "gate-test", "rolled-back", clock=clock)
        assert gate.held
        await db.rollback()
        assert not gate.held
    async with sessionmaker() as db:
        await outbox.first_delivery(db, "gate-test", "abandoned", clock=clock)
        assert gate.held
    assert not gate.held  # closing the session without a commit rolls back and frees it
    async with sessionmaker() as db:
        assert await outbox.handled_before(db, "gate-test", "abandoned") is False


async def test_committed_rows_reach_the_bus_without_a_relay_pass(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    bus = MemoryBus()
    await bus.start()
    inbox = Inbox()
    await bus.subscribe("alarm.>", "console", inbox)
    relay = OutboxRelay(sessionmaker, bus, clock, poll_seconds=3600)
    real_scan = relay._start_new
    scans = 0

    async def no_scan(*, full: bool) -> int:  # the scan finds nothing: only the hand-off works
        nonlocal scans
        scans += 1
        return 0

    relay._start_new = no_scan  # type: ignore[method-assign]
    task = asyncio.create_task(relay.run())
    try:
        await _until(lambda: relay._running)
        async with sessionmaker() as db:
            outbox.add(db, "alarm.HQ.p1", {"alarm_id": 7})
            await db.rollback()  # rolled back: nothing may be published
        async with sessionmaker() as db:
            outbox.add(db, "alarm.HQ.p1", {"alarm_id": 8})
            await db.commit()
        [message] = await inbox.wait_for(1)
        assert message.data == {"alarm_id": 8}
        relay.stop()
        await asyncio.wait_for(task, 10)
        relay._start_new = real_scan  # type: ignore[method-assign]
        await relay.drain(10)  # marks it published; the scan does not publish it again
        assert [m.data for m in inbox.messages] == [{"alarm_id": 8}]
        assert await relay.pending() == 0
    finally:
        relay.stop()
        await relay.close()
        await bus.close()


async def test_life_safety_messages_are_handled_concurrently_and_stay_idempotent(
    sessionmaker: Maker, clock: FakeClock
) -> None:
    handler = LifeSafetyHandler(sessionmaker, clock)
    messages = [
        Message("event.HQ.panic_pressed", {"type": "panic.pressed"}, f"ls-{i}") for i in range(5)
    ]
    assert await asyncio.gather(*(handler.handle(m) for m in messages)) == [0] * 5
    assert await handler.handle(messages[0]) == 0  # a redelivery is skipped
    async with sessionmaker() as db:
        recorded = await db.scalar(
            select(func.count())
            .select_from(ProcessedMessage)
            .where(ProcessedMessage.consumer == CONSUMER, ProcessedMessage.msg_id.like("ls-%"))
        )
    assert recorded == 5
