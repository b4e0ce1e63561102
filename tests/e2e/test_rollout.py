"""The rollout board and the preparedness scorecard in a real browser (Debian's Chromium driven by
Playwright against a real `watchfloor serve`).

A programme manager logs in, issues the overhaul directive from the console (preview first, then
issue, backdated so some measures are already late), reads the board, drills into a late site,
marks a task done through its confirmation, and reads the scorecard down to a facility's reasons.
Screenshots land in tests/e2e/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.browser import (
    CHROMIUM,
    PM_TOTP,
    add_to_database,
    log_in,
    programme_manager,
    shot,
    watched_page,
)
from web.seed import PASSWORD

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install -y chromium); CI installs it",
    ),
]


@pytest.fixture
def pm_page(server: str, database_url: str, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    add_to_database(database_url, tmp_path / "pm-var", programme_manager(PASSWORD))
    with watched_page(server) as found:
        yield found


def test_programme_manager_issues_the_overhaul_and_reads_board_and_scorecard(
    server: str, pm_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = pm_page
    assert isinstance(page, Page)
    log_in(page, "/rollout", "pat", PASSWORD, PM_TOTP)
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
