"""Hypothesis fuzzing of HTTP and MQTT event payloads: no crash, every reject dead-lettered."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from watchfloor.events.catalogue import CATALOGUE
from watchfloor.events.ingest import EventBatcher
from watchfloor.events.models import DeadLetter, Event
from watchfloor.events.mqtt import MqttIngest

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
times = st.one_of(
    st.just("2026-01-05T12:00:00Z"),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    json_values,
)
types = st.sampled_from([*CATALOGUE, "bogus", ""]) | st.text(max_size=20)
attributes = st.one_of(
    st.dictionaries(
        st.sampled_from(["confidence", "door", "count", "held_seconds", "condition", "x"]),
        json_values,
        max_size=3,
    ),
    json_values,
)


def event_like(with_device: bool) -> st.SearchStrategy[Any]:
    fields: dict[str, st.SearchStrategy[Any]] = {"type": types, "occurred_at": times}
    if with_device:
        fields["device"] = st.sampled_from(["DOOR-1", "ALPHA/PANIC-1", "BRAVO/CAM-1", "NOPE"]) | (
            st.text(max_size=20)
        )
    return st.fixed_dictionaries(
        fields,
        optional={
            "idempotency_key": st.text(max_size=10) | json_values,
            "attributes": attributes,
            "extra": json_values,
        },
    )


def body_bytes(with_device: bool) -> st.SearchStrategy[bytes]:
    return st.one_of(
        event_like(with_device).map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=100),
    )


async def totals(db) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    dl = (await db.execute(select(func.count(DeadLetter.id)))).scalar_one()
    ev = (await db.execute(select(func.count(Event.id)))).scalar_one()
    return dl, ev


@FUZZ
@given(raw=body_bytes(with_device=True))
async def test_fuzz_http_single(client, db, site, device_token, raw):
    before = await totals(db)
    r = await client.post(
        "/api/v1/events", content=raw, headers={**device_token, "content-type": "application/json"}
    )
    assert r.status_code in (200, 201, 403, 422), r.text
    after = await totals(db)
    if r.status_code == 422:
        assert after == (before[0] + 1, before[1])
        assert r.headers["content-type"] == "application/problem+json"
    elif r.status_code == 201:
        assert after == (before[0], before[1] + 1)
    else:
        assert after == before


@FUZZ
@given(items=st.lists(event_like(with_device=True) | json_values, min_size=1, max_size=5))
async def test_fuzz_http_batch(client, db, site, device_token, items):
    r = await client.post(
        "/api/v1/events/batch",
        content=json.dumps({"events": items}),
        headers={**device_token, "content-type": "application/json"},
    )
    assert r.status_code in (200, 207, 403, 422), r.text


@FUZZ
@given(
    topic=st.sampled_from(
        ["watchfloor/ALPHA/DOOR-1/event", "watchfloor/BRAVO/CAM-1/event", "watchfloor/X/Y/event"]
    )
    | st.text(max_size=40),
    raw=body_bytes(with_device=False),
)
async def test_fuzz_mqtt(db, clock, site, sessionmaker, topic, raw):
    bridge = MqttIngest(
        sessionmaker,
        clock,
        EventBatcher(sessionmaker, clock, max_wait_ms=0),
        url="mqtt://127.0.0.1:1",
    )
    before = await totals(db)
    receipt = await bridge.handle(topic, raw)
    after = await totals(db)
    if receipt is None:
        assert after == (before[0] + 1, before[1])
    elif receipt.duplicate:
        assert after == before
    else:
        assert after == (before[0], before[1] + 1)
