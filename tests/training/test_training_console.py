"""The console: the landing page (most behind first, tiles that match the API, the chart, the
overdue list with vetting), a person's page, recording a completion from a form, an import refused
with its table of bad rows (nothing written) and an accepted one; pages are scoped."""

from __future__ import annotations

import re
from datetime import date

import httpx
from sqlalchemy import func, select

from watchfloor.training.models import TrainingCompletion


def _tiles(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)<', html)}


async def test_landing_page_chart_and_person_page(
    client: httpx.AsyncClient, make_token, estate, record
) -> None:
    pm = await make_token("programme_manager", org=True)
    await record("N-STAFF", "ASR", date(2024, 6, 1))
    page = await client.get("/training", headers=pm)
    assert page.status_code == 200, page.text
    ov = (await client.get("/api/v1/training/overview", headers=pm)).json()
    tiles = _tiles(page.text)
    assert {k: tiles[k] for k in ("overdue", "never", "due_soon", "current", "total")} == ov[
        "totals"
    ]
    assert tiles["vetting_expired"] == 1
    first_row = page.text.split('id="training-facilities"')[1].split("</tr>")[1]
    assert "NYC-FO" in first_row  # the most behind first
    assert "Vetting expired" in page.text
    svg = await client.get("/training/chart.svg", headers=pm)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "Active-shooter response" in svg.text
    person = await client.get("/training/people/N-STAFF", headers=pm)
    assert person.status_code == 200
    assert "Sam Staff" in person.text and "Overdue" in person.text
    filtered = await client.get("/training?facility=BOS-FO", headers=pm)
    assert "Bea Boston" in filtered.text and "Sam Staff" not in filtered.text


async def test_pages_are_scoped(client: httpx.AsyncClient, make_token, estate) -> None:
    mgr = await make_token("facility_manager", facility="BOS-FO")
    page = await client.get("/training", headers=mgr)
    assert page.status_code == 200
    assert "Bea Boston" in page.text and "Gina" not in page.text
    assert (await client.get("/training/people/N-GUARD", headers=mgr)).status_code == 404
    guard = await make_token("guard", facility="BOS-FO")
    assert (await client.get("/training", headers=guard)).status_code == 403
    assert (await client.get("/training/chart.svg", headers=guard)).status_code == 403


async def test_record_from_the_form_and_import_with_the_error_table(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    mgr = await make_token("facility_manager", facility="NYC-FO")
    r = await client.post(
        "/training/completions",
        data={"employee_id": "N-GUARD", "course_code": "STB", "completed_on": "2025-04-04",
              "back": "/training/people/N-GUARD"},
        headers=mgr,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/training/people/N-GUARD?")
    assert "Recorded" in r.headers["location"]
    bad = await client.post(
        "/training/completions",
        data={"employee_id": "N-GUARD", "course_code": "STB", "completed_on": "someday"},
        headers=mgr,
    )
    assert bad.status_code == 303 and "not+a+date" in bad.headers["location"]

    text = "employee_id,course_code,completed_on\nN-STAFF,ASR,2025-01-01\nGHOST,ASR,2025-01-01\n"
    refused = await client.post(
        "/training/import", files={"file": ("lms.csv", text.encode(), "text/csv")}, headers=mgr
    )
    assert refused.status_code == 422
    assert "Import refused" in refused.text and "GHOST" in refused.text
    assert int(await db.scalar(select(func.count()).select_from(TrainingCompletion)) or 0) == 1
    ok = await client.post(
        "/training/import",
        files={"file": ("lms.csv", text.replace("GHOST", "N-MGR").encode(), "text/csv")},
        headers=mgr,
    )
    assert ok.status_code == 303 and "2+new+records" in ok.headers["location"]
