"""The alert console: list, composer with preview and confirmation, delivery dashboard with the
unacknowledged first, console acknowledgement, and the public acknowledgement page."""

from __future__ import annotations

import re

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from watchfloor.auth import service as auth_service
from watchfloor.notify.delivery import DeliveryEngine
from watchfloor.notify.models import Alert

from notify_site import Site, SmtpPeer  # isort: skip

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "Correct-Horse-Battery-9"
TOTP = pyotp.random_base32()


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


async def _user(db, clock, username: str, role: str, facility: str) -> None:  # type: ignore[no-untyped-def]
    await auth_service.create_user(
        db,
        clock,
        "system:test",
        username=username,
        password=PASSWORD,
        grants=[(role, auth_service.ScopeSpec.facility(facility))],
        totp_secret=TOTP,
    )
    await db.commit()


async def _login(client: httpx.AsyncClient, clock, username: str) -> str:  # type: ignore[no-untyped-def]
    page = await client.get("/login")
    resp = await client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert resp.status_code == 303, resp.text
    mfa = await client.get(resp.headers["location"])
    code = pyotp.TOTP(TOTP).at(clock.now())
    done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert done.status_code == 303, done.text
    clock.advance(seconds=31)
    return csrf_of((await client.get("/alerts")).text)


@pytest.fixture
async def operator_csrf(db, clock, client, site: Site) -> str:  # type: ignore[no-untyped-def]
    await _user(db, clock, "olga", "operator", site.a.code)
    return await _login(client, clock, "olga")


