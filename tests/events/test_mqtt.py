"""MQTT ingest: topic and payload handling (no broker needed) and a real Mosquitto round trip
(needs WATCHFLOOR_MQTT_URL, e.g. mqtt://127.0.0.1:1883; CI sets it)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from sqlalchemy import func, select

from conftest import iso
from watchfloor.events.ingest import EventBatcher
from watchfloor.events.models import DeadLetter, Event
from watchfloor.events.mqtt import MqttIngest

MQTT_URL = os.environ.get("WATCHFLOOR_MQTT_URL", "")


@pytest.fixture
def bridge(sessionmaker, clock):  # type: ignore[no-untyped-def]
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=0)
    return MqttIngest(sessionmaker, clock, batcher, url=MQTT_URL or "mqtt://127.0.0.1:1")


def payload(clock, **extra) -> bytes:  # type: ignore[no-untyped-def]
    body = {"type": "door.forced", "occurred_at": iso(clock.now())}
    body.update(extra)
    return json.dumps(body).encode()


async def test_valid_message_is_stored(bridge, db, clock, site):
    receipt = await bridge.handle("watchfloor/ALPHA/DOOR-1/event", payload(clock))
    assert receipt is not None
    stored = await db.get(Event, receipt.event_id)
    assert stored is not None
    assert (stored.source, stored.device_id, stored.sender) == (
        "mqtt",
        site.door_id,
        "mqtt:ALPHA/DOOR-1",
    )
    again = await bridge.handle(
        "watchfloor/ALPHA/DOOR-1/event", payload(clock, idempotency_key="x")
    )
    dup = await bridge.handle("watchfloor/ALPHA/DOOR-1/event", payload(clock, idempotency_key="x"))
    assert again is not None and dup is not None
    assert dup.duplicate and dup.event_id == again.event_id


@pytest.mark.parametrize(
    ("topic", "body", "reason"),
    [
        ("watchfloor/NOWHERE/DOOR-1/event", None, "no facility"),
        ("watchfloor/ALPHA/NOPE/event", None, "no device"),
        ("watchfloor/ALPHA/DOOR-1/status", None, "is not watchfloor"),
        ("watchfloor/ALPHA/DOOR-1/event", b"\x00\xff garbage", "not UTF-8 JSON"),
        ("watchfloor/ALPHA/DOOR-1/event", b"42", "JSON object"),
        ("watchfloor/ALPHA/DOOR-1/event", b'{"type": "door.forced"}', "occurred_at"),
        (
            "watchfloor/ALPHA/DOOR-1/event",
            b'{"type": "x.y", "occurred_at": "2026-01-05T12:00Z"}',
            "unknown event type",
        ),
    ],
)
async def test_bad_messages_are_dead_lettered(bridge, db, clock, site, topic, body, reason):
    raw = body if body is not None else payload(clock)
    assert await bridge.handle(topic, raw) is None
    letter = (await db.execute(select(DeadLetter))).scalar_one()
    assert reason in letter.reason
    assert letter.source == "mqtt" and letter.channel == topic
    assert letter.raw == raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    if topic.endswith("/event") and "no facility" not in reason:
        assert letter.facility_id == site.alpha_id
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 0


@pytest.mark.skipif(not MQTT_URL, reason="set WATCHFLOOR_MQTT_URL to a Mosquitto broker")
async def test_round_trip_through_mosquitto(sessionmaker, clock, site, db):
    import aiomqtt

    batcher = EventBatcher(sessionmaker, clock)
    bridge = MqttIngest(
        sessionmaker, clock, batcher, url=MQTT_URL, client_id=f"wf-test-{uuid.uuid4().hex[:8]}"
    )
    await bridge.start()
    try:
        await asyncio.wait_for(bridge.connected.wait(), 10)
        host = MQTT_URL.split("//", 1)[1].split(":")[0]
        async with aiomqtt.Client(host, int(MQTT_URL.rsplit(":", 1)[1])) as pub:
            for i in range(20):
                await pub.publish(
                    "watchfloor/ALPHA/DOOR-1/event",
                    payload(clock, idempotency_key=f"m-{i}"),
                    qos=1,
                )
            await pub.publish("watchfloor/ALPHA/DOOR-1/event", b"{broken", qos=1)
            await pub.publish("watchfloor/ALPHA/GHOST/event", payload(clock), qos=1)
        for _ in range(200):
            if bridge.received >= 22:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await bridge.close()
        await batcher.close()
    assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 20
    reasons = (await db.execute(select(DeadLetter.reason))).scalars().all()
    assert len(reasons) == 2
    assert any("no device 'GHOST'" in r for r in reasons)
