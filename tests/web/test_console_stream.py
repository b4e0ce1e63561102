"""The live stream: a real server (uvicorn in this event loop) and real SSE clients."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from watchfloor.bus import Message
from watchfloor.web.live import Audience, Broadcaster

LIFESPAN = "on"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(app, seeded: None) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=LIFESPAN)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)  # waiting for the socket to listen, not for test logic
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)


async def _events(resp: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event, data = "message", ""
    async for line in resp.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "":
            if data:
                yield event, json.loads(data)
            event, data = "message", ""


async def _next_event(it: AsyncIterator[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    while True:
        event, data = await asyncio.wait_for(it.__anext__(), timeout=10)
        if event != "ping":
            return event, data


async def test_alarm_reaches_in_scope_console_only(
    app,
    served: str,
    make_token,
    sessionmaker,  # type: ignore[no-untyped-def]
) -> None:
    from watchfloor.web.console_routes import facility_id_of

    async with sessionmaker() as db:
        dallas_id = await facility_id_of(db, "DAL-FO")
        boston_id = await facility_id_of(db, "BOS-DC")
    dallas = await make_token("facility_manager", facility="DAL-FO")
    boston = await make_token("operator", facility="BOS-DC")
    bus = app.state.runtime.bus
    async with (
        httpx.AsyncClient(base_url=served, timeout=20) as c1,
        httpx.AsyncClient(base_url=served, timeout=20) as c2,
        c1.stream("GET", "/watch/stream", headers=dallas) as r1,
        c2.stream("GET", "/watch/stream", headers=boston) as r2,
    ):
        assert r1.status_code == 200 and r2.status_code == 200
        assert r1.headers["content-type"].startswith("text/event-stream")
        e1, e2 = _events(r1), _events(r2)
        assert (await _next_event(e1))[0] == "hello"
        assert (await _next_event(e2))[0] == "hello"
        await bus.publish(
            "alarm.DAL-FO.p1",
            {
                "facility_id": dallas_id,
                "facility_code": "DAL-FO",
                "priority": 1,
                "title": "Panic: reception",
                "incident_id": 7,
            },
            "m-dallas-1",
        )
        await bus.publish(
            "alarm.BOS-DC.p3",
            {
                "facility_id": boston_id,
                "facility_code": "BOS-DC",
                "priority": 3,
                "title": "Fence camera offline",
                "incident_id": 8,
            },
            "m-boston-1",
        )
        event, data = await _next_event(e1)
        assert event == "alarm" and data["title"] == "Panic: reception"
        assert data["subject"] == "alarm.DAL-FO.p1"
        # the Boston console never saw the Dallas alarm: its first message is its own
        event, data = await _next_event(e2)
        assert event == "alarm" and data["title"] == "Fence camera offline"
        # and an incident change of Boston reaches Boston only
        await bus.publish(
            "incident.BOS-DC.updated",
            {"facility_id": boston_id, "incident_id": 8, "status": "acknowledged"},
            "m-boston-2",
        )
        await bus.publish(
            "incident.DAL-FO.updated",
            {"facility_id": dallas_id, "incident_id": 7, "status": "acknowledged"},
            "m-dallas-2",
        )
        assert (await _next_event(e2))[1]["incident_id"] == 8
        nxt = await _next_event(e1)
        assert nxt[0] == "incident" and nxt[1]["incident_id"] == 7


async def test_slow_console_is_dropped_not_the_server() -> None:
    b = Broadcaster(queue_size=3)
    slow = b.connect(Audience(everything=True))
    picky = b.connect(Audience(everything=False, facility_ids=frozenset({2})))
    for i in range(5):
        await b.on_message(Message("alarm.X.p2", {"facility_id": 1}, f"m{i}"))
    assert slow.dropped and slow not in b.clients
    assert picky in b.clients and picky.queue.qsize() == 0
    # a dropped console is told to reload, then its stream ends
    frames = [f async for f in b.stream(slow)]
    assert frames[-1]["event"] == "reload"
    # messages without a facility id are matched by the subject's facility token
    token_only = Audience(everything=False, tokens=frozenset({"DAL-FO"}))
    assert token_only.accepts("alarm.DAL-FO.p1", {})
    assert not token_only.accepts("alarm.BOS-DC.p1", {})
    assert not token_only.accepts("alarm", {})


async def test_posted_panic_event_arrives_as_alarm_on_the_console(
    app,  # type: ignore[no-untyped-def]
    served: str,
    make_token,
    clock,
) -> None:
    operator = await make_token("operator", facility="DAL-FO")
    device = await make_token("device", facility="DAL-FO")
    async with (
        httpx.AsyncClient(base_url=served, timeout=20) as c,
        c.stream("GET", "/watch/stream", headers=operator) as stream,
    ):
        events = _events(stream)
        assert (await _next_event(events))[0] == "hello"
        posted = await c.post(
            "/api/v1/events",
            json={
                "device": "PANIC-1",
                "type": "panic.pressed",
                "occurred_at": clock.now().isoformat(),
                "attributes": {"silent": True},
            },
            headers=device,
        )
        assert posted.status_code == 201, posted.text
        event_id = posted.json()["event_id"]
        while True:
            kind, data = await _next_event(events)
            if kind == "alarm":
                break
        assert data["event_id"] == event_id
        assert data["priority"] == 1 and data["facility_code"] == "DAL-FO"
        rows = await c.get("/watch/rows", headers=operator)
        assert f'data-id="{data["incident_id"]}" data-priority="1"' in rows.text
