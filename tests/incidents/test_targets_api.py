"""Response-time targets over the API: listed, changed (organisation scope, audited, validated),
and the response-time report measures against the changed target."""

from __future__ import annotations

from alarm_site import Site, emit
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord

PROBLEM = "application/problem+json"


def pick(rows, priority=1, measure="acknowledge"):  # type: ignore[no-untyped-def]
    return next(m for m in rows if m["priority"] == priority and m["measure"] == measure)


async def test_list_and_change_a_target(client, db, clock, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    operator = await make_token("operator", org=True)
    r = await client.get("/api/v1/response-targets", headers=operator)
    assert r.status_code == 200, r.text
    assert pick(r.json()) == {"priority": 1, "measure": "acknowledge", "seconds": 15, "percent": 95}

    admin = await make_token("admin", org=True)
    r = await client.put(
        "/api/v1/response-targets/1/acknowledge", json={"seconds": 10, "percent": 99}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"priority": 1, "measure": "acknowledge", "seconds": 10, "percent": 99}
    listed = (await client.get("/api/v1/response-targets", headers=operator)).json()
    assert pick(listed)["seconds"] == 10

    # a measure with no target yet is created
    r = await client.put(
        "/api/v1/response-targets/4/on_scene", json={"seconds": 7200, "percent": 50}, headers=admin
    )
    assert r.status_code == 200, r.text
    listed = (await client.get("/api/v1/response-targets", headers=operator)).json()
    assert pick(listed, 4, "on_scene")["seconds"] == 7200

    records = (
        await db.scalars(select(AuditRecord).where(AuditRecord.action == "response_target.set"))
    ).all()
    assert len(records) == 2
    first = records[0].details
    assert first["before"] == {"seconds": 15, "percent": 95}
    assert first["after"] == {"seconds": 10, "percent": 99}

    # setting the same values again changes nothing and writes no audit record
    await client.put(
        "/api/v1/response-targets/1/acknowledge", json={"seconds": 10, "percent": 99}, headers=admin
    )
    again = (
        await db.scalars(select(AuditRecord).where(AuditRecord.action == "response_target.set"))
    ).all()
    assert len(again) == 2


async def test_report_uses_the_changed_target(client, db, clock, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    [a] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    operator = await make_token("operator", org=True)
    clock.advance(seconds=12)
    await client.post(f"/api/v1/incidents/{a.incident_id}/acknowledge", headers=operator)
    params = {"since": start.isoformat(), "until": clock.now().isoformat()}

    async def hq_ack() -> dict:  # type: ignore[type-arg]
        r = await client.get("/api/v1/reports/response-times", params=params, headers=operator)
        assert r.status_code == 200, r.text
        by_code = {f["facility_code"]: f for f in r.json()["facilities"]}
        return pick(by_code["HQ"]["measures"])  # type: ignore[no-any-return]

    assert (await hq_ack())["met"] == 1  # 12 s within the default 15 s
    admin = await make_token("admin", org=True)
    r = await client.put(
        "/api/v1/response-targets/1/acknowledge", json={"seconds": 10, "percent": 95}, headers=admin
    )
    assert r.status_code == 200
    result = await hq_ack()
    assert (result["target_seconds"], result["met"], result["meets_target"]) == (10, 0, False)


async def test_changing_targets_needs_organisation_scope(client, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    body = {"seconds": 20, "percent": 90}
    url = "/api/v1/response-targets/1/acknowledge"
    assert (await client.put(url, json=body)).status_code == 401
    assert (await client.get("/api/v1/response-targets")).status_code == 401
    for role, scope in (
        ("operator", {"org": True}),  # may read, not change
        ("facility_manager", {"facility": "HQ"}),  # escalation:manage, but not org-wide
        ("programme_manager", {"org": True}),
    ):
        headers = await make_token(role, **scope)
        r = await client.put(url, json=body, headers=headers)
        assert r.status_code == 403, (role, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    staff = await make_token("staff", facility="HQ")
    assert (await client.get("/api/v1/response-targets", headers=staff)).status_code == 403


async def test_bad_input_is_refused(client, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    admin = await make_token("admin", org=True)
    cases = [
        ("/api/v1/response-targets/0/acknowledge", {"seconds": 10, "percent": 90}),
        ("/api/v1/response-targets/5/acknowledge", {"seconds": 10, "percent": 90}),
        ("/api/v1/response-targets/x/acknowledge", {"seconds": 10, "percent": 90}),
        ("/api/v1/response-targets/1/arrive", {"seconds": 10, "percent": 90}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": 0, "percent": 90}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": 86_401, "percent": 90}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": 10, "percent": 0}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": 10, "percent": 101}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": "ten", "percent": 90}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": 10}),
        ("/api/v1/response-targets/1/acknowledge", {"seconds": 10, "percent": 90, "x": 1}),
    ]
    for url, body in cases:
        r = await client.put(url, json=body, headers=admin)
        assert r.status_code == 422, (url, body, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    listed = (await client.get("/api/v1/response-targets", headers=admin)).json()
    assert pick(listed)["seconds"] == 15  # unchanged
