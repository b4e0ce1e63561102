"""Ingest with the runtime running: the app's own batcher stores events, the relay publishes them
and the alarms domain turns them into alarms (the whole path, no sleeping)."""

from __future__ import annotations

from sqlalchemy import select

from conftest import iso
from watchfloor.alarms.models import Alarm
from watchfloor.events.ingest import EventBatcher


async def test_panic_event_becomes_an_alarm(live_client, running_app, db, clock, site, make_token):
    headers = await make_token("device", facility="ALPHA")
    runtime = running_app.state.runtime
    assert isinstance(runtime.batcher, EventBatcher)
    body = {"device": "PANIC-1", "type": "panic.pressed", "occurred_at": iso(clock.now())}
    r = await live_client.post("/api/v1/events", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert runtime.batcher.events_written >= 1  # the runtime's batcher, not a stand-in
    await runtime.drain()
    alarm = (
        await db.execute(select(Alarm).where(Alarm.event_id == r.json()["event_id"]))
    ).scalar_one()
    assert alarm.priority == 1 and alarm.device_id == site.panic_id
