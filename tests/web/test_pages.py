"""The console pages over HTTP: log-in with MFA, scope, CSRF, facility list and page, map."""

from __future__ import annotations

import re

import httpx
import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit.models import AuditRecord
from watchfloor.auth.deps import SESSION_COOKIE
from watchfloor.clock import FakeClock
from watchfloor.web.routes import safe_next

from .conftest import Login, csrf_of
from .seed import MANAGER_TOTP, OPERATOR_TOTP, PASSWORD

pytestmark = pytest.mark.usefixtures("seeded")


def rows_of(html: str) -> list[str]:
    """Facility codes in the order the list shows them."""
    return re.findall(r'<td class="code"><a href="/facilities/[^"]+">([^<]+)</a>', html)


async def start_login(client: httpx.AsyncClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    page = await client.get("/login")
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
    )


# ------------------------------------------------------------------ logged out


@pytest.mark.parametrize(
    ("path", "next_"),
    [
        ("/", "%2F"),
        ("/map", "%2Fmap"),
        ("/facilities/DAL-FO", "%2Ffacilities%2FDAL-FO"),
        ("/?q=dallas", "%2F%3Fq%3Ddallas"),
    ],
)
async def test_pages_send_a_logged_out_visitor_to_login(
    client: httpx.AsyncClient, path: str, next_: str
) -> None:
    resp = await client.get(path)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/login?next={next_}"


async def test_map_data_needs_a_login(client: httpx.AsyncClient) -> None:
    resp = await client.get("/map/facilities.json")
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_login_page_is_plain_and_guarded(client: httpx.AsyncClient) -> None:
    resp = await client.get("/login")
    assert resp.status_code == 200
    assert "Log in to Watchfloor" in resp.text
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-frame-options"] == "DENY"
    assert "wf_login" in resp.cookies


# ------------------------------------------------------------------ the log-in flow


@pytest.mark.usefixtures("accounts")
async def test_login_with_password_and_totp_reaches_the_console(
    client: httpx.AsyncClient, clock: FakeClock, db: AsyncSession
) -> None:
    resp = await start_login(client, "Olivia")  # user names are not case-sensitive
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login/mfa?next=%2F"
    cookie = resp.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie

    # between the two steps the console is still closed
    assert (await client.get("/")).status_code == 303
    assert (await client.get("/login")).headers["location"] == "/login/mfa?next=%2F"

    mfa = await client.get("/login/mfa")
    assert "Enter your code" in mfa.text and "olivia" in mfa.text
    code = pyotp.TOTP(OPERATOR_TOTP).at(clock.now())
    done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert (
        done.status_code == 303 and done.headers["location"] == "/watch"
    )  # operators land on the alarm queue

    home = await client.get("/")
    assert home.status_code == 200
    assert "Olivia Watch" in home.text
    assert "Watch-floor operator · whole organisation" in home.text
    assert rows_of(home.text) == ["DAL-FO", "BOS-DC", "PHX-CH"]  # most urgent first
    actions = (await db.execute(select(AuditRecord.action))).scalars().all()
    assert "auth.password_ok" in actions and "auth.login" in actions


