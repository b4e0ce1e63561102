"""The incidents API: queue order, detail, actions (audited, published), scope and bad input."""

from __future__ import annotations

from alarm_site import Site, emit
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.bus.models import OutboxMessage

PROBLEM = "application/problem+json"


async def _updates(db) -> list[str]:  # type: ignore[no-untyped-def]
    rows = (
        await db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.subject.like("incident.%.updated"))
            .order_by(OutboxMessage.id)
        )
    ).all()
    return [f"{r.subject}:{r.payload['change']}" for r in rows]


async def test_an_operator_works_an_incident_end_to_end(
    client, db, clock, site: Site, make_token
) -> None:  # type: ignore[no-untyped-def]
    [alarm] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    operator = await make_token("operator", org=True, name="olga")
    iid = alarm.incident_id
    base = f"/api/v1/incidents/{iid}"

    clock.advance(seconds=8)
    resp = await client.post(f"{base}/acknowledge", headers=operator)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "acknowledged"
    assert resp.json()["acknowledged_by"] == "token:olga"
    assert (await client.post(f"{base}/acknowledge", headers=operator)).status_code == 409

    clock.advance(seconds=20)
    resp = await client.post(f"{base}/dispatch", json={"units": ["POLICE"]}, headers=operator)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "dispatched"
    clock.advance(seconds=30)
    resp = await client.post(f"{base}/units/POLICE/en-route", headers=operator)
    assert resp.status_code == 200, resp.text
    clock.advance(seconds=100)
    resp = await client.post(f"{base}/units/POLICE/on-scene", headers=operator)
    assert resp.json()["status"] == "on_scene"
    resp = await client.post(f"{base}/notes", json={"text": "Suspect detained"}, headers=operator)
    assert resp.status_code == 201
    resp = await client.post(f"{base}/contain", headers=operator)
    assert resp.json()["status"] == "contained"
    resp = await client.post(f"{base}/close", json={"disposition": "false_alarm"}, headers=operator)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith(PROBLEM)
    resp = await client.post(f"{base}/close", json={"disposition": "real"}, headers=operator)
    assert resp.status_code == 200, resp.text

    detail = (await client.get(base, headers=operator)).json()
    assert detail["status"] == "closed" and detail["disposition"] == "real"
    assert detail["metrics"]["acknowledge_seconds"] == 8.0
    assert detail["metrics"]["dispatch_seconds"] == 28.0
    assert detail["metrics"]["on_scene_seconds"] == 158.0
    [unit] = detail["dispatches"]
    assert unit["unit_code"] == "POLICE" and unit["metrics"]["en_route_seconds"] == 30.0
    assert [a["id"] for a in detail["alarms"]] == [alarm.id]
    assert detail["alarms"][0]["state"] == "resolved"
    kinds = [t["kind"] for t in detail["timeline"]]
    assert kinds[0] == "alarm" and "note" in kinds and "dispatch" in kinds
    assert any(t["kind"] == "escalation" for t in detail["timeline"]) is False

    actions = (
        await db.scalars(
            select(AuditRecord.action)
            .where(AuditRecord.target_type == "incident")
            .order_by(AuditRecord.id)
        )
    ).all()
    assert actions == [
        "incident.acknowledge",
        "incident.dispatch",
        "incident.unit_en_route",
        "incident.unit_on_scene",
        "incident.note",
        "incident.contain",
        "incident.close",
    ]
    assert await _updates(db) == [
        "incident.HQ.updated:acknowledged",
        "incident.HQ.updated:dispatched",
        "incident.HQ.updated:unit_en_route",
        "incident.HQ.updated:unit_on_scene",
        "incident.HQ.updated:note",
        "incident.HQ.updated:contained",
        "incident.HQ.updated:closed",
    ]


async def test_incident_list_order_filters_and_scope(
    client, db, clock, site: Site, make_token
) -> None:  # type: ignore[no-untyped-def]
    [p3] = await emit(db, clock, site, "HQ", "door.tamper", "DOOR-1")
    clock.advance(seconds=10)
    [lax] = await emit(db, clock, site, "LAX", "panic.pressed", "PANIC-9")
    clock.advance(seconds=3600)
    [p2] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    operator = await make_token("operator", org=True)
    resp = await client.get("/api/v1/incidents", headers=operator)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert [i["incident_id"] for i in items] == [lax.incident_id, p2.incident_id, p3.incident_id]
    resp = await client.get("/api/v1/incidents?facility=HQ&priority=3", headers=operator)
    assert [i["incident_id"] for i in resp.json()["items"]] == [p3.incident_id]
    await client.post(
        f"/api/v1/incidents/{p3.incident_id}/close", json={"disposition": "test"}, headers=operator
    )
    resp = await client.get("/api/v1/incidents?open=true", headers=operator)
    assert resp.json()["total"] == 2
    resp = await client.get("/api/v1/incidents?status=closed", headers=operator)
    assert [i["incident_id"] for i in resp.json()["items"]] == [p3.incident_id]

    # a guard at LAX sees only LAX; HQ's incident is not found for them
    guard = await make_token("guard", facility="LAX")
    items = (await client.get("/api/v1/incidents", headers=guard)).json()["items"]
    assert [i["facility_code"] for i in items] == ["LAX"]
    hq_url = f"/api/v1/incidents/{p2.incident_id}"
    assert (await client.get(hq_url, headers=guard)).status_code == 404
    for action in ("acknowledge", "contain"):
        resp = await client.post(f"{hq_url}/{action}", headers=guard)
        assert resp.status_code == 404 and resp.headers["content-type"].startswith(PROBLEM)
    assert (await client.get("/api/v1/incidents?facility=HQ", headers=guard)).status_code == 403
    # a programme manager reads but does not act
    reader = await make_token("programme_manager", org=True)
    assert (await client.get(hq_url, headers=reader)).status_code == 200
    assert (await client.post(f"{hq_url}/acknowledge", headers=reader)).status_code == 403
    # staff have no access to incidents; anonymous callers are refused
    staff = await make_token("staff", facility="HQ")
    assert (await client.get("/api/v1/incidents", headers=staff)).status_code == 403
    assert (await client.get(hq_url)).status_code == 401