async def test_compose_preview_then_confirm_sends_one_alert(
    client, db, clock, site: Site, operator_csrf: str, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    page = await client.get("/alerts")
    assert page.status_code == 200
    assert "Send an alert" in page.text and site.a.code in page.text
    assert site.b.code not in page.text  # only facilities the operator may send to
    form = {
        "csrf_token": operator_csrf,
        "action": "preview",
        "template": "lockdown",
        "facility": site.a.code,
        "status": "Exercise",
        "everyone": "1",
    }
    preview = await client.post("/alerts/compose", data=form)
    assert preview.status_code == 200, preview.text
    assert "EXERCISE - this is a drill. Lockdown at Dallas Field Office." in preview.text
    assert "CAP status: Exercise" in preview.text
    assert await db.scalar(select(func.count()).select_from(Alert)) == 0  # preview sends nothing
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', preview.text).group(1)
    confirm = {**form, "action": "send", "idempotency_key": key}
    sent = await client.post("/alerts/compose", data=confirm)
    assert sent.status_code == 303, sent.text
    again = await client.post("/alerts/compose", data=confirm)  # a double click
    assert again.status_code == 303
    assert sent.headers["location"] == again.headers["location"]
    assert await db.scalar(select(func.count()).select_from(Alert)) == 1
    await engine.tick()
    assert len(smtp_peer.received) == len(site.staff) + 2
    dash = await client.get(sent.headers["location"])
    assert dash.status_code == 200
    assert "EXERCISE" in dash.text and "Not acknowledged" in dash.text
    assert 'id="nt-count-sent">7<' in dash.text
    rows = await client.get(sent.headers["location"].split("?")[0] + "/rows")
    assert rows.status_code == 200 and "nt-deliveries" in rows.text


async def test_console_acknowledgement_moves_recipient_out_of_the_waiting_list(
    client, db, clock, site: Site, operator_csrf: str, engine: DeliveryEngine
) -> None:
    resp = await client.post(
        "/alerts/compose",
        data={
            "csrf_token": operator_csrf,
            "action": "send",
            "idempotency_key": "a" * 32,
            "template": "test",
            "facility": site.a.code,
            "status": "Test",
            "people": site.staff[0].code,
        },
    )
    assert resp.status_code == 303, resp.text
    await engine.tick()
    url = resp.headers["location"].split("?")[0]
    page = await client.get(url)
    assert site.staff[0].name in page.text.split("Not acknowledged")[1]
    action = re.search(r'action="(/alerts/\d+/deliveries/\d+/acknowledge)"', page.text).group(1)
    # without the CSRF token the form post is refused
    refused = await client.post(action, data={})
    assert refused.status_code == 403
    done = await client.post(action, data={"csrf_token": operator_csrf})
    assert done.status_code == 303
    page = await client.get(url)
    assert "Not acknowledged" not in page.text
    assert "by console" in page.text


async def test_bad_composer_input_shows_an_error_and_sends_nothing(
    client, db, site: Site, operator_csrf: str
) -> None:
    bad = await client.post(
        "/alerts/compose",
        data={
            "csrf_token": operator_csrf,
            "action": "preview",
            "template": "custom",
            "facility": site.a.code,
            "status": "Actual",
            "everyone": "1",
        },
    )
    assert bad.status_code == 422
    assert "needs the value" in bad.text
    wrong = await client.post(
        "/alerts/compose",
        data={
            "csrf_token": operator_csrf,
            "action": "send",
            "idempotency_key": "b" * 32,
            "template": "lockdown",
            "facility": site.b.code,
            "everyone": "1",
        },
    )
    assert wrong.status_code == 404
    assert await db.scalar(select(func.count()).select_from(Alert)) == 0


async def test_other_facility_and_anonymous_callers_see_nothing(
    client, db, clock, site: Site, make_token
) -> None:
    from watchfloor.notify.service import Audience, send_alert

    alert = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(everyone_at_facilities=True),
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    anon = await client.get(f"/alerts/{alert_id}")
    assert anon.status_code in (302, 303) and anon.headers["location"].startswith("/login")
    await _user(db, clock, "bob", "operator", site.b.code)
    await _login(client, clock, "bob")
    page = await client.get(f"/alerts/{alert_id}")
    assert page.status_code == 404
    assert "Dallas" not in page.text
    listing = await client.get("/alerts")
    assert "Dallas" not in listing.text


async def test_public_ack_page_needs_no_login_and_only_acknowledges(
    client, db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    from watchfloor.notify.service import Audience, send_alert

    await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[site.staff[0].id, site.staff[1].id]),
        sender="user:alice",
    )
    await db.commit()
    await engine.tick()
    msg = smtp_peer.to(site.staff[0].email)[0]
    path = next(w for w in msg.body.split() if "/ack/" in w).split("watchfloor.example", 1)[1]
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    # the page shows the alert, nothing about other recipients
    assert site.staff[1].name not in page.text and site.staff[1].email not in page.text
    done = await client.post(path)
    assert "recorded" in done.text
    nonsense = await client.get("/ack/not-a-token")
    assert nonsense.status_code == 404


async def test_dashboard_shows_retries_and_fallback_when_the_smtp_peer_is_down(
    client, db, clock, site: Site, operator_csrf: str, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    smtp_peer.stop()
    resp = await client.post(
        "/alerts/compose",
        data={
            "csrf_token": operator_csrf,
            "action": "send",
            "idempotency_key": "c" * 32,
            "template": "lockdown",
            "facility": site.a.code,
            "status": "Actual",
            "people": site.staff[0].code,
        },
    )
    url = resp.headers["location"].split("?")[0]
    await engine.tick()
    page = (await client.get(url + "/rows")).text
    assert "SMTP server unreachable" in page and "next try" in page
    assert "Fallback (not used)" in page
    for _ in range(3):
        clock.advance(seconds=60)
        await engine.tick()
    page = (await client.get(url + "/rows")).text
    # e-mail failed (listed first), the SMS fallback was sent
    failed_at = page.index("nt-state-failed")
    sent_at = page.index("nt-state-sent")
    assert failed_at < sent_at
    assert 'id="nt-count-failed">1<' in page and 'id="nt-count-sent">1<' in page
