"""The roll-call board in a real browser (Debian's Chromium, Playwright, a real server): an
operator starts a drill roll call, a person answers "I need help" on their phone page, the board
fills live, and the operator marks someone safe with the keyboard. Screenshots under
./screenshots/ for a person to look at."""

from __future__ import annotations

from datetime import datetime

import pyotp
import pytest

from e2e.conftest import server  # noqa: F401 - the real server fixture
from e2e.test_console import CHROMIUM, browser_page, shot  # noqa: F401 - the browser fixture
from watchfloor.rollcall.service import make_token
from web.seed import OPERATOR_TOTP, PASSWORD

SECRET = "e2e-secret-key-not-for-production"  # noqa: S105 - the e2e server's throwaway key

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed"),
]


def test_board_fills_live_and_takes_keyboard_marks(
    server: str,  # noqa: F811
    browser_page: tuple[object, list[str]],  # noqa: F811
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = browser_page
    assert isinstance(page, Page)
    page.goto("/login")
    page.get_by_label("User name").fill("olivia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(OPERATOR_TOTP).now())
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Alarm queue")).to_be_visible()

    page.get_by_role("link", name="Roll call").click()
    expect(page.get_by_role("heading", name="Roll calls")).to_be_visible()
    page.get_by_label("Facility", exact=True).select_option("DAL-FO")
    page.get_by_label("Reason").fill("evacuation drill")
    page.get_by_label("Exercise (drill)").check()
    page.get_by_role("button", name="Ask everyone").click()
    expect(page.locator(".rc-exercise-banner")).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("Live")
    asked = int(page.locator("#tally-no_answer").inner_text())
    assert asked >= 3
    shot(page, "rollcall-01-board-started")

    roll_call_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    detail = page.request.get(f"/api/v1/roll-calls/{roll_call_id}").json()
    maria = next(e for e in detail["entries"] if e["name"] == "Maria Lopez")
    token = make_token(
        SECRET, roll_call_id, maria["id"], None, datetime.fromisoformat(detail["started_at"])
    )

    # Maria answers on her phone
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"/r/{token}")
    expect(phone.get_by_role("heading", name="Are you safe?")).to_be_visible()
    expect(phone.locator("body")).not_to_contain_text("Maria")
    shot(phone, "rollcall-02-phone-ask")
    phone.get_by_role("button", name="I need help").click()
    expect(phone.get_by_role("heading", name="Help is being sent.")).to_be_visible()
    shot(phone, "rollcall-03-phone-done")
    phone.close()

    # the board fills without a reload: need help first, in red, with her name
    expect(page.locator("#tally-need_help")).to_have_text("1")
    expect(page.locator("#tally-no_answer")).to_have_text(str(asked - 1))
    expect(page.locator("#rc-help")).to_contain_text("Maria Lopez")
    expect(page.locator("#rc-status")).to_contain_text("Maria Lopez needs help")

    # the keyboard: j selects the first person, s marks them safe
    page.locator("body").press("j")
    expect(page.locator("tr.rc-entry.selected")).to_have_count(1)
    page.locator("body").press("s")
    expect(page.locator("#tally-safe")).to_have_text("1")
    expect(page.locator("#rc-safe")).to_contain_text("Maria Lopez")
    expect(page.locator("#tally-need_help")).to_have_text("0")
    shot(page, "rollcall-04-board-answers")
    assert problems == []
