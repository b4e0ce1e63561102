"""The group-commit batcher: many callers, few transactions, nothing acknowledged before commit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from watchfloor.bus.models import OutboxMessage
from watchfloor.events import ingest
from watchfloor.events.ingest import EventBatcher, ValidatedEvent
from watchfloor.events.models import Event


def make(site, clock, n: int = 1, key: str | None = None) -> list[ValidatedEvent]:  # type: ignore[no-untyped-def]
    return [
        ValidatedEvent(
            facility_id=site.alpha_id,
            facility_code="ALPHA",
            type="motion.detected",
            occurred_at=clock.now(),
            device_id=site.door_id,
            device_code="DOOR-1",
            idempotency_key=key,
            attributes={"count": i},
        )
        for i in range(n)
    ]


async def test_concurrent_submissions_share_transactions(site, clock, sessionmaker, db):
    batcher = EventBatcher(sessionmaker, clock, max_batch=500, max_wait_ms=5)
    sizes: list[int] = []
    batcher.on_commit.append(sizes.append)
    results = await asyncio.gather(*(batcher.submit(make(site, clock)) for _ in range(60)))
    ids = [r[0].event_id for r in results]
    assert len(set(ids)) == 60
    assert sum(sizes) == 60
    assert batcher.transactions == len(sizes) < 60  # group commit: fewer commits than callers
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 60
    assert (await db.execute(select(func.count(OutboxMessage.id)))).scalar_one() == 60
    await batcher.close()


async def test_big_submission_keeps_order_and_ids(site, clock, sessionmaker, db):
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=0)
    receipts = await batcher.submit(make(site, clock, 1200))
    rows = (await db.execute(select(Event.id, Event.attributes).order_by(Event.id))).all()
    assert [r.event_id for r in receipts] == [r[0] for r in rows]
    assert [r[1]["count"] for r in rows] == list(range(1200))
    msgs = (await db.execute(select(OutboxMessage.msg_id).order_by(OutboxMessage.id))).scalars()
    assert list(msgs) == [f"event:{r.event_id}" for r in receipts]


async def test_idempotency_across_concurrent_callers(site, clock, sessionmaker, db):
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=5)
    results = await asyncio.gather(
        *(batcher.submit(make(site, clock, key="same")) for _ in range(10))
    )
    ids = {r[0].event_id for r in results}
    assert len(ids) == 1
    assert sum(not r[0].duplicate for r in results) == 1
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 1
    again = await batcher.submit(make(site, clock, key="same"))
    assert again[0].duplicate and again[0].event_id in ids


async def test_failed_write_is_not_acknowledged(site, clock, sessionmaker, db, monkeypatch):
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=0)
    # the write fails after its rows went in (SQLite: inside the one-trip transaction on the
    # connection's thread; PostgreSQL: inside the session's transaction)
    sqlite = db.get_bind().dialect.name == "sqlite"
    name = "_write_sync" if sqlite else "write_events"
    real = getattr(ingest, name)

    def broken_sync(*args):  # type: ignore[no-untyped-def]
        real(*args)
        raise OSError("disk full")

    async def broken(session, clk, events):  # type: ignore[no-untyped-def]
        await real(session, clk, events)
        raise OSError("disk full")

    monkeypatch.setattr(ingest, name, broken_sync if sqlite else broken)
    with pytest.raises(OSError):
        await batcher.submit(make(site, clock, 3))
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 0
    monkeypatch.setattr(ingest, name, real)
    assert len(await batcher.submit(make(site, clock, 2))) == 2  # the writer keeps going
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 2


async def test_idempotency_race_with_another_process_is_retried(
    site, clock, sessionmaker, db, monkeypatch
):
    """Another process stored the key between our look-up and our insert: the unique constraint
    refuses our insert, the batch is retried and answers with the other process's event.
    (PostgreSQL: SQLite looks nothing up first; its insert skips stored keys itself.)"""
    if db.get_bind().dialect.name == "sqlite":
        pytest.skip("SQLite inserts with ON CONFLICT DO NOTHING: there is no look-up to race")
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=0)
    [theirs] = await batcher.submit(make(site, clock, key="raced"))
    real = ingest._existing_keys
    calls = 0

    async def blind_once(session, keys):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return {} if calls == 1 else await real(session, keys)

    monkeypatch.setattr(ingest, "_existing_keys", blind_once)
    [ours, other] = await batcher.submit(make(site, clock, key="raced") + make(site, clock))
    assert ours.duplicate and ours.event_id == theirs.event_id
    assert not other.duplicate
    assert calls == 2
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 2


async def test_stored_keys_are_answered_with_the_stored_event_and_not_relayed_again(
    site, clock, sessionmaker, db
):
    """A batch mixing new events, keys stored by earlier batches and keys repeated within the
    batch: each repeat is answered with the original event's id, stored once, relayed once."""
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=0)
    first = await batcher.submit(make(site, clock, key="a") + make(site, clock, key="b"))
    mixed = (
        make(site, clock, key="b")
        + make(site, clock, key="c")
        + make(site, clock, key="a")
        + make(site, clock, key="c")
        + make(site, clock)
    )
    receipts = await batcher.submit(mixed)
    assert [r.duplicate for r in receipts] == [True, False, True, True, False]
    assert receipts[0].event_id == first[1].event_id
    assert receipts[2].event_id == first[0].event_id
    assert receipts[3].event_id == receipts[1].event_id
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 4
    msg_ids = (await db.execute(select(OutboxMessage.msg_id))).scalars().all()
    stored = {r.event_id for r in first} | {receipts[1].event_id, receipts[4].event_id}
    assert sorted(msg_ids) == sorted(f"event:{i}" for i in stored)
