"""Drills in a real browser (Debian's Chromium driven by Playwright against a real
`watchfloor serve`).

A programme manager logs in to the drill compliance page (the demo's drills: some facilities
overdue, a few never held), reads the most urgent rows and the chart, opens a facility, plans an
evacuation drill, runs it from its page, types its timings, writes the after-action report and
adds a corrective action. Screenshots land in tests/e2e/screenshots/ (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
from watchfloor.drills.demo import load_demo_drills
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
def drills_page(server: str, database_url: str, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    add_to_database(
        database_url, tmp_path / "pm-var", programme_manager(PASSWORD), load_demo_drills
    )
    with watched_page(server) as found:
        yield found


def test_programme_manager_reads_compliance_and_runs_a_drill_to_its_report(
    server: str, drills_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = drills_page
    assert isinstance(page, Page)
    log_in(page, "/drills", "pat", PASSWORD, PM_TOTP)
    expect(page.get_by_role("heading", name="Drill compliance")).to_be_visible()

    # most urgent first; the chart has loaded
    statuses = page.locator("#compliance tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    order = ["overdue", "never", "due_soon", "compliant"]
    assert statuses and statuses == sorted(statuses, key=order.index)
    tiles = {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)<', page.content())}
    assert sum(tiles[s] for s in order) == len(statuses)
    page.wait_for_function(
        "() => { const i = document.querySelector('.ro-chart img');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    shot(page, "drills-01-compliance")

    # open the first facility, plan an evacuation drill, run it and end it with its timings
    page.locator("#compliance tbody tr").first.locator("th a").click()
    expect(page.locator("h1")).to_contain_text("— drills")
    page.get_by_label("Kind").first.select_option("evacuation")
    page.get_by_role("button", name="Plan drill").click()
    expect(page.get_by_role("status")).to_contain_text("Drill planned.")
    page.locator("#start").click()
    expect(page.locator("#drill-state")).to_have_text("Running")
    page.get_by_label("Minutes until everyone was out").fill("7")
    page.get_by_label("People accounted safe").fill("48")
    page.get_by_label("People not accounted for").fill("2")
    page.locator("#end").click()
    expect(page.locator("#drill-state")).to_have_text("Completed")
    expect(page.locator("#timings")).to_contain_text("7 min 00 s")
    expect(page.locator("#timings")).to_contain_text("48 safe")

    # after-action report and a corrective action (a date before the drill is refused)
    page.get_by_label("What worked").fill("Wardens cleared every floor")
    page.get_by_label("Gaps").fill("Two visitors were not on the list")
    page.get_by_role("button", name="Save report").click()
    expect(page.get_by_role("status")).to_contain_text("After-action report saved.")
    page.get_by_label("Corrective action", exact=True).fill("Print visitor lists at reception")
    page.get_by_label("Owner").fill("Front desk lead")
    min_day = page.get_by_label(re.compile("^Due")).get_attribute("min")
    assert min_day
    page.get_by_label(re.compile("^Due")).fill(min_day)
    page.get_by_role("button", name="Add action").click()
    expect(page.locator("#actions")).to_contain_text("Print visitor lists at reception")
    shot(page, "drills-02-drill")

    # back on the facility's page: the drill is in its history with its timing
    page.get_by_role("link", name=re.compile("drills$")).first.click()
    expect(page.locator("#history")).to_contain_text("Evacuation drill")
    shot(page, "drills-03-facility")
    assert not problems, problems
