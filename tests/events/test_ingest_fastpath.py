"""The ingest write path: SQLite's plain executemany writes what the Core types would, the
device directory survives last-seen updates but not registry changes."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from watchfloor.bus.models import OutboxMessage
from watchfloor.events.ingest import (
    DeviceDirectory,
    ValidatedEvent,
    event_message,
    event_subject,
    write_events,
)
from watchfloor.events.models import Event
from watchfloor.sites.models import Device


async def test_written_rows_read_back_as_sent(sessionmaker, clock, site) -> None:  # type: ignore[no-untyped-def]
    when = clock.now() - timedelta(seconds=3, microseconds=0)
    events = [
        ValidatedEvent(
            facility_id=site.alpha_id,
            facility_code="ALPHA",
            type="door.forced",
            occurred_at=when + timedelta(microseconds=i),
            device_id=site.door_id,
            device_code="DOOR-1",
            attributes={"door": "Front \u00e9", "n": i, "nested": {"a": [1, None]}},
            idempotency_key=f"k-{i}",
            sender="token:t",
        )
        for i in range(3)
    ]
    async with sessionmaker() as db:
        receipts = await write_events(db, clock, events)
        await db.commit()
    ids = [r.event_id for r in receipts]
    assert len(set(ids)) == 3 and all(i > 0 for i in ids)
    async with sessionmaker() as db:
        stored = (await db.scalars(select(Event).order_by(Event.id))).all()
        assert [e.id for e in stored] == ids
        for e, sent in zip(stored, events, strict=True):
            assert e.occurred_at == sent.occurred_at
            assert e.received_at == clock.now()
            assert e.attributes == sent.attributes
            assert e.idempotency_key == sent.idempotency_key
        # found by time (the stored text compares like the Core types' text)
        later = (await db.scalars(select(Event.id).where(Event.occurred_at > when))).all()
        assert sorted(later) == ids[1:]
        out = (await db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        assert [o.msg_id for o in out] == [f"event:{i}" for i in ids]
        for o, eid, sent in zip(out, ids, events, strict=True):
            assert o.subject == event_subject("ALPHA", "door.forced")
            assert o.payload == json.loads(json.dumps(event_message(eid, sent)))
            assert o.published_at is None and o.created_at == clock.now()
    # the same keys again: acknowledged with the original ids, stored once
    async with sessionmaker() as db:
        again = await write_events(db, clock, events)
        await db.commit()
    assert [(r.event_id, r.duplicate) for r in again] == [(i, True) for i in ids]


async def test_directory_survives_last_seen_but_not_a_code_change(  # type: ignore[no-untyped-def]
    sessionmaker, clock, site
) -> None:
    directory = DeviceDirectory(sessionmaker)
    assert (await directory.device(site.alpha_id, "DOOR-1")) is not None
    async with sessionmaker() as db:
        door = await db.get(Device, site.door_id)
        assert door is not None
        door.last_seen_at = clock.now()
        door.status = "online"
        await db.commit()
    assert directory._devices  # still cached
    async with sessionmaker() as db:
        door = await db.get(Device, site.door_id)
        assert door is not None
        door.code = "DOOR-9"
        await db.commit()
    assert not directory._devices  # dropped: the new code is found at once
    assert (await directory.device(site.alpha_id, "DOOR-9")) is not None
