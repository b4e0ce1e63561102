"""The assessment PDF holds the figures the API and the console show."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from pypdf import PdfReader

API = "/api/v1/assessments"


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return re.sub(r"\s+", " ", text)  # table cells come out one a line


async def test_the_pdf_shows_what_the_api_shows(client, manager, site, clock) -> None:  # type: ignore[no-untyped-def]
    resp = await client.post(
        API,
        json={
            "facility": "HQ",
            "assessor": "Sam Assessor",
            "kind": "ad_hoc",
            "directive_ref": "DIR-OVERHAUL-1",
            "population": 300,
            "floor_area_sqft": 120_000,
            "factors": {"mission_criticality": 4, "symbolism": 3, "threat_to_tenants": 3},
            "intangible_adjustment": 1,
            "justification": "Adjacent to the federal courthouse.",
        },
        headers=manager,
    )
    assert resp.status_code == 201, resp.text
    aid = resp.json()["id"]
    today = clock.now().date()
    for area, sev, text, days in (
        ("perimeter", "critical", "Vehicle gate left open overnight", 1),
        ("perimeter", "high", "East fence panel missing", 30),
        ("screening", "medium", "X-ray unit out of calibration", 30),
        ("support", "low", "Counselling leaflet out of date", None),
    ):
        body = {"area": area, "severity": sev, "description": text, "owner": "Ops"}
        if days:
            body["due_on"] = (today + timedelta(days=days)).isoformat()
        assert (
            await client.post(f"{API}/{aid}/findings", json=body, headers=manager)
        ).status_code == 201
    detail = (await client.get(f"{API}/{aid}", headers=manager)).json()
    last = detail["findings"][-1]["id"]
    await client.patch(
        f"{API}/findings/{last}",
        json={"status": "closed", "closing_note": "Leaflets reprinted"},
        headers=manager,
    )
    await client.patch(f"{API}/{aid}", json={"status": "completed"}, headers=manager)
    clock.advance(days=2)  # the critical finding is now overdue
    detail = (await client.get(f"{API}/{aid}", headers=manager)).json()
    fsl = detail["fsl"]
    # 4 + 3 + (300 people → 3) + (120,000 sq ft → 3) + 3 = 16 → III, +1 → IV
    assert (fsl["total"], fsl["computed_level"], fsl["level"]) == (16, "III", "IV")

    resp = await client.get(f"{API}/{aid}/report.pdf", headers=manager)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
    assert resp.content.startswith(b"%PDF-")
    text = pdf_text(resp.content)
    assert "Headquarters Field Office (HQ)" in text
    assert "Sam Assessor" in text
    assert "DIR-OVERHAUL-1" in text
    assert detail["completed_at"][:10] in text
    # the FSL table: every factor's score, the total, the computed and final levels
    labels = [
        ("Mission criticality", "mission_criticality"),
        ("Symbolism", "symbolism"),
        ("Facility population", "facility_population"),
        ("Facility size", "facility_size"),
        ("Threat to tenant agencies", "threat_to_tenants"),
        ("Total", None),
    ]
    for (label, key), (after, _) in zip(labels, labels[1:], strict=False):
        found = re.search(rf"{label} (.*?) (\d) {after} ", text)
        assert found, (label, text)
        assert int(found.group(2)) == fsl["scores"][key], label
    assert "Facility population 300 people 3" in text
    assert "Facility size 120,000 sq ft 3" in text
    assert f"Total {fsl['total']} Level from the total FSL {fsl['computed_level']}" in text
    assert "Intangible adjustment +1" in text
    assert f"Facility security level FSL {fsl['level']}" in text
    assert "Adjacent to the federal courthouse." in text
    # findings: the counts, and each finding
    open_n = sum(1 for f in detail["findings"] if f["status"] == "open")
    overdue_n = sum(1 for f in detail["findings"] if f["overdue"])
    assert (open_n, overdue_n) == (3, 1)
    assert f"Open findings: {open_n} Closed findings: 1 Overdue: {overdue_n}" in text
    for f in detail["findings"]:
        assert f["description"] in text
    assert "open (overdue)" in text
    assert "Open findings by area and severity" in text  # the chart's title
    # the by-area table: perimeter has 1 critical + 1 high open
    assert "Perimeter 1 1 0 0 2 Screening (magnetometers, x-ray) 0 0 1 0 1" in text
    assert "Leaflets reprinted" in text


async def test_the_pdf_of_an_unscored_assessment_says_so(client, manager, site) -> None:  # type: ignore[no-untyped-def]
    aid = (await client.post(API, json={"facility": "FAR"}, headers=manager)).json()["id"]
    resp = await client.get(f"{API}/{aid}/report.pdf", headers=manager)
    text = pdf_text(resp.content)
    assert "not been scored yet" in text and "No findings were recorded." in text
