"""The console: issue a directive with a preview, the board, a facility's tasks with confirmed
actions, the burn-down SVG, the scorecard pages; and the PDF's text holds the board's figures."""

from __future__ import annotations

import io
import re

import httpx
from pypdf import PdfReader
from sqlalchemy import func, select

from watchfloor.clock import FakeClock
from watchfloor.rollout.models import Directive, RolloutTask
from watchfloor.rollout.scorecard import COMPONENT_LABELS


def _tiles(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)<', html)}


async def test_programme_manager_issues_from_the_console_after_a_preview(
    client: httpx.AsyncClient, make_token, estate, db, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    form = await client.get("/rollout/directives/new", headers=pm)
    assert form.status_code == 200
    assert "Armed officers on site around the clock" in form.text
    data = {"title": "Overhaul", "kind": "all", "issued_at": "2026-01-05T12:00", "step": "preview"}
    preview = await client.post("/rollout/directives", data=data, headers=pm)
    assert preview.status_code == 200, preview.text
    assert "<strong>45</strong> tasks" in preview.text
    assert int(await db.scalar(select(func.count()).select_from(Directive)) or 0) == 0
    bad = await client.post(
        "/rollout/directives",
        data={**data, "kind": "list", "facilities": "NOPE-9", "step": "issue"},
        headers=pm,
    )
    assert bad.status_code == 422
    assert "NOPE-9" in bad.text
    issued = await client.post("/rollout/directives", data={**data, "step": "issue"}, headers=pm)
    assert issued.status_code == 303, issued.text
    assert int(await db.scalar(select(func.count()).select_from(RolloutTask)) or 0) == 45

    clock.advance(days=2)  # immediate measures are late now
    page = await client.get("/rollout", headers=pm)
    assert page.status_code == 200
    board = (await client.get("/api/v1/rollout/board", headers=pm)).json()
    assert _tiles(page.text) == board["totals"]
    assert board["totals"]["late"] == 6  # 2 immediate measures × 3 facilities
    svg = await client.get("/rollout/burndown.svg", headers=pm)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "open tasks" in svg.text

    # drill into a late site, confirm "done" on a late task
    fac = await client.get("/rollout/facilities/NYC-FO", headers=pm)
    assert fac.status_code == 200
    first = re.search(r'href="/rollout/tasks/(\d+)\?action=done"', fac.text)
    assert first
    task_id = first.group(1)
    confirm = await client.get(f"/rollout/tasks/{task_id}?action=done", headers=pm)
    assert "Confirm: Mark done" in confirm.text
    version = re.search(r'name="version" value="(\d+)"', confirm.text)
    assert version
    done = await client.post(
        f"/rollout/tasks/{task_id}",
        data={"action": "done", "version": version.group(1)},
        headers=pm,
    )
    assert done.status_code == 303
    task = (await client.get(f"/api/v1/rollout/tasks/{task_id}", headers=pm)).json()
    assert task["state"] == "done"
    # the same confirmation again is stale: refused, nothing changes
    stale = await client.post(
        f"/rollout/tasks/{task_id}",
        data={"action": "in_progress", "version": version.group(1)},
        headers=pm,
    )
    assert stale.status_code == 303 and "error=" in stale.headers["location"]

    card = await client.get("/scorecard", headers=pm)
    assert card.status_code == 200 and "Countermeasure rollout" in card.text
    east = await client.get("/scorecard?region=EAST", headers=pm)
    assert "/scorecard/facilities/NYC-FO" in east.text
    fcard = await client.get("/scorecard/facilities/NYC-FO", headers=pm)
    assert "Lobby panic button (panic button) is offline" in fcard.text
    assert "Not tracked yet" in fcard.text


async def test_pdf_holds_the_boards_figures(
    client: httpx.AsyncClient, make_token, estate, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    resp = await client.post(
        "/api/v1/directives",
        json={"title": "Overhaul of all field offices", "selection": {"kind": "all"}},
        headers=pm,
    )
    assert resp.status_code == 201
    clock.advance(days=5)
    board = (await client.get("/api/v1/rollout/board", headers=pm)).json()
    pdf = await client.get("/api/v1/rollout/report.pdf", headers=pm)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    raw = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    text = " ".join(raw.split())  # table cells come out one a line
    t = board["totals"]
    assert f"Late: {t['late']}" in text
    assert f"Due soon: {t['due_soon']}" in text
    assert f"On track: {t['on_track']}" in text
    assert f"Total: {t['total']}" in text
    assert "Test Agency" in text
    for row in board["by_region"]:
        c = row["counts"]
        line = f"{row['key']} {row['name']} {c['late']} {c['due_soon']} {c['on_track']}"
        assert line in text, line
    csv = await client.get("/api/v1/rollout/tasks.csv", headers=pm)
    assert csv.status_code == 200
    assert len(csv.text.strip().splitlines()) == 1 + t["total"]
    assert csv.text.count(",late,") == t["late"]
    sc = await client.get("/api/v1/scorecard.csv", headers=pm)
    assert sc.status_code == 200 and "device_health" in sc.text
    # the PDF's preparedness section holds the organisation row the console shows
    card = (await client.get("/api/v1/scorecard", headers=pm)).json()
    assert "Preparedness scorecard" in text
    for key, label in COMPONENT_LABELS.items():
        c = card["organisation"]["components"][key]
        line = f"{label} {c['gap']} {c['under_review']} {c['in_place']} {c['not_tracked']}"
        assert line in text, line


async def test_scorecard_chart_counts_facilities(
    client: httpx.AsyncClient, make_token, estate
) -> None:
    pm = await make_token("programme_manager", org=True)
    page = await client.get("/scorecard", headers=pm)
    assert 'src="/scorecard/chart.svg"' in page.text
    chart = await client.get("/scorecard/chart.svg", headers=pm)
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert "Device health" in chart.text and "Gap" in chart.text
    staff = await make_token("staff", facility="BOS-FO")
    assert (await client.get("/scorecard/chart.svg", headers=staff)).status_code == 403


async def test_facility_manager_cannot_issue_from_the_console(
    client: httpx.AsyncClient, make_token, estate
) -> None:
    fm = await make_token("facility_manager", facility="BOS-FO")
    assert (await client.get("/rollout/directives/new", headers=fm)).status_code == 403
    resp = await client.post(
        "/rollout/directives", data={"title": "x", "kind": "all", "step": "issue"}, headers=fm
    )
    assert resp.status_code == 403
    assert (await client.get("/rollout/facilities/NYC-FO", headers=fm)).status_code == 404
    assert (await client.get("/scorecard/facilities/NYC-FO", headers=fm)).status_code == 404
