"""The assessments API: scheduling, the checklist, the FSL on an assessment, findings and their
evidence, the reassessment schedule with a fake clock, bad input, the standard, role and scope."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from watchfloor.assessments import service
from watchfloor.assessments.models import Assessment, Finding, FindingAttachment
from watchfloor.audit.models import AuditRecord
from watchfloor.sites.models import Facility

API = "/api/v1/assessments"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
FACTORS = {"mission_criticality": 3, "symbolism": 2, "threat_to_tenants": 4}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post(
        API, json={"facility": "HQ", "assessor": "Sam Assessor", **body}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def patch(
    client: httpx.AsyncClient, headers: dict[str, str], aid: int, **body: Any
) -> httpx.Response:
    return await client.patch(f"{API}/{aid}", json=body, headers=headers)


async def audit_count(db: Any) -> int:
    return int(await db.scalar(select(func.count(AuditRecord.id))) or 0)


async def scored(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    a = await create(client, headers, **body)
    resp = await patch(client, headers, a["id"], factors=FACTORS)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_a_new_assessment_takes_population_and_size_from_the_registry(
    client, db, manager, site
) -> None:  # type: ignore[no-untyped-def]
    a = await create(client, manager)
    # three active staff at HQ (a fourth has left); 50,000 sq ft in the registry
    assert a["population"] == 3
    assert a["floor_area_sqft"] == 50_000
    assert a["status"] == "scheduled" and a["fsl"] is None
    areas = [s["area"] for s in a["checklist"]]
    assert areas == [
        "perimeter",
        "access_control",
        "screening",
        "surveillance",
        "alarms",
        "lockdown",
        "emergency_plans",
        "training",
        "interagency",
        "support",
    ]
    assert all(len(s["questions"]) >= 3 for s in a["checklist"])
    # the registry's own population figure wins over the staff count when one is recorded
    hq = await db.get(Facility, site.hq)
    hq.population = 400
    await db.commit()
    b = await create(client, manager)
    assert b["population"] == 400
    # an explicit figure wins over both
    c = await create(client, manager, population=800, floor_area_sqft=260_000)
    assert (c["population"], c["floor_area_sqft"]) == (800, 260_000)


async def test_scoring_answering_and_completing(client, db, manager, site, clock) -> None:  # type: ignore[no-untyped-def]
    a = await create(client, manager)
    aid = a["id"]
    resp = await patch(
        client,
        manager,
        aid,
        factors=FACTORS,
        answers={"perimeter.boundary": {"answer": "no", "note": "fence down on the east side"}},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # 3 + 2 + population 3 people → 1 + 50,000 sq ft → 2 + 4 = 12 → FSL II
    assert body["fsl"]["scores"] == {
        "mission_criticality": 3,
        "symbolism": 2,
        "facility_population": 1,
        "facility_size": 2,
        "threat_to_tenants": 4,
    }
    assert (body["fsl"]["total"], body["fsl"]["level"]) == (12, "II")
    assert body["status"] == "in_progress"
    q = body["checklist"][0]["questions"][0]
    assert (q["key"], q["answer"], q["note"]) == (
        "perimeter.boundary",
        "no",
        "fence down on the east side",
    )
    # one more person moves population to 2, the total to 13 and the level to III
    resp = await patch(client, manager, aid, population=100)
    assert (resp.json()["fsl"]["total"], resp.json()["fsl"]["level"]) == (13, "III")
    # intangibles: one level down with a justification
    resp = await patch(
        client, manager, aid, intangible_adjustment=-1, justification="Shared lobby with a bank."
    )
    assert resp.json()["fsl"]["level"] == "II" and resp.json()["fsl"]["computed_level"] == "III"
    clock.advance(hours=2)
    resp = await patch(client, manager, aid, status="completed")
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert done["status"] == "completed" and done["completed_at"] is not None
    assert await service.latest_levels(db, [site.hq, site.far]) == {site.hq: "II"}
    # a completed assessment is a record: no more changes
    resp = await patch(client, manager, aid, factors={"symbolism": 4})
    assert resp.status_code == 409
    assert (await client.delete(f"{API}/{aid}", headers=manager)).status_code == 409
    actions = (
        await db.scalars(
            select(AuditRecord.action)
            .where(AuditRecord.target_type == "assessment", AuditRecord.target_id == str(aid))
            .order_by(AuditRecord.id)
        )
    ).all()
    assert actions == [
        "assessment.created",
        "assessment.updated",
        "assessment.updated",
        "assessment.updated",
        "assessment.completed",
    ]


async def test_cancelling_an_assessment(client, db, manager, site) -> None:  # type: ignore[no-untyped-def]
    a = await create(client, manager)
    b = await scored(client, manager)
    await client.post(
        f"{API}/{b['id']}/findings",
        json={"area": "training", "severity": "low", "description": "Drill overdue"},
        headers=manager,
    )
    assert (await client.delete(f"{API}/{b['id']}", headers=manager)).status_code == 409
    assert (await client.delete(f"{API}/{a['id']}", headers=manager)).status_code == 204
    assert (await client.get(f"{API}/{a['id']}", headers=manager)).status_code == 404
    assert (await client.get(f"{API}/{b['id']}", headers=manager)).status_code == 200
    deleted = (
        await db.scalars(select(AuditRecord).where(AuditRecord.action == "assessment.deleted"))
    ).one()
    assert deleted.target_id == str(a["id"])


async def test_agency_level_v(client, manager, site) -> None:  # type: ignore[no-untyped-def]
    a = await scored(client, manager)
    resp = await patch(client, manager, a["id"], agency_level=True)
    assert resp.status_code == 422 and "justification" in resp.json()["detail"]
    resp = await patch(
        client, manager, a["id"], agency_level=True, justification="National symbol."
    )
    assert resp.status_code == 200
    assert resp.json()["fsl"]["level"] == "V" and resp.json()["fsl"]["agency_set"]


async def assert_unchanged(db: Any, aid: int, before: dict[str, Any], audits: int) -> None:
    db.expire_all()
    a = await db.get(Assessment, aid)
    assert {
        "population": a.population,
        "factors": a.factor_scores,
        "level": a.fsl_level,
        "status": a.status,
        "answers": a.answers,
    } == before
    assert await audit_count(db) == audits


async def test_impossible_values_are_refused_naming_the_field_and_change_nothing(
    client, db, manager, site
) -> None:  # type: ignore[no-untyped-def]
    a = await scored(client, manager)
    aid = a["id"]
    before = {
        "population": 3,
        "factors": FACTORS,
        "level": "II",
        "status": "in_progress",
        "answers": {},
    }
    audits = await audit_count(db)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"population": -5}, "population"),
        ({"floor_area_sqft": -1}, "floor_area_sqft"),
        ({"factors": {"symbolism": 5}}, "symbolism"),
        ({"factors": {"symbolism": 0}, "population": 10}, "symbolism"),
        ({"factors": {"prestige": 2}}, "prestige"),
        ({"factors": {"facility_population": 4}}, "facility_population"),
        ({"intangible_adjustment": 2, "justification": "x"}, "intangible_adjustment"),
        ({"intangible_adjustment": 1}, "justification"),
        ({"answers": {"perimeter.boundary": {"answer": "maybe"}}}, "answer"),
        ({"answers": {"no.such.question": {"answer": "yes"}}}, "no.such.question"),
        ({"population": "many"}, "population"),
        ({"status": "scheduled"}, "status"),
    ]
    for body, field in cases:
        resp = await patch(client, manager, aid, **body)
        assert resp.status_code == 422, (body, resp.text)
        problem = resp.json()
        assert resp.headers["content-type"].startswith("application/problem+json")
        locs = [".".join(e["loc"]) for e in problem.get("errors", [])]
        assert any(field in loc for loc in locs) or field in problem["detail"], (body, problem)
        await assert_unchanged(db, aid, before, audits)
    # completing without an assessor or with a missing score is refused too
    b = await create(client, manager, assessor="")
    resp = await patch(client, manager, b["id"], status="completed")
    assert resp.status_code == 422 and "mission_criticality" in resp.json()["detail"]
    resp = await patch(client, manager, b["id"], status="completed", factors=FACTORS)
    assert resp.status_code == 422 and "assessor" in resp.json()["detail"]
    db.expire_all()
    row = await db.get(Assessment, b["id"])
    assert row.status == "scheduled" and row.factor_scores == {} and row.completed_at is None
    # creation refuses a negative population and an unknown facility or template
    for body in (
        {"facility": "HQ", "population": -1},
        {"facility": "HQ", "factors": {"symbolism": 9}},
        {"facility": "HQ", "template": "nope"},
        {"facility": "HQ", "kind": "sometimes"},
        {"facility": "HQ", "scheduled_for": "2026-02-01T10:00:00"},  # no time zone
    ):
        count = await db.scalar(select(func.count(Assessment.id)))
        resp = await client.post(API, json=body, headers=manager)
        assert resp.status_code == 422, (body, resp.text)
        assert await db.scalar(select(func.count(Assessment.id))) == count
    assert (await client.post(API, json={"facility": "NOPE"}, headers=manager)).status_code == 404


async def test_findings_due_dates_closing_and_overdue_with_a_fake_clock(
    client, db, manager, site, clock
) -> None:  # type: ignore[no-untyped-def]
    a = await scored(client, manager)
    aid = a["id"]
    today = clock.now().date()
    # a due date before the assessment is refused; nothing is written
    resp = await client.post(
        f"{API}/{aid}/findings",
        json={
            "area": "perimeter",
            "severity": "high",
            "description": "Fence down",
            "due_on": (today - timedelta(days=1)).isoformat(),
        },
        headers=manager,
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["body", "due_on"]
    assert await db.scalar(select(func.count(Finding.id))) == 0
    for body in (
        {"area": "moat", "severity": "high", "description": "x"},
        {"area": "perimeter", "severity": "dire", "description": "x"},
        {"area": "perimeter", "severity": "high", "description": ""},
        {"area": "perimeter", "severity": "high", "description": "x", "due_on": "2026-13-01"},
    ):
        resp = await client.post(f"{API}/{aid}/findings", json=body, headers=manager)
        assert resp.status_code == 422, body
    assert await db.scalar(select(func.count(Finding.id))) == 0

    due = today + timedelta(days=10)
    made = []
    for area, sev, days in (
        ("perimeter", "high", 10),
        ("perimeter", "critical", 20),
        ("screening", "low", None),
    ):
        resp = await client.post(
            f"{API}/{aid}/findings",
            json={
                "area": area,
                "severity": sev,
                "description": f"{sev} {area}",
                "owner": "Facilities",
                **({"due_on": (today + timedelta(days=days)).isoformat()} if days else {}),
            },
            headers=manager,
        )
        assert resp.status_code == 201, resp.text
        made.append(resp.json())
    assert [f["overdue"] for f in made] == [False, False, False]

    clock.set(clock.now().replace(year=due.year, month=due.month, day=due.day))
    resp = await client.get(f"{API}/findings", params={"overdue": "true"}, headers=manager)
    assert resp.json()["total"] == 0  # due today is not late yet
    clock.advance(days=1)
    resp = await client.get(f"{API}/findings", params={"overdue": "true"}, headers=manager)
    assert [f["id"] for f in resp.json()["items"]] == [made[0]["id"]]
    summary = await service.facility_findings_summary(db, [site.hq, site.far], clock.now())
    assert summary == {
        site.hq: {
            "perimeter": {"open": 2, "overdue": 1, "worst": "critical"},
            "screening": {"open": 1, "overdue": 0, "worst": "low"},
        }
    }
    # filters
    listed = await client.get(
        f"{API}/findings", params={"area": "perimeter", "severity": "critical"}, headers=manager
    )
    assert [f["id"] for f in listed.json()["items"]] == [made[1]["id"]]
    listed = await client.get(f"{API}/findings", headers=manager)
    assert [f["severity"] for f in listed.json()["items"]] == ["critical", "high", "low"]

    # closing needs a note; a closed finding is neither open nor overdue
    fid = made[0]["id"]
    resp = await client.patch(f"{API}/findings/{fid}", json={"status": "closed"}, headers=manager)
    assert resp.status_code == 422 and "closing_note" in resp.json()["detail"]
    resp = await client.patch(
        f"{API}/findings/{fid}",
        json={"status": "closed", "closing_note": "Fence repaired, photo attached."},
        headers=manager,
    )
    assert resp.status_code == 200 and resp.json()["status"] == "closed"
    assert not resp.json()["overdue"]
    summary = await service.facility_findings_summary(db, [site.hq], clock.now())
    assert summary[site.hq]["perimeter"] == {"open": 1, "overdue": 0, "worst": "critical"}
    resp = await client.patch(
        f"{API}/findings/{fid}", json={"due_on": "2025-01-01"}, headers=manager
    )
    assert resp.status_code == 422
    closed = await client.get(f"{API}/findings", params={"status": "closed"}, headers=manager)
    assert [f["id"] for f in closed.json()["items"]] == [fid]
    audit_actions = (
        await db.scalars(
            select(AuditRecord.action).where(AuditRecord.target_type == "assessment_finding")
        )
    ).all()
    assert audit_actions.count("assessment.finding_added") == 3
    assert "assessment.finding_closed" in audit_actions


async def test_reassessment_schedule_by_level_with_a_fake_clock(
    client, db, manager, site, clock, settings
) -> None:  # type: ignore[no-untyped-def]
    due = await client.get(f"{API}/due", headers=manager)
    assert [(d["facility"], d["status"]) for d in due.json()] == [
        ("FAR", "overdue"),
        ("HQ", "overdue"),
    ]  # never assessed: due now
    a = await scored(client, manager)  # FSL II: every 36 months
    assert (await patch(client, manager, a["id"], status="completed")).status_code == 200
    # FAR gets an assessment booked for next week
    resp = await client.post(
        API,
        json={
            "facility": "FAR",
            "scheduled_for": (clock.now() + timedelta(days=7)).isoformat(),
        },
        headers=manager,
    )
    far_id = resp.json()["id"]
    rows = {d["facility"]: d for d in (await client.get(f"{API}/due", headers=manager)).json()}
    assert rows["HQ"]["status"] == "ok" and rows["HQ"]["level"] == "II"
    assert rows["HQ"]["next_due"].startswith("2029-01-05")
    assert rows["FAR"]["status"] == "scheduled" and rows["FAR"]["open_assessment_id"] == far_id
    only = await client.get(f"{API}/due", params={"only_due": "true"}, headers=manager)
    assert [d["facility"] for d in only.json()] == ["FAR"]
    # the booked date passes without the assessment being done: overdue again
    clock.advance(days=8)
    rows = {d["facility"]: d for d in (await client.get(f"{API}/due", headers=manager)).json()}
    assert rows["FAR"]["status"] == "overdue"
    # HQ falls due soon (60 days ahead by default), then overdue
    clock.set(clock.now().replace(year=2028, month=11, day=20))
    rows = {d["facility"]: d for d in (await client.get(f"{API}/due", headers=manager)).json()}
    assert rows["HQ"]["status"] == "due_soon"
    clock.set(clock.now().replace(year=2029, month=1, day=6))
    listed = (await client.get(f"{API}/due", headers=manager)).json()
    assert [d["status"] for d in listed] == ["overdue", "overdue"]
    # FSL III and IV facilities are reassessed every year
    b = await create(client, manager, population=800, floor_area_sqft=300_000)
    resp = await patch(client, manager, b["id"], factors=FACTORS, status="completed")
    assert resp.json()["fsl"]["level"] == "III"  # 3 + 2 + 4 + 4 + 4 = 17
    rows = {d["facility"]: d for d in (await client.get(f"{API}/due", headers=manager)).json()}
    assert rows["HQ"]["status"] == "ok" and rows["HQ"]["next_due"].startswith("2030-01-06")


async def test_evidence_uploads(client, db, manager, site, settings) -> None:  # type: ignore[no-untyped-def]
    a = await scored(client, manager)
    resp = await client.post(
        f"{API}/{a['id']}/findings",
        json={"area": "surveillance", "severity": "medium", "description": "Camera 3 dark"},
        headers=manager,
    )
    fid = resp.json()["id"]
    url = f"{API}/findings/{fid}/evidence"
    resp = await client.post(
        url, files={"file": ("../../etc/cam3.png", PNG, "image/png")}, headers=manager
    )
    assert resp.status_code == 201, resp.text
    att = resp.json()
    assert att["filename"] == "cam3.png" and att["size"] == len(PNG)
    stored = (await db.scalars(select(FindingAttachment))).one()
    folder = service.attachments_folder(settings)
    assert (service.attachment_path(folder, stored.stored_name)).read_bytes() == PNG
    got = await client.get(f"{API}/evidence/{att['id']}", headers=manager)
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    # refused: wrong type, bytes that are not what the type says, empty, too large
    settings.assessments_attachment_max_bytes = 2048
    for files, why in (
        ({"file": ("x.exe", b"MZ\x90\x00", "application/x-msdownload")}, "not accepted"),
        ({"file": ("x.png", b"GIF89a" + b"\x00" * 10, "image/png")}, "not a image/png"),
        ({"file": ("x.pdf", b"", "application/pdf")}, "empty"),
        ({"file": ("x.txt", b"a" * 4096, "text/plain")}, "limit"),
        ({"file": ("x.txt", b"\xff\xfe\x00bad", "text/plain")}, "UTF-8"),
    ):
        resp = await client.post(url, files=files, headers=manager)
        assert resp.status_code == 422, (why, resp.text)
        assert why in resp.json()["detail"], resp.json()
    assert await db.scalar(select(func.count(FindingAttachment.id))) == 1
    assert len(list(service.attachment_path(folder, "x").parent.iterdir())) == 1
    finding = (await client.get(f"{API}/findings/{fid}", headers=manager)).json()
    assert [x["filename"] for x in finding["attachments"]] == ["cam3.png"]


async def test_a_phone_photo_fits_but_other_requests_keep_the_small_limit(
    client, db, manager, site, settings
) -> None:  # type: ignore[no-untyped-def]
    a = await scored(client, manager)
    resp = await client.post(
        f"{API}/{a['id']}/findings",
        json={"area": "perimeter", "severity": "high", "description": "Fence cut"},
        headers=manager,
    )
    fid = resp.json()["id"]
    photo = b"\xff\xd8\xff\xe0" + b"\x00" * (4 * 1024 * 1024)  # a 4 MiB JPEG from a phone
    assert len(photo) > settings.max_body_bytes
    resp = await client.post(
        f"{API}/findings/{fid}/evidence",
        files={"file": ("fence.jpg", photo, "image/jpeg")},
        headers=manager,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["size"] == len(photo)
    # well past the evidence limit: refused before it is read, nothing stored
    huge = b"\xff\xd8\xff\xe0" + b"\x00" * (settings.assessments_attachment_max_bytes + 2**17)
    resp = await client.post(
        f"{API}/findings/{fid}/evidence",
        files={"file": ("huge.jpg", huge, "image/jpeg")},
        headers=manager,
    )
    assert resp.status_code == 413 and resp.json()["type"].endswith("body-too-large")
    assert await db.scalar(select(func.count(FindingAttachment.id))) == 1
    # any other route still refuses a body that large
    resp = await client.post(
        f"{API}/{a['id']}/findings",
        content=b"{" + b" " * (settings.max_body_bytes + 1) + b"}",
        headers={**manager, "Content-Type": "application/json"},
    )
    assert resp.status_code == 413


async def test_csv_export(client, manager, site) -> None:  # type: ignore[no-untyped-def]
    a = await scored(client, manager)
    for sev, text in (("high", '=HYPERLINK("http://evil")'), ("low", "Sign faded")):
        await client.post(
            f"{API}/{a['id']}/findings",
            json={"area": "perimeter", "severity": sev, "description": text},
            headers=manager,
        )
    resp = await client.get(f"{API}/findings.csv", headers=manager)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [(r["facility"], r["severity"]) for r in rows] == [("HQ", "high"), ("HQ", "low")]
    assert rows[0]["description"].startswith("'=")  # not run as a formula by a spreadsheet
    low = await client.get(f"{API}/findings.csv", params={"severity": "low"}, headers=manager)
    assert [r["description"] for r in csv.DictReader(io.StringIO(low.text))] == ["Sign faded"]


async def test_loading_a_standard_changes_the_level(client, db, manager, hq_manager, site) -> None:  # type: ignore[no-untyped-def]
    from test_fsl import CUSTOM

    a = await scored(client, manager)
    assert a["fsl"]["level"] == "II"  # total 12
    std = await client.get(f"{API}/standard", headers=manager)
    assert std.json()["source"] == "default"
    # a facility manager may not change the organisation's standard
    resp = await client.put(f"{API}/standard", json={"yaml": CUSTOM}, headers=hq_manager)
    assert resp.status_code == 403
    bad = await client.put(
        f"{API}/standard", json={"yaml": CUSTOM.replace("max: 9}", "max: 8}")}, headers=manager
    )
    assert bad.status_code == 422 and "levels" in bad.json()["detail"]
    assert (await client.get(f"{API}/standard", headers=manager)).json()["source"] == "default"
    resp = await client.put(f"{API}/standard", json={"yaml": CUSTOM}, headers=manager)
    assert resp.status_code == 200, resp.text
    assert resp.json()["standard"]["edition"] == "2027"
    # scored again under the new edition: 12 is FSL II there too; 9 is I there (II by default)
    resp = await patch(
        client, manager, a["id"], factors={"mission_criticality": 1, "threat_to_tenants": 2}
    )
    assert (resp.json()["fsl"]["total"], resp.json()["fsl"]["level"]) == (8, "I")
    assert resp.json()["fsl"]["standard"] == "Agency edition (2027)"
    calc = await client.post(
        f"{API}/fsl",
        json={"factors": {**FACTORS, "facility_population": 1, "facility_size": 1}},
        headers=hq_manager,
    )
    assert calc.json()["level"] == "II" and calc.json()["total"] == 11
    record = (
        await db.scalars(
            select(AuditRecord).where(AuditRecord.action == "assessment.standard_loaded")
        )
    ).one()
    assert record.details["edition"] == "2027"


async def test_role_and_facility_scope(client, db, make_token, manager, hq_manager, site) -> None:  # type: ignore[no-untyped-def]
    mine = await create(client, hq_manager)
    theirs = (await client.post(API, json={"facility": "FAR"}, headers=manager)).json()
    # HQ's manager cannot create at FAR, nor see or touch FAR's assessment
    resp = await client.post(API, json={"facility": "FAR"}, headers=hq_manager)
    assert resp.status_code == 403
    assert (await client.get(f"{API}/{theirs['id']}", headers=hq_manager)).status_code == 404
    resp = await patch(client, hq_manager, theirs["id"], factors=FACTORS)
    assert resp.status_code == 404
    resp = await client.post(
        f"{API}/{theirs['id']}/findings",
        json={"area": "perimeter", "severity": "low", "description": "x"},
        headers=hq_manager,
    )
    assert resp.status_code == 404
    assert (
        await client.get(f"{API}/{theirs['id']}/report.pdf", headers=hq_manager)
    ).status_code == 404
    listed = await client.get(API, headers=hq_manager)
    assert [i["id"] for i in listed.json()["items"]] == [mine["id"]]
    assert [d["facility"] for d in (await client.get(f"{API}/due", headers=hq_manager)).json()] == [
        "HQ"
    ]
    assert (
        await client.get(API, params={"facility": "FAR"}, headers=hq_manager)
    ).status_code == 403
    # roles without assessments:read are refused; operators have no write here
    for role in ("guard", "staff", "operator"):
        headers = await make_token(role, org=True, name=f"t-{role}")
        assert (await client.get(API, headers=headers)).status_code == 403, role
        assert (await client.post(API, json={"facility": "HQ"}, headers=headers)).status_code == 403
    assert (await client.get(API)).status_code == 401
    # a region-scoped programme manager sees only the region's facilities
    south = await make_token("programme_manager", region="SOUTH", name="south-pm")
    listed = await client.get(API, headers=south)
    assert [i["facility"] for i in listed.json()["items"]] == ["FAR"]
    assert (await client.get(f"{API}/{mine['id']}", headers=south)).status_code == 404
    assert (
        await client.put(f"{API}/standard", json={"yaml": "x"}, headers=south)
    ).status_code == 403


async def test_a_directive_orders_an_assessment_of_every_facility(
    client, db, manager, site, clock
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.sites.models import Facility as Fac

    booked = await create(client, manager)  # HQ already has one booked
    facilities = (await db.scalars(select(Fac).order_by(Fac.code))).all()
    due = clock.now() + timedelta(days=30)
    made = await service.schedule_for_directive(
        db, clock, "user:pat", facilities, "DIR-OVERHAUL", due
    )
    await db.commit()
    assert [a.facility_id for a in made] == [site.far]
    assert made[0].kind == "ad_hoc" and made[0].scheduled_for == due
    listed = (await client.get(API, headers=manager)).json()["items"]
    assert sorted((i["facility"], i["directive_ref"]) for i in listed) == [
        ("FAR", "DIR-OVERHAUL"),
        ("HQ", "DIR-OVERHAUL"),
    ]
    assert {i["id"] for i in listed} >= {booked["id"]}
    # a second run adds nothing
    assert (
        await service.schedule_for_directive(db, clock, "user:pat", facilities, "DIR-2", due) == []
    )


async def test_ids_out_of_range_and_nul_characters(client, db, manager, site) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL's ids are 32-bit and its text cannot hold NUL: both are refused cleanly."""
    a = await scored(client, manager)
    for method, url in (
        ("GET", f"{API}/2147483648"),
        ("PATCH", f"{API}/2147483648"),
        ("GET", f"{API}/findings/2147483648"),
        ("GET", f"{API}/evidence/2147483648"),
    ):
        resp = await client.request(method, url, json={}, headers=manager)
        assert resp.status_code == 422, (url, resp.text)
    assert (await client.get(f"{API}/2147483647", headers=manager)).status_code == 404
    count = await audit_count(db)
    for body in (
        {"assessor": "Sam\x00"},
        {"answers": {"perimeter.boundary": {"answer": "yes", "note": "a\x00b"}}},
        {"factors": {"symbolism\x00": 2}},
        {"justification": "\x00"},
    ):
        resp = await patch(client, manager, a["id"], **body)
        assert resp.status_code == 422 and "NUL" in resp.text, (body, resp.text)
    resp = await client.post(
        f"{API}/{a['id']}/findings",
        json={"area": "perimeter", "severity": "low", "description": "gate\x00"},
        headers=manager,
    )
    assert resp.status_code == 422
    resp = await client.put(
        f"{API}/standard", json={"yaml": 'name: "a\\0b"\nedition: x'}, headers=manager
    )
    assert resp.status_code == 422 and "NUL" in resp.json()["detail"]
    assert await audit_count(db) == count
