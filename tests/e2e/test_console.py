"""The console in a real browser: Debian's Chromium driven by Playwright against a real server.

Logs in with a TOTP code, opens the facility list, a facility page and the map, and saves a
screenshot of each under ./screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from web.seed import OPERATOR_TOTP, PASSWORD

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "screenshots"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install -y chromium); CI installs it",
    ),
]

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page(server: str) -> Iterator[tuple[object, list[str]]]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        context = browser.new_context(
            base_url=server, viewport={"width": 1440, "height": 900}, locale="en-US"
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        # pages that answer 401/403/404 on purpose log "Failed to load resource" for the page
        # itself; failed assets and data requests are caught below by their responses
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda resp: (
                problems.append(f"{resp.status} for {resp.url}")
                if resp.status >= 400 and resp.request.resource_type != "document"
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        # nothing may come from outside the server: an air-gapped centre has no internet
        page.on(
            "request",
            lambda req: (
                problems.append(f"external request: {req.url}")
                if not req.url.startswith((server, "data:"))
                else None
            ),
        )
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


def shot(page: object, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def test_operator_logs_in_and_sees_facilities_page_and_map(
    server: str, browser_page: tuple[object, list[str]]
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = browser_page
    assert isinstance(page, Page)

    # an unauthenticated visit lands on the log-in page
    page.goto("/")
    expect(page).to_have_url(f"{server}/login?next=%2F")
    expect(page.get_by_role("heading", name="Log in to Watchfloor")).to_be_visible()
    shot(page, "01-login")

    # a wrong password is explained in plain words
    page.get_by_label("User name").fill("olivia")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    shot(page, "02-mfa")
    page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(OPERATOR_TOTP).now())
    page.get_by_role("button", name="Log in").click()

    # an operator lands on the alarm queue (first in the navigation); facilities are one click away
    expect(page.get_by_role("heading", name="Alarm queue")).to_be_visible()
    page.get_by_role("link", name="Facilities").first.click()

    # the facility list, most urgent first
    expect(page.get_by_role("heading", name="Facilities", exact=True)).to_be_visible()
    rows = page.locator("#facility-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Dallas Field Office")
    expect(rows.nth(0)).to_contain_text("Devices offline")
    expect(rows.nth(2)).to_contain_text("Phoenix Courthouse")
    expect(page.locator(".topbar")).to_contain_text("Olivia Watch")
    expect(page.locator(".topbar")).to_contain_text("Watch-floor operator · whole organisation")
    shot(page, "03-facility-list")

    # "/" focuses the search box; searching narrows the list
    page.locator("body").press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("boston")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("Boston Detention Center")
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(3)

    # a facility page: header, zones, devices by zone, units, staff
    page.get_by_role("link", name="Dallas Field Office").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dallas Field Office")
    expect(page.locator("#zones")).to_contain_text("Evidence vault")
    expect(page.locator("#devices")).to_contain_text("Reception panic button")
    expect(page.locator("#attention")).to_contain_text("Offline")
    expect(page.locator("#units")).to_contain_text("Channel 4")
    expect(page.locator("#staff .vet-row-expired")).to_contain_text("Dan Okafor")
    expect(page.locator("#local-time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    shot(page, "04-facility-page")

    # the map: state outlines from our own file, one marker a facility, no tiles
    page.get_by_role("link", name="Map").first.click()
    expect(page.locator("#map[data-markers]")).to_have_attribute("data-markers", "3")
    expect(page.locator(".leaflet-marker-pane .wf-marker")).to_have_count(3)
    expect(page.locator(".leaflet-overlay-pane path").first).to_be_attached()
    expect(page.locator("#map-attention")).to_contain_text("Dallas Field Office")
    expect(page.locator("#map-summary")).to_contain_text("3 of 3 facilities on the map")
    page.locator(".leaflet-marker-pane .wf-marker.health-offline").click()
    expect(page.locator(".leaflet-popup-content")).to_contain_text("Dallas Field Office")
    shot(page, "05-map")

    # an out-of-nothing address gets a plain 404 page
    page.goto("/facilities/NOPE-1")
    expect(page.get_by_role("heading", name="No such facility")).to_be_visible()
    shot(page, "06-not-found")

    # log out
    page.goto("/")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to Watchfloor")).to_be_visible()
    page.goto("/map")
    expect(page.get_by_role("heading", name="Log in to Watchfloor")).to_be_visible()

    assert problems == []


def test_new_user_enrols_an_authenticator(
    server: str, browser_page: tuple[object, list[str]]
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = browser_page
    assert isinstance(page, Page)
    page.goto("/login")
    page.get_by_label("User name").fill("newbie")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Set up two-step log-in")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    shot(page, "07-enrol")
    secret = "".join(page.locator("#totp-secret").inner_text().split())
    page.get_by_label("Then type the 6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    shot(page, "08-recovery-codes")
    page.get_by_role("link", name="continue to the console").click()
    # a region-scoped operator sees only the facilities of that region
    expect(page.locator("#facility-table tbody tr")).to_have_count(2)
    expect(page.locator("#facility-table")).not_to_contain_text("Boston")
    assert problems == []
