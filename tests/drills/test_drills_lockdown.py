"""A lockdown-kind drill end to end through the real lockdown and roll-call services (running app,
in-process door driver, fake clock): starting it locks the doors in EXERCISE mode and the EXERCISE
roll call starts; ending it captures the timings and the people who answered; the lockdown is not
lifted by the drill, and once it is lifted the lift time can be read in."""

from __future__ import annotations

from typing import Any

import pytest
from drills_site import problem
from sqlalchemy import select

from watchfloor.clock import FakeClock
from watchfloor.lockdown import service as lockdown_service
from watchfloor.lockdown.models import Lockdown
from watchfloor.rollcall import service as rollcall
from watchfloor.rollcall.models import Answer, Channel, RollCall


@pytest.fixture
async def runtime(running_app, clock):  # type: ignore[no-untyped-def]
    """The running app's runtime, with the lockdown engine's backoff moving the fake clock."""
    rt = running_app.state.runtime

    async def no_wait(seconds: float) -> None:
        clock.advance(seconds=seconds)

    rt.lockdown.sleep = no_wait
    return rt


async def settle(runtime: Any) -> None:
    await runtime.lockdown.wait()
    await runtime.drain()


async def test_a_lockdown_drill_runs_through_lockdown_and_roll_call_and_captures_timings(
    live_client, runtime, estate, db, clock: FakeClock, make_token
) -> None:  # type: ignore[no-untyped-def]
    fm = await make_token("facility_manager", facility="NYC-FO", name="fm-nyc")
    planned = await live_client.post(
        "/api/v1/drills",
        json={
            "facility_code": "NYC-FO",
            "kind": "active_shooter",
            "planned_at": "2026-01-05T15:00:00Z",
        },
        headers=fm,
    )
    drill = planned.json()
    assert drill["uses_lockdown"] is True
    url = f"/api/v1/drills/{drill['id']}"
    started = await live_client.post(url + "/start", headers=fm)
    assert started.status_code == 200, started.text
    await settle(runtime)

    lockdown = (await db.scalars(select(Lockdown))).one()
    assert lockdown.exercise is True and lockdown.id == started.json()["lockdown_id"]
    assert lockdown.state == "locked" and lockdown.door_count == 2
    roll_call = (await db.scalars(select(RollCall))).one()
    assert roll_call.exercise is True and roll_call.lockdown_id == lockdown.id

    # two of three answer: Ana safe after 90 s, Ben needs help after 150 s
    entries = {e.employee_id: e for e in await rollcall.entries(db, roll_call.id)}
    for emp, answer, after in (("NY-1", Answer.SAFE, 90), ("NY-2", Answer.NEED_HELP, 60)):
        clock.advance(seconds=after)
        await rollcall.record_answer(
            db,
            clock,
            roll_call,
            entries[emp],
            answer,
            Channel.CONSOLE,
            actor="user:op",
            operator=True,
        )
        await db.commit()
    clock.advance(minutes=5)
    ended = await live_client.post(url + "/end", json={"notes": "went well"}, headers=fm)
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert body["state"] == "completed" and body["timings_source"] == "captured"
    assert body["doors_total"] == 2 and body["doors_failed"] == 0
    assert body["seconds_to_locked"] is not None and body["seconds_to_locked"] >= 0
    assert (body["safe_count"], body["need_help_count"], body["no_answer_count"]) == (1, 1, 1)
    assert body["accounted_share"] == pytest.approx(2 / 3)
    assert body["seconds_to_accounted"] is None  # not everyone answered
    assert body["roll_call_id"] == roll_call.id
    assert sorted(p["name"] for p in body["participants"]) == ["Ana Alvarez", "Ben Baker"]
    # ending the drill does not lift the lockdown: the drill says it is still active
    assert body["lockdown_active"] is True and body["seconds_to_lifted"] is None
    typed = await live_client.post(
        url + "/end", json={"timings": {"seconds_to_evacuated": 5}}, headers=fm
    )
    problem(typed, 409)

    # the lockdown is lifted on its own terms; reading the timings again records the lift
    clock.advance(minutes=2)
    ld = await lockdown_service.get_lockdown(db, lockdown.id, lock=True)
    assert await lockdown_service.request_lift(db, clock, "user:other", ld, requires_approval=False)
    await db.commit()
    await runtime.lockdown.ensure([lockdown.id])
    await settle(runtime)
    again = (await live_client.post(url + "/capture", headers=fm)).json()
    assert again["lockdown_active"] is False
    assert again["seconds_to_lifted"] is not None
    assert again["seconds_to_lifted"] >= 90 + 60 + 300 + 120
    assert len(again["participants"]) == 2  # read again, nobody added twice


async def test_starting_a_lockdown_drill_needs_lockdown_start_and_a_free_facility(
    live_client, runtime, estate, make_token
) -> None:  # type: ignore[no-untyped-def]
    pm = await make_token("programme_manager", org=True)  # drills:manage, not lockdown:start
    body = {"facility_code": "NYC-FO", "kind": "lockdown", "planned_at": "2026-01-05T15:00:00Z"}
    drill = (await live_client.post("/api/v1/drills", json=body, headers=pm)).json()
    problem(await live_client.post(f"/api/v1/drills/{drill['id']}/start", headers=pm), 403)
    fm = await make_token("facility_manager", facility="NYC-FO")
    first = (await live_client.post("/api/v1/drills", json=body, headers=fm)).json()
    assert (await live_client.post(f"/api/v1/drills/{first['id']}/start", headers=fm)).is_success
    await settle(runtime)
    # the facility is locked down (the first drill): a second lockdown drill is refused, unchanged
    resp = await live_client.post(f"/api/v1/drills/{drill['id']}/start", headers=fm)
    problem(resp, 409)
    after = (await live_client.get(f"/api/v1/drills/{drill['id']}", headers=fm)).json()
    assert after["state"] == "planned" and after["lockdown_id"] is None