async def test_bad_input_is_a_problem_not_a_crash(
    client, db, clock, site: Site, make_token
) -> None:  # type: ignore[no-untyped-def]
    [alarm] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    operator = await make_token("operator", org=True)
    base = f"/api/v1/incidents/{alarm.incident_id}"
    cases = [
        ("get", "/api/v1/incidents/0", None, 422),
        ("get", "/api/v1/incidents/abc", None, 422),
        ("get", f"/api/v1/incidents/{2**70}", None, 422),
        ("get", "/api/v1/incidents/987654321", None, 404),
        ("get", "/api/v1/incidents?priority=0", None, 422),
        ("get", "/api/v1/incidents?status=lost", None, 422),
        ("post", f"{base}/dispatch", {"units": []}, 422),
        ("post", f"{base}/dispatch", {"units": ["POLICE"], "urgent": True}, 422),
        ("post", f"{base}/dispatch", {"units": ["NOT-HERE"]}, 422),
        ("post", f"{base}/dispatch", {"units": "POLICE"}, 422),
        ("post", f"{base}/units/bad code/en-route", None, 422),
        ("post", f"{base}/close", {"disposition": "solved"}, 422),
        ("post", f"{base}/close", {}, 422),
        ("post", f"{base}/notes", {"text": ""}, 422),
        ("post", f"{base}/notes", {"text": "nul\x00byte"}, 422),
        ("post", f"{base}/confirm-cancel", None, 409),
        ("get", "/api/v1/reports/response-times?since=2026-02-01T00:00:00Z"
                "&until=2026-01-01T00:00:00Z", None, 422),
        ("get", "/api/v1/reports/response-times?since=yesterday", None, 422),
        ("get", "/api/v1/reports/response-times?until=0001-01-02T00:00:00Z", None, 422),
        ("get", "/api/v1/reports/response-times?facility=NOPE", None, 404),
    ]  # fmt: skip
    for method, url, body, expected in cases:
        kwargs = {"json": body} if body is not None else {}
        resp = await client.request(method, url, headers=operator, **kwargs)
        assert resp.status_code == expected, (url, body, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith(PROBLEM), url


async def test_response_time_report_api(client, db, clock, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    [a] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    operator = await make_token("operator", org=True)
    clock.advance(seconds=9)
    await client.post(f"/api/v1/incidents/{a.incident_id}/acknowledge", headers=operator)
    clock.advance(seconds=3600)
    [b] = await emit(db, clock, site, "LAX", "panic.pressed", "PANIC-9")
    clock.advance(seconds=30)
    await client.post(f"/api/v1/incidents/{b.incident_id}/acknowledge", headers=operator)
    params = {"since": start.isoformat(), "until": clock.now().isoformat()}
    resp = await client.get("/api/v1/reports/response-times", params=params, headers=operator)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    by_code = {f["facility_code"]: f for f in report["facilities"]}

    def pick(rows):
        return next(m for m in rows if m["priority"] == 1 and m["measure"] == "acknowledge")

    assert pick(by_code["HQ"]["measures"])["percent_met"] == 100.0
    assert pick(by_code["LAX"]["measures"])["percent_met"] == 0.0
    floor = pick(report["watch_floor"])
    assert (floor["incidents"], floor["met"], floor["percent_met"], floor["meets_target"]) == (
        2, 1, 50.0, False,
    )  # fmt: skip
    # a facility's guard gets only their facility; asking for another is refused
    guard = await make_token("guard", facility="LAX")
    resp = await client.get("/api/v1/reports/response-times", params=params, headers=guard)
    assert [f["facility_code"] for f in resp.json()["facilities"]] == ["LAX"]
    assert pick(resp.json()["watch_floor"])["incidents"] == 1
    resp = await client.get(
        "/api/v1/reports/response-times", params=params | {"facility": "HQ"}, headers=guard
    )
    assert resp.status_code == 403
