"""Training compliance in a real browser (Debian's Chromium driven by Playwright against a real
`watchfloor serve`).

Dallas's security manager logs in and opens Training: the most urgent facility first, the chart
of compliance by course, the staff behind with their vetting; imports an LMS export with a bad
row (refused: the table names the row, column and why, nothing written), fixes it and imports it;
opens a guard's page and records a completion. Screenshots land in tests/e2e/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.browser import CHROMIUM, add_to_database, log_in, shot, watched_page
from watchfloor.training.demo import load_demo_training
from web.seed import MANAGER_TOTP, PASSWORD

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install -y chromium); CI installs it",
    ),
]


@pytest.fixture
def manager_page(server: str, database_url: str, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    add_to_database(database_url, tmp_path / "training-var", load_demo_training)
    with watched_page(server) as found:
        yield found


def test_manager_reads_training_imports_an_lms_export_and_records_a_completion(
    server: str, manager_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page, problems = manager_page
    assert isinstance(page, Page)
    log_in(page, "/training", "dallas", PASSWORD, MANAGER_TOTP)
    expect(page.get_by_role("heading", name="Training compliance")).to_be_visible()

    # the landing page: tiles, Dallas first (the only facility in scope), chart, staff behind
    tiles = {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)<', page.content())}
    assert tiles["total"] == 18  # three guards, six courses each
    assert tiles["overdue"] + tiles["never"] + tiles["due_soon"] + tiles["current"] == 18
    assert tiles["vetting_expired"] == 1  # Dan Okafor's vetting ran out three days ago
    expect(page.locator("#training-facilities tbody tr").first).to_contain_text("DAL-FO")
    page.wait_for_function(
        "() => { const i = document.querySelector('.ro-chart img');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    shot(page, "training-01-landing")

    # an LMS export with a bad row: refused, every problem named, nothing written
    today = datetime.now(UTC).date()
    good_day = (today - timedelta(days=10)).isoformat()
    bad = tmp_path / "lms-bad.csv"
    bad.write_text(
        "Employee ID,Course Code,Completion Date\n"
        f"E101,FIRSTAID,{good_day}\n"
        f"E999,FIRSTAID,{good_day}\n"
        f"E102,CPR,{(today + timedelta(days=3)).isoformat()}\n"
    )
    page.get_by_label("LMS export (CSV)").set_input_files(str(bad))
    page.get_by_role("button", name="Check and import").click()
    errors = page.locator("#import-errors")
    expect(errors).to_contain_text("nothing was written")
    expect(errors.locator("tbody tr")).to_have_count(2)
    expect(errors).to_contain_text("E999")
    expect(errors).to_contain_text("in the future")
    errors.scroll_into_view_if_needed()
    shot(page, "training-02-import-refused")

    fixed = tmp_path / "lms.csv"
    fixed.write_text(f"employee_id,course_code,completed_on\nE101,FIRSTAID,{good_day}\n")
    page.get_by_label("LMS export (CSV)").set_input_files(str(fixed))
    page.get_by_role("button", name="Check and import").click()
    expect(page.get_by_role("status")).to_contain_text("1 new records")
    expect(page.locator("#training-imports tbody tr").first).to_contain_text("lms.csv")

    # a guard's page: courses most urgent first, record one from the form
    page.goto("/training/people/E101")
    expect(page.get_by_role("heading", name="Dan Okafor")).to_be_visible()
    expect(page.locator("#vetting")).to_contain_text("Vetting expired")
    expect(page.locator("#person-courses")).to_contain_text("First aid")
    page.get_by_label("Course", exact=True).select_option("STB")
    page.get_by_label("Completed on (YYYY-MM-DD)").fill(good_day)
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_contain_text("Recorded: Stop the Bleed for E101")
    expect(page.locator("#person-courses tr", has_text="Stop the Bleed")).to_contain_text("Current")
    shot(page, "training-03-person")
    assert not problems, problems
