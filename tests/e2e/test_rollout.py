"""The rollout board and the preparedness scorecard in a real browser (Debian's Chromium driven by
Playwright against a real `watchfloor serve`).

A programme manager logs in, issues the overhaul directive from the console (preview first, then
issue, backdated so some measures are already late), reads the board, drills into a late site,
marks a task done through its confirmation, and reads the scorecard down to a facility's reasons.
Screenshots land in tests/e2e/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from watchfloor.auth import service as auth_service
from watchfloor.clock import SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from web.seed import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
PM_TOTP = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install -y chromium); CI installs it",
    ),
]


async def _add_programme_manager(url: str, var_dir: Path) -> None:
    engine = make_engine(Settings(database_url=url, var_dir=var_dir))
    try:
        async with make_sessionmaker(engine)() as db:
            await auth_service.create_user(
                db,
                SystemClock(),
                "system:test",
                username="pat",
                display_name="Pat Programme",
                password=PASSWORD,
                grants=[("programme_manager", auth_service.ScopeSpec.org())],
                totp_secret=PM_TOTP,
            )
            await db.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def pm_page(server: str, database_url: str, tmp_path: Path) -> Iterator[tuple[object, list[str]]]:
    from playwright.sync_api import sync_playwright

    asyncio.run(_add_programme_manager(database_url, tmp_path / "pm-var"))
    SCREENSHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
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
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_programme_manager_issues_the_overhaul_and_reads_board_and_scorecard(
    server: str, pm_page: tuple[object, list[str]]
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = pm_page
    assert isinstance(page, Page)
    page.goto("/login?next=/rollout")
    page.get_by_label("User name").fill("pat")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(PM_TOTP).now())
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Countermeasure rollout")).to_be_visible()

    # issue the overhaul directive: preview first, nothing written until "Issue"
    page.get_by_role("link", name="Issue a directive").first.click()
    page.get_by_label("Title").fill("Overhaul of all field offices")
    issued = datetime.now(UTC) - timedelta(days=10)
    page.get_by_label("Issued at (UTC)").fill(issued.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Preview counts").click()
    expect(page.locator("#directive-preview")).to_contain_text("45 tasks")
    expect(page.locator("#directive-preview")).to_contain_text("15 measure(s) at 3 facilities")
    shot(page, "rollout-01-directive-preview")
    page.get_by_role("button", name="Issue the directive").click()

    # the board: every task counted once; after 10 days the 72-hour measures are late
    expect(page.get_by_role("status")).to_contain_text("45 tasks at 3 facilities")
    tiles = {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)<', page.content())}
    assert tiles["total"] == 45
    assert tiles["late"] == 4 * 3  # immediate (2) and 72-hour (2) measures × 3 facilities
    expect(page.locator("#board-regions tbody tr")).to_have_count(2)
    expect(page.locator("#board-measures tbody tr")).to_have_count(15)
    chart = page.locator(".ro-chart img")
    expect(chart).to_be_visible()
    # the chart is an image of the SVG route: wait until it has loaded and has a size
    page.wait_for_function(
        "() => { const i = document.querySelector('.ro-chart img');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    shot(page, "rollout-02-board")

    # drill into the most late site and mark its first late task done, through confirmation
    page.locator("#board-facilities tbody tr").first.get_by_role("link").click()
    expect(page.locator("#facility-tasks tbody tr").first).to_contain_text("Late")
    shot(page, "rollout-03-facility")
    page.locator("#facility-tasks tbody tr").first.get_by_role("link", name="Done").click()
    expect(page.get_by_role("heading", name="Confirm: Mark done")).to_be_visible()
    page.get_by_label("Note (optional)").fill("Badge readers replaced")
    page.locator("#confirm").click()
    expect(page.get_by_role("status")).to_contain_text("Mark done: done.")
    expect(page.locator("#facility-tasks tbody tr").last).to_contain_text("Done")

    # the scorecard: organisation and regions; a region lists its facilities; reasons link on
    page.get_by_role("link", name="Scorecard").first.click()
    expect(page.get_by_role("heading", name="Preparedness scorecard")).to_be_visible()
    expect(page.locator("#scorecard tbody tr")).to_have_count(3)  # organisation + 2 regions
    expect(page.locator("#scorecard thead")).to_contain_text("Rollout")
    shot(page, "scorecard-01-rollup")
    page.locator("#scorecard tbody tr").nth(1).locator("th a").click()
    page.locator(".ro-facility-list a").first.click()
    expect(page.locator("#facility-scorecard")).to_contain_text("Countermeasure rollout")
    expect(page.locator("#facility-scorecard")).to_contain_text("Late:")
    expect(page.locator("#facility-scorecard")).to_contain_text("Not tracked yet")
    shot(page, "scorecard-02-facility")
    assert not problems, problems