@pytest.mark.usefixtures("accounts")
async def test_login_returns_to_the_page_asked_for(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await client.get("/facilities/PHX-CH")
    page = await client.get(first.headers["location"])
    assert 'name="next" value="/facilities/PHX-CH"' in page.text
    resp = await client.post(
        "/login",
        data={
            "username": "olivia",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/facilities/PHX-CH",
        },
    )
    mfa = await client.get(resp.headers["location"])
    done = await client.post(
        resp.headers["location"],
        data={"code": pyotp.TOTP(OPERATOR_TOTP).at(clock.now()), "csrf_token": csrf_of(mfa.text)},
    )
    assert done.headers["location"] == "/facilities/PHX-CH"


def test_only_same_site_paths_follow_a_login() -> None:
    assert safe_next("/map") == "/map"
    assert safe_next("//evil.example/x") == "/"
    assert safe_next("https://evil.example/") == "/"
    assert safe_next("/\\evil.example") == "/"
    assert safe_next("/login/mfa") == "/"
    assert safe_next(None) == "/"


@pytest.mark.usefixtures("accounts")
async def test_session_cookie_is_secure_when_configured(app) -> None:  # type: ignore[no-untyped-def]
    app.state.settings.cookie_secure = True
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        page = await client.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        resp = await start_login(client, "olivia")
        assert resp.status_code == 303
        assert "Secure" in resp.headers["set-cookie"]


@pytest.mark.usefixtures("accounts")
async def test_wrong_password_is_explained_and_repeated_failures_lock(
    client: httpx.AsyncClient,
) -> None:
    resp = await start_login(client, "olivia", "wrong password, sorry")
    assert resp.status_code == 401
    assert "do not match" in resp.text
    assert SESSION_COOKIE not in resp.cookies
    assert 'value="olivia"' in resp.text  # the user name is kept, the password is not
    for _ in range(4):
        resp = await start_login(client, "olivia", "wrong password, sorry")
    assert resp.status_code == 423
    assert "locked" in resp.text and "until" in resp.text
    # even the right password is refused while locked
    resp = await start_login(client, "olivia")
    assert resp.status_code == 423


@pytest.mark.usefixtures("accounts")
async def test_unknown_user_gets_the_same_answer_as_a_wrong_password(
    client: httpx.AsyncClient,
) -> None:
    resp = await start_login(client, "nobody-at-all")
    assert resp.status_code == 401
    assert "do not match" in resp.text


@pytest.mark.usefixtures("accounts")
async def test_login_form_without_its_token_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/login")
    resp = await client.post("/login", data={"username": "olivia", "password": PASSWORD})
    assert resp.status_code == 403
    assert SESSION_COOKIE not in resp.cookies
    assert "expired" in resp.text
    forged = await client.post(
        "/login",
        data={"username": "olivia", "password": PASSWORD, "csrf_token": "made-up"},
    )
    assert forged.status_code == 403
    # a genuine token, but sent by a browser without the matching cookie (another site)
    page = await client.get("/login")
    client.cookies.clear()
    resp = await client.post(
        "/login",
        data={"username": "olivia", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert resp.status_code == 403


@pytest.mark.usefixtures("accounts")
async def test_empty_login_form_is_a_plain_error(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    resp = await client.post("/login", data={"csrf_token": csrf_of(page.text)})
    assert resp.status_code == 422
    assert "Enter both" in resp.text


@pytest.mark.usefixtures("accounts")
async def test_wrong_and_replayed_totp_codes_are_refused(
    client: httpx.AsyncClient, clock: FakeClock, login: Login
) -> None:
    await start_login(client, "dallas")
    mfa = await client.get("/login/mfa")
    token = csrf_of(mfa.text)
    bad = await client.post("/login/mfa", data={"code": "000000", "csrf_token": token})
    assert bad.status_code == 401
    assert "not valid" in bad.text
    assert (await client.get("/")).status_code == 303
    no_token = await client.post(
        "/login/mfa", data={"code": pyotp.TOTP(MANAGER_TOTP).at(clock.now())}
    )
    assert no_token.status_code == 403
    code = pyotp.TOTP(MANAGER_TOTP).at(clock.now())
    ok = await client.post("/login/mfa", data={"code": code, "csrf_token": token})
    assert ok.status_code == 303
    # the same code cannot open a second session
    client.cookies.clear()
    await start_login(client, "dallas")
    mfa = await client.get("/login/mfa")
    again = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert again.status_code == 401
    assert "already been used" in again.text


@pytest.mark.usefixtures("accounts")
async def test_enrolment_shows_qr_and_recovery_codes_once(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    resp = await start_login(client, "newbie")
    assert resp.headers["location"] == "/login/enrol?next=%2F"
    page = await client.get("/login/enrol")
    assert page.status_code == 200
    assert "<svg" in page.text
    secret = "".join(re.search(r'id="totp-secret">(.*?)</p>', page.text).group(1).split())  # type: ignore[union-attr]
    secret = re.sub(r"</?span>", "", secret)
    # a reload keeps the same secret (the person may have scanned it already)
    again = await client.get("/login/enrol")
    assert secret in re.sub(r"</?span>|\s", "", again.text)

    wrong = await client.post(
        "/login/enrol", data={"code": "123456", "csrf_token": csrf_of(page.text)}
    )
    assert wrong.status_code == 422
    assert "does not match" in wrong.text
    assert secret in re.sub(r"</?span>|\s", "", wrong.text)
    assert (await client.get("/")).status_code == 303

    done = await client.post(
        "/login/enrol",
        data={"code": pyotp.TOTP(secret).at(clock.now()), "csrf_token": csrf_of(page.text)},
    )
    assert done.status_code == 200
    assert "Save your recovery codes" in done.text
    assert done.headers["cache-control"] == "no-store"
    codes = re.findall(r"<li><code>([^<]+)</code></li>", done.text)
    assert len(codes) == 10
    home = await client.get("/")
    assert home.status_code == 200
    # a region-scoped operator sees only that region's facilities
    assert sorted(rows_of(home.text)) == ["DAL-FO", "PHX-CH"]
    # the enrolment page is gone now
    assert (await client.get("/login/enrol")).status_code == 303

    # log out; a recovery code logs in once
    await client.post("/logout", data={"csrf_token": csrf_of(home.text)})
    clock.advance(seconds=31)
    await start_login(client, "newbie")
    mfa = await client.get("/login/mfa")
    ok = await client.post("/login/mfa", data={"code": codes[0], "csrf_token": csrf_of(mfa.text)})
    assert ok.status_code == 303
    home = await client.get("/")
    await client.post("/logout", data={"csrf_token": csrf_of(home.text)})
    await start_login(client, "newbie")
    mfa = await client.get("/login/mfa")
    reused = await client.post(
        "/login/mfa", data={"code": codes[0], "csrf_token": csrf_of(mfa.text)}
    )
    assert reused.status_code == 401


@pytest.mark.usefixtures("accounts")
async def test_enrolled_user_cannot_reach_enrolment(client: httpx.AsyncClient) -> None:
    await start_login(client, "olivia")
    resp = await client.get("/login/enrol")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login/mfa")


async def test_logout_needs_the_form_token(client: httpx.AsyncClient, login: Login) -> None:
    csrf = await login("olivia", OPERATOR_TOTP)
    refused = await client.post("/logout")
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "security token" in refused.text
    assert (await client.get("/")).status_code == 200  # still logged in
    stale = await client.post("/logout", data={"csrf_token": "not-the-token"})
    assert stale.status_code == 403
    cookie = client.cookies.get(SESSION_COOKIE)
    out = await client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303
    # the old cookie is dead on the server, not only forgotten by the browser
    client.cookies.set(SESSION_COOKIE, cookie or "")
    assert (await client.get("/")).status_code == 303


# ------------------------------------------------------------------ scope


async def test_facility_manager_sees_only_their_facility(
    client: httpx.AsyncClient, login: Login
) -> None:
    await login("dallas", MANAGER_TOTP)
    home = await client.get("/")
    assert rows_of(home.text) == ["DAL-FO"]
    assert "Phoenix" not in home.text
    assert "Facility security manager · facility DAL-FO" in home.text
    assert (await client.get("/facilities/DAL-FO")).status_code == 200
    other = await client.get("/facilities/PHX-CH")
    assert other.status_code == 403
    assert "text/html" in other.headers["content-type"]
    assert "Not in your scope" in other.text
    assert "Courthouse lobby" not in other.text
    data = (await client.get("/map/facilities.json")).json()
    assert [f["code"] for f in data["facilities"]] == ["DAL-FO"]
    # searching cannot reach beyond the scope either
    found = await client.get("/", params={"q": "phoenix"})
    assert rows_of(found.text) == []


async def test_missing_facility_is_a_plain_404_page(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("operator", org=True)
    resp = await client.get("/facilities/NOPE-9", headers=headers)
    assert resp.status_code == 404
    assert "No such facility" in resp.text and "NOPE-9" in resp.text
    odd = await client.get("/facilities/%00%FF%3Cscript%3E", headers=headers)
    assert odd.status_code == 404
    assert "<script>" not in odd.text


async def test_role_without_sites_access_is_told_so(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("staff", org=True)
    resp = await client.get("/", headers=headers)
    assert resp.status_code == 403
    assert "No facilities to show" in resp.text
    assert (await client.get("/map", headers=headers)).status_code == 403
    assert (await client.get("/map/facilities.json", headers=headers)).json()["total"] == 0


# ------------------------------------------------------------------ facility list


FILTER_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"q": "phoenix"}, ["PHX-CH"]),
    ({"q": "dal-"}, ["DAL-FO"]),
    ({"q": "BOSTON"}, ["BOS-DC"]),
    ({"q": "%"}, []),
    ({"region": "NE"}, ["BOS-DC"]),
    ({"kind": "courthouse"}, ["PHX-CH"]),
    ({"state": "TX"}, ["DAL-FO"]),
    ({"region": "SW", "sort": "name"}, ["DAL-FO", "PHX-CH"]),
    ({"sort": "code"}, ["BOS-DC", "DAL-FO", "PHX-CH"]),
    ({"sort": "state"}, ["PHX-CH", "BOS-DC", "DAL-FO"]),
    ({"sort": "bogus", "page": "abc"}, ["DAL-FO", "BOS-DC", "PHX-CH"]),
    ({"page": "-5"}, ["DAL-FO", "BOS-DC", "PHX-CH"]),
    ({"page": "99999999999999999999"}, ["DAL-FO", "BOS-DC", "PHX-CH"]),
    ({"q": "x\x00y"}, []),
    ({"q": "d" * 5000}, []),
    ({"region": "NOWHERE"}, []),
]


async def test_facility_list_search_and_filters(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("operator", org=True)
    for params, expected in FILTER_CASES:
        resp = await client.get("/", params=params, headers=headers)
        assert resp.status_code == 200, params
        assert rows_of(resp.text) == expected, params
        if not expected:
            assert "No facility matches" in resp.text, params


async def test_facility_list_shows_local_time_and_device_problems(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("operator", org=True)
    html = (await client.get("/", headers=headers)).text
    # the FakeClock says 12:00 UTC: 06:00 in Dallas, 07:00 in Boston, 05:00 in Phoenix
    assert "06:00 CST" in html and "07:00 EST" in html and "05:00 MST" in html
    assert "1 offline" in html and "1 trouble" in html
    assert "2</strong> need attention" in html
    # status in words, not colour alone
    assert "Devices offline" in html and "All devices online" in html


async def test_facility_list_pages_a_long_list(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
    db: AsyncSession,
    clock: FakeClock,
) -> None:
    from watchfloor.sites import service as sites_service
    from watchfloor.sites.schemas import FacilityCreate

    region = await sites_service.get_region(db, "NE")
    for i in range(120):
        await sites_service.create_facility(
            db,
            clock,
            "system:test",
            FacilityCreate(code=f"X-{i:03d}", name=f"Extra site {i}", region="NE"),
            region,
        )
    await db.commit()
    headers = await make_token("operator", org=True)
    first = await client.get("/", params={"sort": "code"}, headers=headers)
    assert len(rows_of(first.text)) == 100
    assert "Page 1 of 2" in first.text
    second = await client.get("/", params={"sort": "code", "page": "2"}, headers=headers)
    assert len(rows_of(second.text)) == 23
    assert rows_of(second.text)[-1] == "X-119"


# ------------------------------------------------------------------ facility page


async def test_facility_page_shows_everything_an_operator_needs(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("operator", org=True)
    resp = await client.get("/facilities/DAL-FO", headers=headers)
    assert resp.status_code == 200
    html = resp.text
    assert "Dallas Field Office" in html and "1100 Commerce St" in html
    assert 'id="local-time">06:00<' in html and "America/Chicago" in html
    assert "07:00–18:00" in html and "Closed now" in html  # 06:00 on a Monday
    for zone in ("Main lobby", "Screening checkpoint", "Evidence vault", "No zone"):
        assert zone in html
    # devices carry their status in words; the offline one is listed under "Needs attention"
    attention = html.split('id="attention"')[1].split("</section>")[0]
    assert "Reception panic button" in attention and "Offline" in attention
    assert "Checkpoint camera" in attention and "Trouble" in attention
    assert "Lobby front door" not in attention
    # response units with their contact channels
    assert "Dallas on-site security" in html and "Channel 4" in html and "+12145550911" in html
    # staff, with the expired vetting highlighted and listed first
    staff = html.split('id="staff"')[1].split("</section>")[0]
    assert staff.index("Dan Okafor") < staff.index("Maria Lopez")
    assert re.search(r'class="vet-row-expired">\s*<td><strong>Dan Okafor', staff)
    assert "within 30 days" in staff  # Priya Shah's vetting runs out soon
    assert "1 staff member" in attention


async def test_staff_need_people_read(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("responder", org=True)
    html = (await client.get("/facilities/DAL-FO", headers=headers)).text
    assert "Evidence vault" in html
    assert "Dan Okafor" not in html
    assert "do not include staff records" in html


async def test_facility_without_units_warns(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("operator", org=True)
    html = (await client.get("/facilities/BOS-DC", headers=headers)).text
    assert "No response units recorded" in html
    assert "Open now" in html  # open around the clock


# ------------------------------------------------------------------ map and assets


async def test_map_page_and_data(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    headers = await make_token("operator", region="SW")
    page = await client.get("/map", headers=headers)
    assert page.status_code == 200
    assert "/vendor/leaflet/leaflet.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside
    data = (await client.get("/map/facilities.json", headers=headers)).json()
    assert data["total"] == 2
    by_code = {f["code"]: f for f in data["facilities"]}
    assert set(by_code) == {"DAL-FO", "PHX-CH"}
    assert by_code["DAL-FO"]["health"] == "offline"
    assert by_code["DAL-FO"]["health_label"] == "Devices offline"
    assert by_code["PHX-CH"]["health"] == "ok"
    assert by_code["DAL-FO"]["url"] == "/facilities/DAL-FO"
    assert by_code["DAL-FO"]["lat"] == pytest.approx(32.7767)


async def test_assets_are_served_by_the_app(client: httpx.AsyncClient) -> None:
    for path in (
        "/static/console.css",
        "/static/console.js",
        "/static/map.js",
        "/vendor/leaflet/leaflet.js",
        "/vendor/leaflet/leaflet.css",
    ):
        assert (await client.get(path)).status_code == 200, path
    geo = await client.get("/static/geo/us-states.json")
    assert geo.status_code == 200
    assert len(geo.content) < 400_000
    states = geo.json()
    assert states["type"] == "FeatureCollection"
    names = {f["properties"]["name"] for f in states["features"]}
    assert {"Texas", "Alaska", "Hawaii", "Massachusetts", "District of Columbia"} <= names
    assert len(names) >= 51


async def test_unknown_page_is_html_and_api_errors_stay_problem_documents(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text
    api = await client.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


async def test_facility_without_hours_says_so(
    client: httpx.AsyncClient,
    make_token,  # type: ignore[no-untyped-def]
    db: AsyncSession,
    clock: FakeClock,
) -> None:
    from watchfloor.sites import service as sites_service
    from watchfloor.sites.schemas import FacilityCreate

    region = await sites_service.get_region(db, "NE")
    await sites_service.create_facility(
        db,
        clock,
        "system:test",
        FacilityCreate(code="BARE-1", name="Bare site", region="NE"),
        region,
    )
    await db.commit()
    headers = await make_token("operator", org=True)
    html = (await client.get("/facilities/BARE-1", headers=headers)).text
    assert "Opening hours not recorded" in html
    assert "No devices recorded" in html and "No zones recorded" in html
