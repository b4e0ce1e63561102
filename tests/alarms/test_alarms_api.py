"""The alarm rules API and the active alarm queue: scope, validation, audit."""

from __future__ import annotations

from alarm_site import Site, emit
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord

OVERRIDE = {
    "key": "door_forced",
    "name": "Door forced (HQ: life safety)",
    "event_type": "door.forced",
    "alarm_type": "door_forced",
    "priority": 1,
    "facility_code": "HQ",
}


async def test_rules_list_and_facility_override(client, db, clock, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    manager = await make_token("facility_manager", facility="HQ")
    resp = await client.get("/api/v1/alarm-rules", headers=manager)
    assert resp.status_code == 200, resp.text
    keys = {r["key"] for r in resp.json()}
    assert {"panic", "duress", "weapon", "intrusion", "access_denied_repeated"} <= keys
    panic = next(r for r in resp.json() if r["key"] == "panic")
    assert panic["priority"] == 1 and panic["facility_code"] is None

    resp = await client.post("/api/v1/alarm-rules", json=OVERRIDE, headers=manager)
    assert resp.status_code == 201, resp.text
    rule = resp.json()
    assert rule["facility_code"] == "HQ" and rule["priority"] == 1
    again = await client.post("/api/v1/alarm-rules", json=OVERRIDE, headers=manager)
    assert again.status_code == 409
    # the override is in force at HQ only
    [alarm] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    assert alarm.priority == 1
    [lax] = await emit(db, clock, site, "LAX", "door.forced", None)
    assert lax.priority == 2
    # PATCH and DELETE the override; audited
    resp = await client.patch(
        f"/api/v1/alarm-rules/{rule['id']}",
        json={"enabled": False, "conditions": {"zones": ["LOBBY"]}},
        headers=manager,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["enabled"] is False and resp.json()["conditions"] == {"zones": ["LOBBY"]}
    resp = await client.delete(f"/api/v1/alarm-rules/{rule['id']}", headers=manager)
    assert resp.status_code == 204
    assert (
        await client.get(f"/api/v1/alarm-rules/{rule['id']}", headers=manager)
    ).status_code == 404
    actions = (
        await db.scalars(
            select(AuditRecord.action)
            .where(AuditRecord.action.startswith("alarm_rule."))
            .order_by(AuditRecord.id)
        )
    ).all()
    assert actions == ["alarm_rule.create", "alarm_rule.update", "alarm_rule.delete"]


async def test_rule_write_permissions(client, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    hq_manager = await make_token("facility_manager", facility="HQ")
    lax_manager = await make_token("facility_manager", facility="LAX")
    guard = await make_token("guard", facility="HQ")
    admin = await make_token("admin", org=True)
    org_rule = {k: v for k, v in OVERRIDE.items() if k != "facility_code"} | {"key": "custom"}
    # an organisation rule needs an organisation-wide role
    assert (
        await client.post("/api/v1/alarm-rules", json=org_rule, headers=hq_manager)
    ).status_code == 403
    assert (
        await client.post("/api/v1/alarm-rules", json=OVERRIDE, headers=guard)
    ).status_code == 403
    assert (
        await client.post("/api/v1/alarm-rules", json=OVERRIDE, headers=lax_manager)
    ).status_code == 403
    resp = await client.post("/api/v1/alarm-rules", json=org_rule, headers=admin)
    assert resp.status_code == 201, resp.text
    custom = resp.json()["id"]
    # facility managers may read organisation rules but not change them
    assert (
        await client.get(f"/api/v1/alarm-rules/{custom}", headers=hq_manager)
    ).status_code == 200
    resp = await client.patch(
        f"/api/v1/alarm-rules/{custom}", json={"priority": 2}, headers=hq_manager
    )
    assert resp.status_code == 403
    # an HQ override is invisible to LAX's manager
    resp = await client.post("/api/v1/alarm-rules", json=OVERRIDE, headers=hq_manager)
    override = resp.json()["id"]
    assert (
        await client.get(f"/api/v1/alarm-rules/{override}", headers=lax_manager)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/alarm-rules/{override}", headers=lax_manager)
    ).status_code == 404
    listed = (await client.get("/api/v1/alarm-rules", headers=lax_manager)).json()
    assert all(r["facility_code"] != "HQ" for r in listed)
    resp = await client.get("/api/v1/alarm-rules?facility=HQ", headers=lax_manager)
    assert resp.status_code == 403
    # default rules are disabled, not deleted
    panic = next(r for r in listed if r["key"] == "panic")
    resp = await client.delete(f"/api/v1/alarm-rules/{panic['id']}", headers=admin)
    assert resp.status_code == 409
    assert (await client.delete(f"/api/v1/alarm-rules/{custom}", headers=admin)).status_code == 204
    # not logged in
    assert (await client.get("/api/v1/alarm-rules")).status_code == 401


async def test_rule_validation(client, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    admin = await make_token("admin", org=True)
    bad = [
        OVERRIDE | {"priority": 0},
        OVERRIDE | {"priority": 5},
        OVERRIDE | {"priority": "high"},
        OVERRIDE | {"event_type": "door.exploded"},
        OVERRIDE | {"key": "Has Spaces"},
        OVERRIDE | {"colour": "red"},
        OVERRIDE | {"conditions": {"count": 3}},  # count needs a window
        OVERRIDE | {"conditions": {"schedule": "sometimes"}},
        OVERRIDE | {"conditions": {"zone_kinds": ["moat"]}},
        OVERRIDE | {"conditions": {"attributes": {"confidence_min": "high"}}},
        OVERRIDE | {"conditions": {"unknown": 1}},
        OVERRIDE | {"name": ""},
        OVERRIDE | {"facility_code": "NOPE"},
    ]
    for body in bad:
        resp = await client.post("/api/v1/alarm-rules", json=body, headers=admin)
        assert resp.status_code in (404, 422), (body, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await client.patch("/api/v1/alarm-rules/1", json={"priority": None}, headers=admin)
    assert resp.status_code == 422
    for rule_id in ("0", "abc", str(2**40)):
        resp = await client.get(f"/api/v1/alarm-rules/{rule_id}", headers=admin)
        assert resp.status_code == 422, rule_id
    assert (await client.get("/api/v1/alarm-rules/99999", headers=admin)).status_code == 404


async def test_active_alarm_queue_is_sorted_and_scoped(
    client, db, clock, site: Site, make_token
) -> None:  # type: ignore[no-untyped-def]
    await emit(db, clock, site, "HQ", "door.tamper", "DOOR-1")
    clock.advance(seconds=1)
    await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    clock.advance(seconds=1)
    await emit(db, clock, site, "LAX", "panic.pressed", "PANIC-9")
    clock.advance(seconds=1)
    await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    operator = await make_token("operator", org=True)
    resp = await client.get("/api/v1/alarms", headers=operator)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == 4
    assert [(a["priority"], a["facility_code"]) for a in body["items"]] == [
        (1, "LAX"),
        (1, "HQ"),
        (2, "HQ"),
        (3, "HQ"),
    ]
    guard = await make_token("guard", facility="HQ")
    items = (await client.get("/api/v1/alarms", headers=guard)).json()["items"]
    assert {a["facility_code"] for a in items} == {"HQ"}
    resp = await client.get("/api/v1/alarms?facility=LAX", headers=guard)
    assert resp.status_code == 403
    resp = await client.get("/api/v1/alarms?priority=1&facility=HQ", headers=operator)
    assert [a["device"] for a in resp.json()["items"]] == ["PANIC-1 device"]
    staff = await make_token("staff", facility="HQ")
    assert (await client.get("/api/v1/alarms", headers=staff)).status_code == 403
    assert (await client.get("/api/v1/alarms?priority=9", headers=operator)).status_code == 422


async def test_life_safety_rules_cannot_be_silenced(client, site: Site, make_token) -> None:  # type: ignore[no-untyped-def]
    admin = await make_token("admin", org=True)
    rules = (await client.get("/api/v1/alarm-rules", headers=admin)).json()
    panic = next(r for r in rules if r["key"] == "panic")
    weapon = next(r for r in rules if r["key"] == "weapon")
    for change in (
        {"enabled": False},
        {"priority": 2},
        {"conditions": {"schedule": "outside_hours"}},
        {"conditions": {"count": 3, "window_seconds": 60}},
    ):
        resp = await client.patch(f"/api/v1/alarm-rules/{panic['id']}", json=change, headers=admin)
        assert resp.status_code == 422, (change, resp.text)
    override = {
        "key": "duress",
        "name": "Duress",
        "event_type": "duress.code",
        "alarm_type": "duress",
        "priority": 1,
        "enabled": False,
        "facility_code": "HQ",
    }
    resp = await client.post("/api/v1/alarm-rules", json=override, headers=admin)
    assert resp.status_code == 422
    # a weapon detector's confidence threshold is allowed
    resp = await client.patch(
        f"/api/v1/alarm-rules/{weapon['id']}",
        json={"conditions": {"attributes": {"confidence_min": 0.7}}},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
