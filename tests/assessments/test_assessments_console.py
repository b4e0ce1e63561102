"""The assessment console pages: the due list, scheduling, the checklist, the FSL calculator,
findings with evidence, the findings list; role and facility scope; the PDF matches the page."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pyotp
from sqlalchemy import func, select
from test_report import pdf_text

from watchfloor.assessments.models import Assessment, Finding, FindingAttachment
from watchfloor.auth import service as auth_service

PASSWORD = "correct horse battery staple"
TOTP = pyotp.random_base32()
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def csrf_of(page: str) -> str:
    found = CSRF_RE.search(page)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def text_of(page: str) -> str:
    """The page's visible text, squeezed."""
    page = re.sub(r"(?s)<(script|style|svg).*?</\1>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


async def login(client: httpx.AsyncClient, db, clock, role: str, **scope: Any) -> str:  # type: ignore[no-untyped-def]
    spec = (
        auth_service.ScopeSpec.facility(scope["facility"])
        if "facility" in scope
        else auth_service.ScopeSpec.org()
    )
    await auth_service.create_user(
        db,
        clock,
        "system:test",
        username="fran",
        display_name="Fran Manager",
        password=PASSWORD,
        grants=[(role, spec)],
        totp_secret=TOTP,
    )
    await db.commit()
    page = await client.get("/login")
    resp = await client.post(
        "/login", data={"username": "fran", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert resp.status_code == 303, resp.text
    mfa = await client.get(resp.headers["location"])
    code = pyotp.TOTP(TOTP).at(clock.now())
    done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert done.status_code == 303, done.text
    return csrf_of((await client.get("/assessments")).text)


async def test_a_facility_manager_runs_an_assessment_in_the_console(
    client, db, clock, site, manager, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.session_hours = 24 * 30  # the test moves the clock on by days
    csrf = await login(client, db, clock, "facility_manager", facility="HQ")
    page = await client.get("/assessments")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "1 overdue" in text and "HQ Headquarters Field Office Overdue never assessed" in text
    assert "FAR" not in text and 'value="FAR"' not in page.text  # outside the manager's scope

    resp = await client.post(
        "/assessments",
        data={
            "facility_code": "HQ",
            "kind": "recurring",
            "scheduled_for": "2026-01-05",
            "assessor": "Fran Manager",
            "csrf_token": csrf,
        },
    )
    assert resp.status_code == 303, resp.text
    url = resp.headers["location"]
    aid = int(url.rsplit("/", 1)[1])
    page = await client.get(url)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Not scored yet" in text
    assert "3 active staff on record" in text
    for label in ("Perimeter", "Screening (magnetometers, x-ray)", "Lockdown capability"):
        assert label in text

    # the checklist
    resp = await client.post(
        f"/assessments/{aid}/answers",
        data={
            "answer:perimeter.boundary": "no",
            "note:perimeter.boundary": "east fence down",
            "answer:alarms.silent": "yes",
            "csrf_token": csrf,
        },
    )
    assert resp.status_code == 303
    page = await client.get(f"/assessments/{aid}")
    assert re.search(r'name="answer:perimeter.boundary" value="no" checked', page.text)
    assert 'value="east fence down"' in page.text

    # bad input in the calculator: a negative population names the field, changes nothing
    fsl_form = {
        "population": "-4",
        "floor_area_sqft": "50000",
        "factor:mission_criticality": "3",
        "factor:symbolism": "2",
        "factor:threat_to_tenants": "4",
        "intangible_adjustment": "0",
        "justification": "",
        "csrf_token": csrf,
    }
    resp = await client.post(f"/assessments/{aid}/fsl", data=fsl_form)
    assert resp.status_code == 303
    page = await client.get(resp.headers["location"])
    assert "population" in text_of(page.text) and "alert-error" in page.text
    db.expire_all()
    row = await db.get(Assessment, aid)
    assert row.population == 3 and row.fsl_level is None and row.factor_scores == {}
    # an adjustment without a justification is refused too
    resp = await client.post(
        f"/assessments/{aid}/fsl",
        data={**fsl_form, "population": "3", "intangible_adjustment": "1"},
    )
    page = await client.get(resp.headers["location"])
    assert "justification" in text_of(page.text).lower() and "alert-error" in page.text

    # the calculator: each factor, the total and the level
    resp = await client.post(f"/assessments/{aid}/fsl", data={**fsl_form, "population": "3"})
    page = await client.get(resp.headers["location"].split("#")[0])
    text = text_of(page.text)
    assert "FSL II" in text and "Total score 12" in text
    assert re.search(r"Facility population .*? 1 under 100 people", text)
    assert re.search(r"Facility size .*? 2 10,001 to 100,000 sq ft", text)

    # a finding with a due date before the assessment is refused; a good one is recorded
    resp = await client.post(
        f"/assessments/{aid}/findings",
        data={
            "area": "perimeter",
            "severity": "high",
            "description": "East fence down",
            "due_on": "2025-12-01",
            "csrf_token": csrf,
        },
    )
    page = await client.get(resp.headers["location"])
    assert "due_on" in text_of(page.text) and "before the assessment" in text_of(page.text)
    assert await db.scalar(select(func.count(Finding.id))) == 0
    resp = await client.post(
        f"/assessments/{aid}/findings",
        data={
            "area": "perimeter",
            "severity": "high",
            "description": "East fence down",
            "owner": "Facilities team",
            "due_on": "2026-01-20",
            "csrf_token": csrf,
        },
    )
    assert resp.status_code == 303
    fid = (await db.scalars(select(Finding.id))).one()
    # evidence
    resp = await client.post(
        f"/assessments/findings/{fid}/evidence",
        data={"csrf_token": csrf},
        files={"file": ("fence.png", PNG, "image/png")},
    )
    assert resp.status_code == 303, resp.text
    resp = await client.post(
        f"/assessments/findings/{fid}/evidence",
        data={"csrf_token": csrf},
        files={"file": ("fence.exe", b"MZ", "application/octet-stream")},
    )
    page = await client.get(resp.headers["location"])
    assert "not accepted" in text_of(page.text)
    assert await db.scalar(select(func.count(FindingAttachment.id))) == 1
    page = await client.get(f"/assessments/{aid}")
    text = text_of(page.text)
    assert "fence.png" in text and "Open 1" in text and "Closed 0" in text
    svg = re.search(r"(?s)<svg.*?</svg>", page.text)
    assert svg and "Open findings by area and severity" in svg.group(0)  # the chart, inline
    assert "style=" not in svg.group(0)  # the CSP forbids inline styles: attributes only
    assert 'fill="rgb(85%,28%,5%)"' in svg.group(0)  # the high-severity bar's colour
    evidence = re.search(r'href="(/api/v1/assessments/evidence/\d+)"', page.text)
    assert evidence
    assert (await client.get(evidence.group(1))).content == PNG

    # the findings list, with its filters and CSV link
    clock.advance(days=16)  # due 2026-01-20: now overdue
    listed = await client.get("/assessments/findings", params={"overdue": "true"})
    assert "East fence down" in listed.text and "overdue" in text_of(listed.text)
    assert "/api/v1/assessments/findings.csv?status=open&amp;overdue=true" in listed.text
    listed = await client.get("/assessments/findings", params={"area": "screening"})
    assert "East fence down" not in listed.text

    # the PDF shows what the page shows
    page = await client.get(f"/assessments/{aid}")
    assert f'href="/api/v1/assessments/{aid}/report.pdf"' in page.text
    pdf = await client.get(f"/api/v1/assessments/{aid}/report.pdf")
    ptext = pdf_text(pdf.content)
    total = re.search(r'class="asm-total">(\d+)<', page.text)
    level = re.search(r'class="asm-level-value">([IV]+)<', page.text)
    assert total and level
    assert (
        f"Total {total.group(1)}" in ptext
        and f"Facility security level FSL {level.group(1)}" in ptext
    )
    page_text = text_of(page.text)
    assert "Overdue 1" in page_text
    assert "Open findings: 1 Closed findings: 0 Overdue: 1" in ptext

    # closing needs a note; with one, the finding closes
    resp = await client.post(
        f"/assessments/findings/{fid}/update",
        data={"action": "close", "closing_note": "", "csrf_token": csrf},
    )
    page = await client.get(resp.headers["location"])
    assert "closing_note" in text_of(page.text)
    await client.post(
        f"/assessments/findings/{fid}/update",
        data={"action": "close", "closing_note": "Panel replaced", "csrf_token": csrf},
    )
    db.expire_all()
    assert (await db.get(Finding, fid)).status == "closed"

    # completing
    resp = await client.post(
        f"/assessments/{aid}/fsl", data={**fsl_form, "population": "3", "complete": "1"}
    )
    page = await client.get(resp.headers["location"].split("#")[0])
    assert "Assessment completed" in page.text and "Calculate and save" not in page.text
    listing = text_of((await client.get("/assessments")).text)
    assert "HQ Headquarters Field Office Up to date" in listing


async def test_console_scope_and_roles(client, db, clock, site, manager) -> None:  # type: ignore[no-untyped-def]
    far = (
        await client.post("/api/v1/assessments", json={"facility": "FAR"}, headers=manager)
    ).json()
    csrf = await login(client, db, clock, "facility_manager", facility="HQ")
    assert (await client.get(f"/assessments/{far['id']}")).status_code == 404
    assert (await client.get("/assessments/abc")).status_code == 404
    resp = await client.post(
        f"/assessments/{far['id']}/fsl", data={"population": "5", "csrf_token": csrf}
    )
    assert resp.status_code == 404
    resp = await client.post("/assessments", data={"facility_code": "FAR", "csrf_token": csrf})
    assert resp.status_code == 303 and "error=" in resp.headers["location"]
    assert await db.scalar(select(func.count(Assessment.id))) == 1
    # a form without the CSRF token is refused
    resp = await client.post("/assessments", data={"facility_code": "HQ"})
    assert resp.status_code == 403
    assert await db.scalar(select(func.count(Assessment.id))) == 1
    listed = await client.get("/assessments/findings", params={"facility": "FAR"})
    assert listed.status_code == 404


async def test_a_guard_has_no_assessments(client, db, clock, site) -> None:  # type: ignore[no-untyped-def]
    spec = auth_service.ScopeSpec.facility("HQ")
    await auth_service.create_user(
        db,
        clock,
        "system:test",
        username="gus",
        display_name="Gus Guard",
        password=PASSWORD,
        grants=[("guard", spec)],
        totp_secret=TOTP,
    )
    await db.commit()
    page = await client.get("/login")
    resp = await client.post(
        "/login", data={"username": "gus", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    mfa = await client.get(resp.headers["location"])
    code = pyotp.TOTP(TOTP).at(clock.now())
    await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert (await client.get("/assessments")).status_code == 403
    assert (await client.get("/assessments/findings")).status_code == 403
    anon = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    resp = await anon.get("/assessments")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
