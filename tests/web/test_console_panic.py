"""The staff panic page: one press, a discreet confirmation, and an identical code response."""

from __future__ import annotations

import re

import httpx
import pyotp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.auth import service as auth_service
from watchfloor.clock import FakeClock
from watchfloor.events.models import Event
from watchfloor.panic.models import PanicPress

from .conftest import csrf_of
from .seed import PASSWORD

STAFF_TOTP = "MFRGGZDFMZTWQ2LKMFRGGZDFMZTWQ2LK"


async def _staff(maker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    async with maker() as db:
        await auth_service.create_user(
            db,
            clock,
            "system:test",
            username="sam",
            display_name="Sam Staff",
            password=PASSWORD,
            grants=[("staff", auth_service.ScopeSpec.facility("DAL-FO"))],
            totp_secret=STAFF_TOTP,
        )
        await db.commit()


async def _press(client: httpx.AsyncClient, csrf: str) -> int:
    page = await client.get("/panic")
    assert page.status_code == 200
    assert "Raise silent alarm" in page.text
    # staff see no shortcuts to pages they cannot open
    footer = page.text[page.text.index('class="footer"') :]
    assert "facilities" not in footer and "alarm queue" not in footer
    sent = await client.post("/panic", data={"csrf_token": csrf})
    assert sent.status_code == 303, sent.text
    found = re.match(r"/panic\?sent=(\d+)$", sent.headers["location"])
    assert found, sent.headers["location"]
    return int(found.group(1))


async def test_staff_press_confirm_and_cancel_look_the_same_as_duress(
    client: httpx.AsyncClient,
    accounts: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await _staff(sessionmaker, clock)
    csrf = await _login_staff(client, clock)
    # set the codes first
    codes_page = await client.get("/panic/codes")
    assert codes_page.status_code == 200
    same = await client.post(
        "/panic/codes", data={"csrf_token": csrf, "cancel_code": "1234", "duress_code": "1234"}
    )
    assert "error=" in same.headers["location"]
    ok = await client.post(
        "/panic/codes", data={"csrf_token": csrf, "cancel_code": "1234", "duress_code": "9876"}
    )
    assert ok.headers["location"] == "/panic/codes?saved=1"

    press_id = await _press(client, csrf)
    confirm = await client.get(f"/panic?sent={press_id}")
    assert "Sent." in confirm.text
    assert "enter your cancel code" in confirm.text
    assert 'id="panic-countdown">30<' in confirm.text
    # nothing loud on the sender's screen: no priority words, no alarm banner
    # (words, not substrings: a random CSRF token may well contain the letters "P1")
    words = set(re.findall(r"[A-Za-z0-9]+", re.sub(r'(?:value|content)="[^"]*"', "", confirm.text)))
    assert "P1" not in words and "Life safety" not in confirm.text
    async with sessionmaker() as db:
        press = await db.get(PanicPress, press_id)
        assert press is not None
        event = await db.get(Event, press.event_id)
        assert event is not None and event.type == "panic.pressed"

    wrong = await client.post(
        f"/panic/{press_id}/cancel", data={"csrf_token": csrf, "code": "0000"}
    )
    assert wrong.status_code == 303 and "error=" in wrong.headers["location"]
    page = await client.get(wrong.headers["location"])
    assert "attempts left" in page.text

    cancelled = await client.post(
        f"/panic/{press_id}/cancel", data={"csrf_token": csrf, "code": "1234"}
    )
    cancel_page = (await client.get(cancelled.headers["location"])).text

    second = await _press(client, csrf)
    duress = await client.post(f"/panic/{second}/cancel", data={"csrf_token": csrf, "code": "9876"})
    duress_page = (await client.get(duress.headers["location"])).text
    assert cancelled.headers["location"] == duress.headers["location"] == "/panic?outcome=cancelled"
    assert cancel_page == duress_page
    async with sessionmaker() as db:
        types = [e.type for e in (await db.scalars(select(Event).order_by(Event.id))).all()]
    assert types.count("panic.pressed") == 2 and "duress.code" in types

    # after the window the code no longer cancels: the sender is told plainly
    third = await _press(client, csrf)
    clock.advance(seconds=31)
    late = await client.post(f"/panic/{third}/cancel", data={"csrf_token": csrf, "code": "1234"})
    assert "error=" in late.headers["location"]
    late_page = (await client.get(late.headers["location"])).text
    assert "Too late" in late_page and "Submit code" not in late_page


async def _login_staff(client: httpx.AsyncClient, clock: FakeClock) -> str:
    """Log in as the staff member; a person who can only raise alarms lands on the panic page."""
    page = await client.get("/login")
    resp = await client.post(
        "/login", data={"username": "sam", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    mfa = await client.get(resp.headers["location"])
    code = pyotp.TOTP(STAFF_TOTP).at(clock.now())
    done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert done.status_code == 303 and done.headers["location"] == "/panic"
    return csrf_of((await client.get("/panic")).text)


async def test_panic_page_needs_a_person_and_csrf(
    client: httpx.AsyncClient, accounts: None, make_token, sessionmaker, clock
) -> None:
    token = await make_token("operator", org=True)
    assert (await client.post("/panic", headers=token)).status_code == 403
    await _staff(sessionmaker, clock)
    await _login_staff(client, clock)
    refused = await client.post("/panic", data={})
    assert refused.status_code == 403
