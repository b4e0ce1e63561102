"""Roll call with the pipeline running: "need help" becomes a P1 alarm with the person's last
known zone, a lockdown.started message starts a roll call, and the live tally reaches the board's
stream."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from rollcall_helpers import RollSite, by_employee
from sqlalchemy import func, select

from watchfloor.alarms.models import Alarm
from watchfloor.bus import outbox, subject_token
from watchfloor.incidents.models import Incident
from watchfloor.rollcall import service
from watchfloor.rollcall.models import RollCall
from watchfloor.web.live import Audience


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(client, headers, **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/api/v1/roll-calls", json={"facility_code": "HQ", **body}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_need_help_raises_a_p1_alarm_with_the_last_known_zone(
    running_app, live_client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    detail = await _start(live_client, operator)
    ana = by_employee(detail)["HQ-001"]
    url = f"/api/v1/roll-calls/{detail['id']}/entries/{ana['id']}/answer"
    resp = await live_client.post(
        url, json={"answer": "need_help", "zone_code": "SECURE"}, headers=operator
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["alarm_event_id"]
    await runtime.drain()
    alarm = (await db.scalars(select(Alarm))).one()
    assert (alarm.priority, alarm.type) == (1, "needs_help")
    assert alarm.facility_id == rsite.hq
    assert alarm.zone_id == rsite.site.zones["HQ/SECURE"]
    assert alarm.attributes["person"] == "Ana Alvarez"
    assert alarm.attributes["last_known_zone"] == "Secure zone"
    assert alarm.attributes["roll_call_id"] == detail["id"]
    incident = (await db.scalars(select(Incident))).one()
    assert incident.priority == 1 and alarm.incident_id == incident.id
    # saying "need help" again raises nothing new; a change back and forth raises again
    await live_client.post(url, json={"answer": "need_help"}, headers=operator)
    await runtime.drain()
    assert await db.scalar(select(func.count()).select_from(Alarm)) == 1


async def test_need_help_by_link_raises_an_alarm_without_a_zone(
    running_app, live_client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    detail = await _start(live_client, operator)
    ben = by_employee(detail)["HQ-002"]
    token = service.make_token(
        running_app.state.secret_key,
        detail["id"],
        ben["id"],
        rsite.people["HQ-002"],
        datetime.fromisoformat(detail["started_at"]),
    )
    resp = await live_client.post(f"/r/{token}", data={"answer": "need_help"})
    assert resp.status_code == 200
    await runtime.drain()
    alarm = (await db.scalars(select(Alarm))).one()
    assert (alarm.priority, alarm.type, alarm.zone_id) == (1, "needs_help", None)
    assert alarm.attributes["person"] == "Ben Baker"
    assert alarm.attributes["channel"] == "link"


async def test_last_known_zone_comes_from_a_recent_panic_press(
    running_app, live_client, db, clock, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.auth import service as auth_service
    from watchfloor.panic.models import PanicPress

    user = await auth_service.create_user(
        db,
        clock,
        "system:test",
        username="ana",
        password="correct horse battery staple",
        display_name="Ana",
        grants=[("staff", auth_service.ScopeSpec.facility("HQ"))],
    )
    user.person_id = rsite.people["HQ-001"]
    db.add(
        PanicPress(
            user_id=user.id,
            facility_id=rsite.hq,
            zone_id=rsite.site.zones["HQ/PERIM"],
            pressed_at=clock.now(),
            cancel_until=clock.now(),
            failed_attempts=0,
        )
    )
    await db.commit()
    detail = await _start(live_client, operator)
    assert by_employee(detail)["HQ-001"]["zone_name"] == "Perim zone"
    assert by_employee(detail)["HQ-002"]["zone_name"] == ""


async def _publish_lockdown(db, clock, rsite: RollSite, lockdown_id: int, **extra: Any) -> str:  # type: ignore[no-untyped-def]
    data = {
        "lockdown_id": lockdown_id,
        "facility_id": rsite.hq,
        "facility_code": "HQ",
        "facility_name": "HQ Office",
        "zone_id": None,
        "zone_name": None,
        "exercise": False,
        "reason": "armed intruder",
        "started_by": "user:op",
        "started_at": clock.now().isoformat(),
        "incident_id": None,
        "door_count": 3,
        **extra,
    }
    msg_id = f"lockdown-{lockdown_id}-started"
    outbox.add(db, f"lockdown.{subject_token('HQ')}.started", data, msg_id, clock=clock)
    await db.commit()
    return msg_id


async def test_lockdown_started_starts_a_roll_call_once(
    running_app, db, clock, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    await _publish_lockdown(db, clock, rsite, 7)
    await runtime.drain()
    roll_call = (await db.scalars(select(RollCall))).one()
    assert (roll_call.facility_id, roll_call.lockdown_id, roll_call.trigger) == (
        rsite.hq,
        7,
        "lockdown",
    )
    assert roll_call.exercise is False and roll_call.state == "open"
    assert "armed intruder" in roll_call.reason
    assert roll_call.started_by == "system:lockdown:user:op"
    # the same message delivered again changes nothing
    await runtime.bus.publish(
        f"lockdown.{subject_token('HQ')}.started",
        {"lockdown_id": 7, "facility_id": rsite.hq, "exercise": False},
        "lockdown-7-started",
    )
    await runtime.drain()
    # another lockdown while the roll call is open: it carries on
    await _publish_lockdown(db, clock, rsite, 8)
    await runtime.drain()
    assert await db.scalar(select(func.count()).select_from(RollCall)) == 1


async def test_drill_lockdown_starts_an_exercise_roll_call(
    running_app, db, clock, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    await _publish_lockdown(db, clock, rsite, 9, exercise=True, zone_name="Lobby zone")
    await runtime.drain()
    roll_call = (await db.scalars(select(RollCall))).one()
    assert roll_call.exercise is True
    assert roll_call.reason.startswith("Drill lockdown of HQ Office (Lobby zone)")


async def test_lockdown_roll_call_can_be_turned_off(
    running_app, db, clock, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    running_app.state.runtime.settings.rollcall_on_lockdown = False
    await _publish_lockdown(db, clock, rsite, 10)
    await running_app.state.runtime.drain()
    assert await db.scalar(select(func.count()).select_from(RollCall)) == 0


async def test_the_tally_streams_to_the_board(
    running_app, live_client, db, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    broadcaster = runtime.rollcall_broadcaster
    board = broadcaster.connect(Audience(everything=False, facility_ids=frozenset({rsite.hq})))
    elsewhere = broadcaster.connect(
        Audience(everything=False, facility_ids=frozenset({rsite.site.facilities["LAX"]}))
    )
    detail = await _start(live_client, operator)
    ana = by_employee(detail)["HQ-001"]
    url = f"/api/v1/roll-calls/{detail['id']}/entries/{ana['id']}/answer"
    assert (
        await live_client.post(url, json={"answer": "safe"}, headers=operator)
    ).status_code == 200
    await runtime.drain()
    seen = []
    while not board.queue.empty():
        seen.append(board.queue.get_nowait())
    assert [m.data["what"] for m in seen] == ["started", "answer"]
    last = seen[-1].data
    assert last["roll_call_id"] == detail["id"] and last["version"] == 2
    assert last["tally"] == {"safe": 1, "need_help": 0, "no_answer": 2, "total": 3}
    assert last["entry"]["name"] == "Ana Alvarez" and last["entry"]["answer"] == "safe"
    assert elsewhere.queue.empty()  # another facility's board hears nothing of HQ
    # a console scoped elsewhere cannot open HQ's stream
    lax = await make_token("guard", facility="LAX")
    resp = await live_client.get(f"/roll-calls/{detail['id']}/stream", headers=lax)
    assert resp.status_code == 404


@pytest.fixture
async def served(running_app) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """The running app behind a real server (uvicorn in this event loop): SSE needs a real
    connection (httpx's in-process transport buffers whole responses)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            running_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
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


async def test_the_board_stream_over_http(running_app, served, operator, rsite: RollSite) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        detail = await _start(client, operator)
        ben = by_employee(detail)["HQ-002"]
        async with client.stream(
            "GET", f"/roll-calls/{detail['id']}/stream", headers=operator
        ) as resp:
            assert resp.status_code == 200
            lines = resp.aiter_lines()

            async def next_event() -> tuple[str, dict[str, Any]]:
                event, data = "", ""
                async for line in lines:
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line == "" and event:
                        return event, json.loads(data or "{}")
                raise AssertionError("the stream ended")

            assert (await asyncio.wait_for(next_event(), 10))[0] == "hello"
            url = f"/api/v1/roll-calls/{detail['id']}/entries/{ben['id']}/answer"
            answered = await client.post(url, json={"answer": "need_help"}, headers=operator)
            assert answered.status_code == 200
            await runtime.drain()
            event, data = await asyncio.wait_for(next_event(), 10)
            assert event == "rollcall"
            assert data["entry"]["name"] == "Ben Baker" and data["entry"]["answer"] == "need_help"
            assert data["tally"]["need_help"] == 1


async def test_concurrent_answers_keep_the_streamed_tally_exact(
    running_app, live_client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    """Answers arriving together are serialised on the roll call: versions never repeat, and
    the update with the highest version carries the full tally."""
    runtime = running_app.state.runtime
    board = runtime.rollcall_broadcaster.connect(
        Audience(everything=False, facility_ids=frozenset({rsite.hq}))
    )
    detail = await _start(live_client, operator)
    started = datetime.fromisoformat(detail["started_at"])
    secret = running_app.state.secret_key
    posts = []
    for e in detail["entries"]:
        token = service.make_token(secret, detail["id"], e["id"], None, started)
        for answer in ("need_help", "safe"):
            posts.append(live_client.post(f"/r/{token}", data={"answer": answer}))
    results = await asyncio.gather(*posts)
    assert all(r.status_code == 200 for r in results)
    await runtime.drain()
    updates = []
    while not board.queue.empty():
        updates.append(board.queue.get_nowait().data)
    answers = [u for u in updates if u["what"] == "answer"]
    assert len(answers) == 6
    versions = [u["version"] for u in answers]
    assert len(set(versions)) == 6
    last = max(answers, key=lambda u: u["version"])
    db.expire_all()
    got = (await live_client.get(f"/api/v1/roll-calls/{detail['id']}", headers=operator)).json()
    assert last["tally"] == got["tally"]
    assert got["tally"]["no_answer"] == 0 and len(got["history"]) == 6
