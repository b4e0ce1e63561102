"""The watch floor end to end, in two real browsers against a real server.

A staff member raises a panic from the staff page in one browser context; the operator, logged
in in another context, sees it arrive at the top of the alarm queue live (no reload), acknowledges
it with the keyboard (`a`), and sees the status change. Both screens are saved under
./screenshots/ for a person to look at.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from watchfloor.auth import service as auth_service
from watchfloor.clock import SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from web.seed import OPERATOR_TOTP, PASSWORD

from .test_console import CHROMIUM, LAUNCH_ARGS, SCREENSHOTS

STAFF_TOTP = "MFRGGZDFMZTWQ2LKMFRGGZDFMZTWQ2LK"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install -y chromium); CI installs it",
    ),
]


async def _add_staff(url: str, var_dir: Path) -> None:
    engine = make_engine(Settings(database_url=url, var_dir=var_dir))
    try:
        async with make_sessionmaker(engine)() as db:
            await auth_service.create_user(
                db,
                SystemClock(),
                "system:test",
                username="sam",
                display_name="Sam Staff",
                password=PASSWORD,
                grants=[("staff", auth_service.ScopeSpec.facility("DAL-FO"))],
                totp_secret=STAFF_TOTP,
            )
            await db.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def two_browsers(
    server: str, database_url: str, tmp_path: Path
) -> Iterator[tuple[object, object, list[str]]]:
    from playwright.sync_api import sync_playwright

    asyncio.run(_add_staff(database_url, tmp_path / "staff-var"))
    SCREENSHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        pages = []
        for who in ("operator", "staff"):
            context = browser.new_context(
                base_url=server, viewport={"width": 1440, "height": 900}, locale="en-US"
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on(
                "pageerror",
                lambda exc, who=who: problems.append(f"{who} page error: {exc}"),
            )
            page.on(
                "console",
                lambda msg, who=who: (
                    problems.append(f"{who} console: {msg.text}")
                    if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                    else None
                ),
            )
            pages.append(page)
        try:
            yield pages[0], pages[1], problems
        finally:
            browser.close()


def _log_in(page: object, username: str, secret: str) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Log in").click()


def test_panic_from_staff_page_reaches_operator_and_is_acknowledged_by_keyboard(
    server: str, two_browsers: tuple[object, object, list[str]]
) -> None:
    from playwright.sync_api import Page, expect

    operator, staff, problems = two_browsers
    assert isinstance(operator, Page) and isinstance(staff, Page)

    # the operator lands on the alarm queue, connected live, nothing open yet
    _log_in(operator, "olivia", OPERATOR_TOTP)
    expect(operator.get_by_role("heading", name="Alarm queue")).to_be_visible()
    expect(operator.locator("#live-state")).to_have_text("● Live")
    expect(operator.locator("#queue-summary")).to_contain_text("No open incidents")
    operator.evaluate("window.__noReload = true")

    # the staff member lands on the panic page and presses once
    _log_in(staff, "sam", STAFF_TOTP)
    expect(staff.get_by_role("button", name="Raise silent alarm")).to_be_visible()
    staff.get_by_role("button", name="Raise silent alarm").click()
    expect(staff.get_by_role("heading", name="Sent.")).to_be_visible()
    expect(staff.locator("#panic-sent")).to_contain_text("enter your cancel code")
    staff.screenshot(path=str(SCREENSHOTS / "20-staff-panic-sent.png"), full_page=True)

    # the alarm arrives at the top of the operator's queue without a reload
    top = operator.locator("#queue-body tr.qrow").first
    expect(top).to_have_attribute("data-priority", "1", timeout=15_000)
    expect(top).to_contain_text("Dallas Field Office")
    expect(top).to_contain_text("Life safety")
    expect(top).to_contain_text("New — not acknowledged")
    expect(operator.locator("#p1-alert")).to_be_visible()
    assert operator.evaluate("window.__noReload") is True
    operator.screenshot(path=str(SCREENSHOTS / "21-operator-p1-arrived.png"), full_page=True)

    # keyboard: select the top row and acknowledge it with "a"
    operator.locator("#p1-alert").click()  # dismiss the banner (a click also allows sound)
    operator.keyboard.press("k")
    expect(top).to_have_class(re.compile(r"\bselected\b"))
    operator.keyboard.press("a")
    expect(operator.locator("#ack-status")).to_contain_text("Acknowledged", timeout=15_000)
    top = operator.locator("#queue-body tr.qrow").first
    expect(top).to_contain_text("Acknowledged")
    expect(top).to_have_attribute("data-status", "acknowledged")
    assert operator.evaluate("window.__noReload") is True
    operator.screenshot(path=str(SCREENSHOTS / "22-operator-acknowledged.png"), full_page=True)

    # Enter opens the incident page: the timeline shows the alarm and the acknowledgement
    operator.keyboard.press("Enter")
    expect(operator.get_by_role("heading", level=1)).to_contain_text("P1")
    expect(operator.locator("#timeline")).to_contain_text("olivia")
    operator.screenshot(path=str(SCREENSHOTS / "23-operator-incident.png"), full_page=True)

    assert problems == []
