"""Event ingest over HTTP: single and batch, idempotency, dead letters, scope."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from conftest import iso
from watchfloor.bus.models import OutboxMessage
from watchfloor.events.models import DeadLetter, Event
from watchfloor.sites.models import Device

PROBLEM = "application/problem+json"


def ev(device: str = "DOOR-1", type_: str = "door.forced", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"device": device, "type": type_}
    body.update(extra)
    return body


async def count(db, model) -> int:  # type: ignore[no-untyped-def]
    return (await db.execute(select(func.count()).select_from(model))).scalar_one()


async def test_single_event_is_stored_with_outbox_message(client, db, clock, site, device_token):
    body = ev(occurred_at=iso(clock.now(), -3), attributes={"door": "Front"})
    r = await client.post("/api/v1/events", json=body, headers=device_token)
    assert r.status_code == 201, r.text
    event_id = r.json()["event_id"]
    assert r.json()["duplicate"] is False
    stored = await db.get(Event, event_id)
    assert stored is not None
    assert (stored.type, stored.device_id, stored.facility_id) == (
        "door.forced",
        site.door_id,
        site.alpha_id,
    )
    assert stored.sender == "token:alpha-door-feed"
    assert stored.attributes == {"door": "Front"}
    msg = (await db.execute(select(OutboxMessage))).scalar_one()
    assert msg.subject == "event.ALPHA.door_forced"
    assert msg.payload["event_id"] == event_id
    assert msg.payload["device_code"] == "DOOR-1"
    assert msg.payload["zone_id"] is not None
    assert msg.published_at is None
    db.expire_all()
    device = await db.get(Device, site.door_id)
    assert device is not None and device.last_seen_at == clock.now()


async def test_facility_slash_device_form(client, db, clock, site, make_token):
    headers = await make_token("device", region="R1")
    r = await client.post(
        "/api/v1/events",
        json=ev("ALPHA/PANIC-1", "panic.pressed", occurred_at=iso(clock.now())),
        headers=headers,
    )
    assert r.status_code == 201, r.text
    # a bare device code is ambiguous for a region-wide token: refused and kept
    r = await client.post("/api/v1/events", json=ev(occurred_at=iso(clock.now())), headers=headers)
    assert r.status_code == 422
    assert "FACILITY/DEVICE" in r.json()["detail"]


async def test_repeated_idempotency_key_is_stored_once(client, db, clock, site, device_token):
    body = ev(occurred_at=iso(clock.now()), idempotency_key="k-1")
    first = await client.post("/api/v1/events", json=body, headers=device_token)
    again = await client.post("/api/v1/events", json=body, headers=device_token)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    assert await count(db, Event) == 1
    assert await count(db, OutboxMessage) == 1


async def test_batch_accepts_valid_items_and_dead_letters_the_rest(
    client, db, clock, site, device_token
):
    now = clock.now()
    items = [
        ev(occurred_at=iso(now), idempotency_key="a"),
        ev(occurred_at=iso(now), idempotency_key="a"),  # same key in the same batch
        ev("NOPE", occurred_at=iso(now)),
        ev(type_="door.exploded", occurred_at=iso(now)),
        ev("PANIC-1", "panic.pressed", occurred_at=iso(now)),
        "not an object",
    ]
    r = await client.post("/api/v1/events/batch", json={"events": items}, headers=device_token)
    assert r.status_code == 207, r.text
    out = r.json()
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (2, 1, 3)
    statuses = [x["status"] for x in out["results"]]
    assert statuses == ["accepted", "duplicate", "rejected", "rejected", "accepted", "rejected"]
    assert out["results"][1]["event_id"] == out["results"][0]["event_id"]
    assert "no device 'NOPE'" in out["results"][2]["error"]
    assert "unknown event type" in out["results"][3]["error"]
    assert await count(db, Event) == 2
    letters = (await db.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars().all()
    assert len(letters) == 3
    assert all(x.facility_id == site.alpha_id for x in letters)
    assert json.loads(letters[0].raw)["device"] == "NOPE"
    assert letters[0].sender == "token:alpha-door-feed"
    assert [x.id for x in letters] == [out["results"][i]["dead_letter_id"] for i in (2, 3, 5)]


async def test_all_valid_batch_is_200(client, clock, site, device_token):
    items = [ev(occurred_at=iso(clock.now(), -i)) for i in range(50)]
    r = await client.post("/api/v1/events/batch", json={"events": items}, headers=device_token)
    assert r.status_code == 200
    ids = [x["event_id"] for x in r.json()["results"]]
    assert len(set(ids)) == 50 and ids == sorted(ids)


async def test_malformed_payloads_are_dead_lettered_with_reasons(
    client, db, clock, site, device_token
):
    now = clock.now()
    cases = [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe\x00", "not UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (
            b'{"device": "DOOR-1", "type": "door.held_open", "occurred_at": "2026-01-05T12:00:00Z",'
            b' "attributes": {"held_seconds": NaN}}',
            "not UTF-8 JSON",
        ),
        (json.dumps(ev()).encode(), "occurred_at"),
        (json.dumps(ev(occurred_at="2026-01-05T12:00:00")).encode(), "timezone"),
        (json.dumps(ev(occurred_at=iso(now, 3600))).encode(), "future"),
        (json.dumps(ev(occurred_at=iso(now, -86400 * 40))).encode(), "30 days"),
        (json.dumps(ev(occurred_at=iso(now), colour="red")).encode(), "colour"),
        (json.dumps(ev(type_="bogus", occurred_at=iso(now))).encode(), "unknown event type"),
        (json.dumps(ev(type_="device.offline", occurred_at=iso(now))).encode(), "Watchfloor"),
        (
            json.dumps(
                ev("CAM-1", "weapon.detected", occurred_at=iso(now), attributes={"confidence": 2})
            ).encode(),
            "no device",
        ),
        (
            json.dumps(
                ev(type_="weapon.detected", occurred_at=iso(now), attributes={"confidence": 2})
            ).encode(),
            "confidence",
        ),
        (
            json.dumps(ev(occurred_at=iso(now), attributes={"door": "x" * 5000})).encode(),
            "attributes",
        ),
        (json.dumps(ev(device="bad device!", occurred_at=iso(now))).encode(), "device"),
    ]
    for raw, reason in cases:
        r = await client.post(
            "/api/v1/events",
            content=raw,
            headers={**device_token, "content-type": "application/json"},
        )
        assert r.status_code == 422, (raw, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert reason in r.json()["detail"], (raw, r.json()["detail"])
        letter = await db.get(DeadLetter, r.json()["errors"][0]["dead_letter_id"])
        assert letter is not None and reason in letter.reason
        assert letter.source == "http" and letter.channel == "/api/v1/events"
    assert await count(db, DeadLetter) == len(cases)
    assert await count(db, Event) == 0


async def test_oversized_batch_is_refused_and_kept(client, db, clock, site, device_token):
    items = [ev(occurred_at=iso(clock.now()))] * 1001
    r = await client.post("/api/v1/events/batch", json={"events": items}, headers=device_token)
    assert r.status_code == 422
    assert "1000" in r.json()["detail"]
    assert await count(db, DeadLetter) == 1
    assert await count(db, Event) == 0
    r = await client.post("/api/v1/events/batch", json={"events": [], "x": 1}, headers=device_token)
    assert r.status_code == 422


async def test_callers_without_ingest_or_scope_are_refused(
    client, db, clock, site, device_token, make_token
):
    body = ev(occurred_at=iso(clock.now()))
    assert (await client.post("/api/v1/events", json=body)).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.post("/api/v1/events", json=body, headers=bad)).status_code == 401
    operator = await make_token("operator", org=True)
    r = await client.post("/api/v1/events", json=body, headers=operator)
    assert r.status_code == 403
    # a token of ALPHA reporting for BRAVO: refused, not dead-lettered
    r = await client.post(
        "/api/v1/events", json=ev("BRAVO/CAM-1", occurred_at=iso(clock.now())), headers=device_token
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/events",
        json=ev("NOWHERE/CAM-1", occurred_at=iso(clock.now())),
        headers=device_token,
    )
    assert r.status_code == 403
    mixed = [body, ev("BRAVO/CAM-1", occurred_at=iso(clock.now()))]
    r = await client.post("/api/v1/events/batch", json={"events": mixed}, headers=device_token)
    assert r.status_code == 403
    assert await count(db, Event) == 0
    assert await count(db, DeadLetter) == 0
    # a facility manager of ALPHA may report for ALPHA
    manager = await make_token("facility_manager", facility="ALPHA")
    assert (await client.post("/api/v1/events", json=body, headers=manager)).status_code == 201


async def test_catalogue_lists_the_issue_types(client, site, device_token):
    r = await client.get("/api/v1/events/catalogue", headers=device_token)
    assert r.status_code == 200
    types = {t["type"] for t in r.json()}
    expected = [
        "panic.pressed",
        "duress.code",
        "door.forced",
        "door.held_open",
        "door.tamper",
        "motion.detected",
        "glass.break",
        "weapon.detected",
        "person.detected",
        "reader.access_denied",
        "device.heartbeat",
        "device.trouble",
        "device.restored",
        "device.offline",
        "test.signal",
    ]
    for name in expected:
        assert name in types
    weapon = next(t for t in r.json() if t["type"] == "weapon.detected")
    assert "confidence" in weapon["attributes"]


async def test_dead_letters_are_listed_in_scope_and_resolved(
    client, db, clock, site, device_token, make_token
):
    await client.post("/api/v1/events", content=b"{oops", headers=device_token)  # ALPHA's
    region_token = await make_token("device", org=True)
    await client.post(
        "/api/v1/events", json=ev("GHOST/X", occurred_at=iso(clock.now())), headers=region_token
    )  # unknown facility: no facility
    bravo_mgr = await make_token("facility_manager", facility="BRAVO")
    alpha_mgr = await make_token("facility_manager", facility="ALPHA")
    operator = await make_token("operator", org=True)
    admin = await make_token("admin", org=True)

    r = await client.get("/api/v1/dead-letters", headers=alpha_mgr)
    assert r.status_code == 200
    assert r.json()["total"] == 1
    [item] = r.json()["items"]
    assert item["facility_code"] == "ALPHA" and item["raw"] == "{oops"
    assert (await client.get("/api/v1/dead-letters", headers=bravo_mgr)).json()["total"] == 0
    assert (await client.get("/api/v1/dead-letters", headers=operator)).json()["total"] == 2
    r = await client.get("/api/v1/dead-letters?facility=ALPHA", headers=bravo_mgr)
    assert r.status_code == 403
    assert (await client.get("/api/v1/dead-letters?state=bogus", headers=admin)).status_code == 422
    assert (await client.get("/api/v1/dead-letters")).status_code == 401
    assert (await client.get("/api/v1/dead-letters", headers=device_token)).status_code == 403

    letter_id = item["id"]
    url = f"/api/v1/dead-letters/{letter_id}/resolve"
    assert (await client.post(url, headers=bravo_mgr)).status_code == 404
    assert (await client.post(url, headers=operator)).status_code == 403
    r = await client.post(url, json={"note": "device firmware fixed"}, headers=alpha_mgr)
    assert r.status_code == 200
    assert r.json()["resolved_by"] == "token:test-facility_manager"
    assert (await client.post(url, headers=alpha_mgr)).status_code == 409
    r = await client.get("/api/v1/dead-letters?state=resolved", headers=alpha_mgr)
    assert r.json()["total"] == 1
    assert (await client.get("/api/v1/dead-letters", headers=alpha_mgr)).json()["total"] == 0
    # the facility-less one needs an organisation-wide writer
    other = (await client.get("/api/v1/dead-letters", headers=admin)).json()["items"][0]
    assert other["facility_id"] is None
    url = f"/api/v1/dead-letters/{other['id']}/resolve"
    assert (await client.post(url, headers=alpha_mgr)).status_code == 404
    assert (await client.post(url, headers=admin)).status_code == 200
    assert (await client.post("/api/v1/dead-letters/0/resolve", headers=admin)).status_code == 422
    r = await client.post("/api/v1/dead-letters/999/resolve", headers=admin)
    assert r.status_code == 404
    from watchfloor.audit.models import AuditRecord

    actions = (await db.execute(select(AuditRecord.action))).scalars().all()
    assert actions.count("dead_letter.resolve") == 2


async def test_new_device_is_known_to_ingest_at_once(client, db, clock, site, device_token):
    body = ev("DOOR-2", occurred_at=iso(clock.now()))
    r = await client.post("/api/v1/events", json=body, headers=device_token)
    assert r.status_code == 422  # unknown (and the facility's devices are now cached)
    now = clock.now()
    db.add(
        Device(
            facility_id=site.alpha_id,
            code="DOOR-2",
            name="Side door",
            kind="door",
            created_at=now,
            updated_at=now,
        )
    )
    await db.commit()
    r = await client.post("/api/v1/events", json=body, headers=device_token)
    assert r.status_code == 201, r.text


def test_docs_list_every_catalogue_type():
    from pathlib import Path

    from watchfloor.events.catalogue import CATALOGUE

    text = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    missing = [name for name in CATALOGUE if f"| `{name}` |" not in text]
    assert not missing, f"docs/events.md does not document {missing}"
