"""The lockdown console: the two-step control, the live door list, lift with approval, EXERCISE
banner, and role + facility scope on every page (browser sessions with CSRF)."""

from __future__ import annotations

import re

import httpx
import pyotp
import pytest

from watchfloor.auth import service as auth_service

PASSWORD = "correct horse battery staple"
SECRETS = {
    "olga": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",  # operator, org-wide: starts, cannot lift
    "fred": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",  # facility manager at HQ: lifts
    "fiona": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",  # facility manager at HQ: approves
    "larry": "MFRGGZDFMZTWQ2LKMFRGGZDFMZTWQ2LK",  # guard at LAX only
}
GRANTS = {
    "olga": ("operator", auth_service.ScopeSpec.org()),
    "fred": ("facility_manager", auth_service.ScopeSpec.facility("HQ")),
    "fiona": ("facility_manager", auth_service.ScopeSpec.facility("HQ")),
    "larry": ("guard", auth_service.ScopeSpec.facility("LAX")),
}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


@pytest.fixture
async def users(site, sessionmaker, clock) -> None:  # type: ignore[no-untyped-def]
    async with sessionmaker() as db:
        for name, (role, scope) in GRANTS.items():
            await auth_service.create_user(
                db,
                clock,
                "system:test",
                username=name,
                display_name=name.title(),
                password=PASSWORD,
                grants=[(role, scope)],
                totp_secret=SECRETS[name],
            )
        await db.commit()


@pytest.fixture
async def runtime(running_app, clock):  # type: ignore[no-untyped-def]
    rt = running_app.state.runtime

    async def no_wait(seconds: float) -> None:
        clock.advance(seconds=seconds)

    rt.lockdown.sleep = no_wait
    return rt


async def browser(app, clock, name: str) -> tuple[httpx.AsyncClient, str]:  # type: ignore[no-untyped-def]
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
        base_url="http://testserver",
    )
    page = await client.get("/login")
    resp = await client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert resp.status_code == 303, resp.text
    mfa = await client.get(resp.headers["location"])
    code = pyotp.TOTP(SECRETS[name]).at(clock.now())
    done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert done.status_code == 303, done.text
    clock.advance(seconds=31)
    home = await client.get("/lockdowns")
    assert home.status_code == 200, home.text
    return client, csrf_of(home.text)


async def test_two_step_lockdown_live_door_list_and_lift_with_approval(
    running_app, runtime, users, clock
) -> None:
    olga, csrf = await browser(running_app, clock, "olga")
    listing = await olga.get("/lockdowns")
    assert 'href="/lockdowns/new?facility=HQ"' in listing.text
    assert "Lock down Secure zone" in listing.text

    confirm = await olga.get("/lockdowns/new?facility=HQ")
    assert confirm.status_code == 200
    assert "Lock down 6 doors at HQ Office now" in confirm.text
    zone = await olga.get("/lockdowns/new?facility=HQ&zone=SECURE")
    assert "Lock down 3 doors at Secure zone, HQ Office now" in zone.text

    # without the form's CSRF token nothing happens
    refused = await olga.post("/lockdowns/start", data={"facility": "HQ"})
    assert refused.status_code == 403
    started = await olga.post(
        "/lockdowns/start",
        data={"facility": "HQ", "reason": "Armed intruder", "csrf_token": csrf},
    )
    assert started.status_code == 303
    url = started.headers["location"]
    assert re.fullmatch(r"/lockdowns/\d+", url)
    await runtime.lockdown.wait()
    page = await olga.get(url)
    assert page.status_code == 200
    assert 'id="ld-locked">6<' in page.text and 'id="ld-failed">0<' in page.text
    assert page.text.count('data-state="locked"') == 7  # the strip and six doors
    assert "Lift lockdown" not in page.text  # operators cannot lift
    fragment = await olga.get(url + "/doors")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Armed intruder" in (await olga.get("/lockdowns")).text
    # a second lockdown of the same facility is refused on the confirmation page
    again = await olga.get("/lockdowns/new?facility=HQ")
    assert "already locked down" in again.text

    not_allowed = await olga.post(url + "/action", data={"action": "lift", "csrf_token": csrf})
    assert not_allowed.status_code == 403

    fred, fred_csrf = await browser(running_app, clock, "fred")
    asked = await fred.post(
        url + "/action", data={"action": "lift", "reason": "Cleared", "csrf_token": fred_csrf}
    )
    assert asked.status_code == 303 and "error" not in asked.headers["location"]
    mine = await fred.get(url)
    assert "A second person must approve" in mine.text and "Approve lift" not in mine.text
    self_approve = await fred.post(
        url + "/action", data={"action": "approve", "csrf_token": fred_csrf}
    )
    assert "error=" in self_approve.headers["location"]

    fiona, fiona_csrf = await browser(running_app, clock, "fiona")
    assert "Approve lift" in (await fiona.get(url)).text
    ok = await fiona.post(url + "/action", data={"action": "approve", "csrf_token": fiona_csrf})
    assert ok.status_code == 303 and "error" not in ok.headers["location"]
    await runtime.lockdown.wait()
    lifted = await fiona.get(url)
    assert "LIFTED" in lifted.text and "approved by user:fiona" in lifted.text
    for c in (olga, fred, fiona):
        await c.aclose()


