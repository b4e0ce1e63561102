"""The lockdown API on the running app (runtime, engine and in-process door driver): role and
facility scope on every route, problem documents for bad input, the lift approval flow, and a
door that will not lock raising a P1 alarm through the real alarm pipeline."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from watchfloor.alarms.models import Alarm
from watchfloor.lockdown.drivers.memory import Behaviour
from watchfloor.lockdown.models import Lockdown

PROBLEM = "application/problem+json"


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["detail"]
    return body


@pytest.fixture
async def runtime(running_app, clock):  # type: ignore[no-untyped-def]
    """The running app's runtime, with the engine's backoff moving the fake clock."""
    rt = running_app.state.runtime

    async def no_wait(seconds: float) -> None:
        clock.advance(seconds=seconds)

    rt.lockdown.sleep = no_wait
    return rt


async def settle(runtime: Any) -> None:
    await runtime.lockdown.wait()
    await runtime.drain()


async def test_start_then_every_door_confirms(live_client, runtime, site, make_token) -> None:
    op = await make_token("operator", facility="HQ")
    resp = await live_client.post(
        "/api/v1/lockdowns", json={"facility": "HQ", "reason": "Intruder"}, headers=op
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["skipped"] == [] and len(body["items"]) == 1
    ld = body["items"][0]
    assert ld["facility_code"] == "HQ" and ld["door_count"] == 6 and ld["exercise"] is False
    await settle(runtime)

    detail = (await live_client.get(f"/api/v1/lockdowns/{ld['id']}", headers=op)).json()
    assert detail["state"] == "locked"
    assert detail["counts"] == {"locked": 6, "pending": 0, "failed": 0, "unlocked": 0}
    assert {d["code"] for d in detail["doors"]} == {f"DOOR-{i}" for i in range(1, 7)}
    listed = (await live_client.get("/api/v1/lockdowns?active=true", headers=op)).json()
    assert [i["id"] for i in listed["items"]] == [ld["id"]]


async def test_a_door_that_will_not_lock_raises_a_p1_alarm(
    live_client, runtime, site, make_token
) -> None:
    runtime.lockdown.driver.set_door(site.doors["HQ/DOOR-5"].id, Behaviour.FAIL, error="Jammed")
    op = await make_token("operator", facility="HQ")
    resp = await live_client.post(
        "/api/v1/lockdowns", json={"facility": "HQ", "exercise": True}, headers=op
    )
    ld = resp.json()["items"][0]
    assert ld["banner"] == "EXERCISE"
    await settle(runtime)
    detail = (await live_client.get(f"/api/v1/lockdowns/{ld['id']}", headers=op)).json()
    assert detail["state"] == "partial" and detail["counts"]["failed"] == 1
    assert detail["doors"][0]["code"] == "DOOR-5"  # failed doors first
    assert detail["doors"][0]["state"] == "failed" and detail["doors"][0]["alarm_raised"]

    async with runtime.sessionmaker() as db:
        alarms = (await db.scalars(select(Alarm).where(Alarm.type == "lock_failed"))).all()
    assert len(alarms) == 1
    assert alarms[0].priority == 1 and alarms[0].device_id == site.doors["HQ/DOOR-5"].id
    assert alarms[0].incident_id is not None

    # retry the failed door once it is fixed
    runtime.lockdown.driver.set_door(site.doors["HQ/DOOR-5"].id, Behaviour.CONFIRM)
    retry = await live_client.post(f"/api/v1/lockdowns/{ld['id']}/retry", headers=op)
    assert retry.status_code == 200 and retry.json()["retried"] == 1
    await settle(runtime)
    detail = (await live_client.get(f"/api/v1/lockdowns/{ld['id']}", headers=op)).json()
    assert detail["state"] == "locked"
    problem(await live_client.post(f"/api/v1/lockdowns/{ld['id']}/retry", headers=op), 409)


async def test_lift_needs_the_role_and_a_second_persons_approval(
    live_client, runtime, site, make_token
) -> None:
    guard = await make_token("guard", facility="HQ")
    manager1 = await make_token("facility_manager", facility="HQ", name="m1")
    manager2 = await make_token("facility_manager", facility="HQ", name="m2")
    ld = (
        await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=guard)
    ).json()["items"][0]
    await settle(runtime)
    url = f"/api/v1/lockdowns/{ld['id']}"

    problem(await live_client.post(url + "/lift", headers=guard), 403)  # guards cannot lift
    problem(await live_client.post(url + "/approve-lift", headers=manager1), 409)  # nothing asked
    first = await live_client.post(url + "/lift", json={"reason": "Cleared"}, headers=manager1)
    assert first.status_code == 202 and first.json()["lifting"] is False
    assert first.json()["lockdown"]["lift_requested_by"] == "token:m1"
    assert problem(await live_client.post(url + "/lift", headers=manager1), 409)["type"].endswith(
        "lift-needs-approval"
    )
    problem(await live_client.post(url + "/approve-lift", headers=manager1), 403)  # same person
    problem(await live_client.post(url + "/approve-lift", headers=guard), 403)  # no lift role
    assert (await live_client.get(url, headers=guard)).json()["state"] == "locked"

    ok = await live_client.post(url + "/approve-lift", headers=manager2)
    assert ok.status_code == 200 and ok.json()["lifting"] is True
    await settle(runtime)
    done = (await live_client.get(url, headers=guard)).json()
    assert done["state"] == "lifted" and done["counts"]["unlocked"] == 6
    assert done["lift_approved_by"] == "token:m2" and done["lifted_by"] == "token:m1"
    problem(await live_client.post(url + "/lift", headers=manager2), 409)  # already lifted


async def test_start_refuses_bad_input_and_changes_nothing(
    live_client, runtime, site, make_token
) -> None:
    op = await make_token("operator", org=True)
    cases: list[tuple[Any, int]] = [
        ({"facility": "NOPE"}, 404),
        ({"facility": "HQ", "zone": "NOPE"}, 404),
        ({"region": "NOPE"}, 404),
        ({}, 422),
        ({"facility": "HQ", "region": "R1"}, 422),
        ({"zone": "LOBBY"}, 422),
        ({"facility": "HQ", "reason": "x" * 501}, 422),
        ({"facility": "HQ", "exercise": "perhaps"}, 422),
        ({"facility": ["HQ"]}, 422),
        ({"facility": "HQ", "surprise": 1}, 422),
        ({"facility": "HQ", "incident_id": 999999}, 422),
        ({"facility": "HQ", "incident_id": -1}, 422),
        ({"facility": "HQ", "reason": "nul\u0000byte"}, 422),
        ("not json", 422),
    ]
    for body, status in cases:
        if isinstance(body, str):
            resp = await live_client.post(
                "/api/v1/lockdowns",
                content=body,
                headers={**op, "content-type": "application/json"},
            )
        else:
            resp = await live_client.post("/api/v1/lockdowns", json=body, headers=op)
        problem(resp, status)
    for path in ("/api/v1/lockdowns/0", "/api/v1/lockdowns/abc", "/api/v1/lockdowns/99999"):
        assert (await live_client.get(path, headers=op)).status_code in (404, 422)
    async with runtime.sessionmaker() as db:
        assert (await db.scalars(select(Lockdown))).all() == []

    await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=op)
    again = await live_client.post(
        "/api/v1/lockdowns", json={"facility": "HQ", "zone": "LOBBY"}, headers=op
    )
    assert problem(again, 409)["type"].endswith("already-locked-down")


async def test_role_and_facility_scope(live_client, runtime, site, make_token) -> None:
    staff = await make_token("staff", facility="HQ")
    pm = await make_token("programme_manager", org=True)
    guard_lax = await make_token("guard", facility="LAX")
    guard_hq = await make_token("guard", facility="HQ")
    problem(await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}), 401)
    problem(
        await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=staff), 403
    )
    problem(await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=pm), 403)
    problem(
        await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=guard_lax),
        403,
    )
    # a region needs a grant that covers the region, not one facility of it
    problem(
        await live_client.post("/api/v1/lockdowns", json={"region": "R1"}, headers=guard_hq), 403
    )
    ld = (
        await live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=guard_hq)
    ).json()["items"][0]
    await settle(runtime)
    # LAX's guard cannot see HQ's lockdown at all
    problem(await live_client.get(f"/api/v1/lockdowns/{ld['id']}", headers=guard_lax), 404)
    problem(await live_client.post(f"/api/v1/lockdowns/{ld['id']}/lift", headers=guard_lax), 403)
    fm_lax = await make_token("facility_manager", facility="LAX")
    problem(await live_client.post(f"/api/v1/lockdowns/{ld['id']}/lift", headers=fm_lax), 404)
    assert (await live_client.get("/api/v1/lockdowns", headers=guard_lax)).json()["total"] == 0
    problem(await live_client.get("/api/v1/lockdowns?facility=HQ", headers=guard_lax), 403)
    # the programme manager reads it
    assert (await live_client.get(f"/api/v1/lockdowns/{ld['id']}", headers=pm)).status_code == 200


async def test_a_region_lockdown(live_client, runtime, site, make_token) -> None:
    region_op = await make_token("operator", region="R1")
    resp = await live_client.post(
        "/api/v1/lockdowns", json={"region": "R1", "reason": "Regional threat"}, headers=region_op
    )
    assert resp.status_code == 201, resp.text
    items = resp.json()["items"]
    assert sorted(i["facility_code"] for i in items) == ["HQ", "LAX"]
    assert len({i["request_id"] for i in items}) == 1
    await settle(runtime)
    listed = (await live_client.get("/api/v1/lockdowns", headers=region_op)).json()
    assert {i["state"] for i in listed["items"]} == {"locked"}
    again = await live_client.post("/api/v1/lockdowns", json={"region": "R1"}, headers=region_op)
    problem(again, 409)


async def test_triggers_api(live_client, runtime, site, make_token) -> None:
    admin = await make_token("admin", org=True)
    fm_hq = await make_token("facility_manager", facility="HQ")
    fm_lax = await make_token("facility_manager", facility="LAX")
    problem(
        await live_client.post(
            "/api/v1/lockdown-triggers", json={"alarm_type": "weapon"}, headers=fm_hq
        ),
        403,
    )  # the organisation default needs an organisation-wide grant
    org = await live_client.post(
        "/api/v1/lockdown-triggers", json={"alarm_type": "weapon"}, headers=admin
    )
    assert org.status_code == 201 and org.json()["scope"] == "zone"
    own = await live_client.post(
        "/api/v1/lockdown-triggers",
        json={"alarm_type": "weapon", "facility": "HQ", "scope": "facility"},
        headers=fm_hq,
    )
    assert own.status_code == 201
    problem(
        await live_client.post(
            "/api/v1/lockdown-triggers", json={"alarm_type": "Weapon!"}, headers=admin
        ),
        422,
    )
    seen = [
        t["facility_code"]
        for t in (await live_client.get("/api/v1/lockdown-triggers", headers=fm_lax)).json()
    ]
    assert seen == [None]  # the default, not HQ's own
    problem(
        await live_client.delete(f"/api/v1/lockdown-triggers/{own.json()['id']}", headers=fm_lax),
        404,
    )
    assert (
        await live_client.delete(f"/api/v1/lockdown-triggers/{own.json()['id']}", headers=fm_hq)
    ).status_code == 204


async def test_a_weapon_detected_event_locks_down_its_zone_through_the_pipeline(
    live_client, runtime, site, make_token
) -> None:
    """weapon.detected → P1 alarm → the organisation's trigger → the camera's zone locks down,
    attached to the alarm's incident."""
    from datetime import UTC, datetime

    from watchfloor.events.ingest import ValidatedEvent
    from watchfloor.incidents.models import TimelineEntry
    from watchfloor.sites.models import Device

    admin = await make_token("admin", org=True)
    created = await live_client.post(
        "/api/v1/lockdown-triggers", json={"alarm_type": "weapon", "scope": "zone"}, headers=admin
    )
    assert created.status_code == 201
    hq = site.facilities["HQ"]
    async with runtime.sessionmaker() as db:
        camera = (
            await db.execute(
                select(Device).where(Device.facility_id == hq.id, Device.code == "CAM-1")
            )
        ).scalar_one()
    await runtime.batcher.submit(
        [
            ValidatedEvent(
                facility_id=hq.id,
                facility_code="HQ",
                type="weapon.detected",
                occurred_at=datetime.now(UTC),
                device_id=camera.id,
                device_code="CAM-1",
                zone_id=camera.zone_id,
                attributes={"confidence": 0.97, "label": "handgun"},
            )
        ]
    )
    await runtime.drain()
    await settle(runtime)
    listed = (await live_client.get("/api/v1/lockdowns", headers=admin)).json()["items"]
    assert len(listed) == 1
    ld = listed[0]
    assert ld["zone_name"] == "Lobby zone" and ld["source"] == "rule"
    assert ld["state"] == "locked" and ld["counts"]["locked"] == 3
    assert ld["incident_id"] is not None and ld["started_by"] == "system:rule:weapon"
    async with runtime.sessionmaker() as db:
        texts = (
            await db.scalars(
                select(TimelineEntry.text).where(
                    TimelineEntry.incident_id == ld["incident_id"],
                    TimelineEntry.kind == "lockdown",
                )
            )
        ).all()
    assert any("Lockdown of zone Lobby zone of HQ Office started" in t for t in texts)


async def test_two_starts_at_the_same_moment_make_one_lockdown(
    live_client, runtime, site, make_token
) -> None:
    import asyncio

    a = await make_token("operator", facility="HQ", name="a")
    b = await make_token("guard", facility="HQ", name="b")
    first, second = await asyncio.gather(
        live_client.post("/api/v1/lockdowns", json={"facility": "HQ"}, headers=a),
        live_client.post("/api/v1/lockdowns", json={"facility": "HQ", "zone": "LOBBY"}, headers=b),
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert problem(loser, 409)["type"].endswith("already-locked-down")
    await settle(runtime)
    async with runtime.sessionmaker() as db:
        assert len((await db.scalars(select(Lockdown))).all()) == 1