async def test_a_drill_shows_the_exercise_banner(running_app, runtime, users, clock) -> None:
    olga, csrf = await browser(running_app, clock, "olga")
    started = await olga.post(
        "/lockdowns/start",
        data={"facility": "LAX", "exercise": "1", "csrf_token": csrf},
    )
    page = await olga.get(started.headers["location"])
    assert "EXERCISE — this lockdown is a drill" in page.text
    assert "<title>EXERCISE" in page.text
    await runtime.lockdown.wait()
    assert "EXERCISE" in (await olga.get("/lockdowns")).text
    await olga.aclose()


async def test_pages_keep_to_role_and_facility_scope(running_app, runtime, users, clock) -> None:
    olga, csrf = await browser(running_app, clock, "olga")
    started = await olga.post("/lockdowns/start", data={"facility": "HQ", "csrf_token": csrf})
    url = started.headers["location"]
    await runtime.lockdown.wait()

    larry, larry_csrf = await browser(running_app, clock, "larry")
    listing = (await larry.get("/lockdowns")).text
    assert "HQ Office" not in listing  # neither the lockdown nor a control for HQ
    assert 'href="/lockdowns/new?facility=LAX"' in listing
    # the facility page carries the lockdown control for those who may use it
    facility_page = await larry.get("/facilities/LAX")
    assert 'href="/lockdowns/new?facility=LAX"' in facility_page.text
    assert (await larry.get(url)).status_code == 404
    assert (await larry.get(url + "/doors")).status_code == 404
    assert (await larry.get("/lockdowns/new?facility=HQ")).status_code == 404
    post = await larry.post("/lockdowns/start", data={"facility": "HQ", "csrf_token": larry_csrf})
    assert post.status_code == 404
    act = await larry.post(url + "/action", data={"action": "retry", "csrf_token": larry_csrf})
    assert act.status_code == 404
    assert (await larry.get("/lockdowns/999999")).status_code == 404
    assert (await larry.get("/lockdowns/new?facility=LAX&zone=NOPE")).status_code == 404

    anonymous = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=running_app), base_url="http://testserver"
    )
    for path in ("/lockdowns", url, "/lockdowns/new?facility=HQ", "/lockdowns/stream"):
        resp = await anonymous.get(path)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    for c in (olga, larry, anonymous):
        await c.aclose()


async def test_a_lockdown_started_for_an_incident(running_app, runtime, users, site, clock) -> None:
    from lockdown_site import open_incident
    from sqlalchemy import select

    from watchfloor.incidents.models import TimelineEntry
    from watchfloor.lockdown.models import Lockdown

    async with runtime.sessionmaker() as db:
        incident = await open_incident(db, clock, site.facilities["HQ"])
        other = await open_incident(db, clock, site.facilities["LAX"])
    olga, csrf = await browser(running_app, clock, "olga")
    page = await olga.get(f"/lockdowns/new?facility=HQ&incident={incident.id}")
    assert f'name="incident" value="{incident.id}"' in page.text
    wrong = await olga.post(
        "/lockdowns/start", data={"facility": "HQ", "incident": str(other.id), "csrf_token": csrf}
    )
    assert "error=" in wrong.headers["location"]  # another facility's incident: refused
    ok = await olga.post(
        "/lockdowns/start",
        data={"facility": "HQ", "incident": str(incident.id), "csrf_token": csrf},
    )
    assert ok.status_code == 303 and "error" not in ok.headers["location"]
    async with runtime.sessionmaker() as db:
        lockdowns = (await db.scalars(select(Lockdown))).all()
        assert [ld.incident_id for ld in lockdowns] == [incident.id]
        kinds = (
            await db.scalars(
                select(TimelineEntry.kind).where(TimelineEntry.incident_id == incident.id)
            )
        ).all()
    assert "lockdown" in kinds
    await runtime.lockdown.wait()
    await olga.aclose()
