"""The API: who may read and change what (a facility manager sees only their facility's people;
staff and guards have no training access; catalogue and requirements need an organisation-wide
grant), bad input as problem documents that name the field, audit records, CSV exports that a
spreadsheet cannot run."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord

PROBLEM = "application/problem+json"


async def test_anonymous_and_roles_without_training_are_refused(
    client: httpx.AsyncClient, make_token, estate
) -> None:
    anon = await client.get("/api/v1/training/overdue")
    assert anon.status_code == 401 and anon.headers["content-type"].startswith(PROBLEM)
    for role in ("staff", "guard", "operator"):
        headers = await make_token(role, org=True, name=f"t-{role}")
        r = await client.get("/api/v1/training/overdue", headers=headers)
        assert r.status_code == 403, (role, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)


async def test_facility_manager_sees_only_their_facilitys_people(
    client: httpx.AsyncClient, make_token, estate, record
) -> None:
    from datetime import date

    await record("B-STAFF", "ASR", date(2024, 1, 1))
    mgr = await make_token("facility_manager", facility="NYC-FO")
    overdue = (await client.get("/api/v1/training/overdue", headers=mgr)).json()
    assert {i["facility_code"] for i in overdue["items"]} == {"NYC-FO"}
    assert overdue["total"] == 12
    other = await client.get("/api/v1/training/people/B-STAFF", headers=mgr)
    assert other.status_code == 404 and other.headers["content-type"].startswith(PROBLEM)
    recs = (await client.get("/api/v1/training/completions", headers=mgr)).json()
    assert recs["total"] == 0  # Boston's record is not theirs
    ov = (await client.get("/api/v1/training/overview", headers=mgr)).json()
    assert [f["facility_code"] for f in ov["facilities"]] == ["NYC-FO"]
    csv_text = (await client.get("/api/v1/training/overdue.csv", headers=mgr)).text
    assert "B-STAFF" not in csv_text and "N-STAFF" in csv_text
    # entering for another facility's person: 404 like an unknown person
    r = await client.post(
        "/api/v1/training/completions",
        json={"employee_id": "B-STAFF", "course_code": "ASR", "completed_on": "2025-05-05"},
        headers=mgr,
    )
    assert r.status_code == 404


async def test_record_and_delete_a_completion_with_audit(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    mgr = await make_token("facility_manager", facility="NYC-FO")
    body = {"employee_id": "N-GUARD", "course_code": "firstaid", "completed_on": "2025-05-05"}
    r = await client.post("/api/v1/training/completions", json=body, headers=mgr)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert (rec["course_code"], rec["expires_on"], rec["source"]) == (
        "FIRSTAID", "2027-05-05", "entered"
    )  # fmt: skip
    dup = await client.post("/api/v1/training/completions", json=body, headers=mgr)
    assert dup.status_code == 409
    gone = await client.delete(f"/api/v1/training/completions/{rec['id']}", headers=mgr)
    assert gone.status_code == 204
    again = await client.delete(f"/api/v1/training/completions/{rec['id']}", headers=mgr)
    assert again.status_code == 404
    actions = (
        (
            await db.execute(
                select(AuditRecord.action)
                .where(AuditRecord.action.like("training.%"))
                .order_by(AuditRecord.id)
            )
        )
        .scalars()
        .all()
    )
    assert actions == ["training.completion.add", "training.completion.delete"]


async def test_bad_completions_name_the_field_and_write_nothing(
    client: httpx.AsyncClient, make_token, estate
) -> None:
    pm = await make_token("programme_manager", org=True)
    cases = [
        ({"completed_on": "2026-02-01"}, "completed_on", "in the future"),
        ({"completed_on": "1901-01-01"}, "completed_on", "before 1970"),
        ({"completed_on": "2025-02-30"}, "completed_on", ""),
        ({"course_code": "NOPE"}, "course_code", "unknown course"),
        ({"course_code": "<script>"}, "course_code", ""),
    ]
    base = {"employee_id": "N-GUARD", "course_code": "ASR", "completed_on": "2025-05-05"}
    for change, field, why in cases:
        r = await client.post("/api/v1/training/completions", json={**base, **change}, headers=pm)
        assert r.status_code == 422, (change, r.text)
        problem = r.json()
        assert any(field in e["loc"] for e in problem["errors"]), problem
        assert why in problem["detail"] or any(why in e["msg"] for e in problem["errors"])
    recs = (await client.get("/api/v1/training/completions", headers=pm)).json()
    assert recs["total"] == 0


async def test_courses_and_requirements_need_an_organisation_wide_grant(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    pm = await make_token("programme_manager", org=True)
    mgr = await make_token("facility_manager", facility="NYC-FO")
    courses = (await client.get("/api/v1/training/courses", headers=mgr)).json()
    assert [c["code"] for c in courses][:5] == ["ASR", "DEESC", "SITAWARE", "EMERG", "FIRSTAID"]
    assert (
        await client.patch("/api/v1/training/courses/ASR", json={"refresh_months": 6}, headers=mgr)
    ).status_code == 403
    r = await client.patch("/api/v1/training/courses/ASR", json={"refresh_months": 6}, headers=pm)
    assert r.status_code == 200 and r.json()["refresh_months"] == 6
    bad = await client.patch("/api/v1/training/courses/ASR", json={"refresh_months": 0}, headers=pm)
    assert bad.status_code == 422 and "refresh_months" in bad.json()["errors"][0]["loc"]
    new = await client.post(
        "/api/v1/training/courses",
        json={"code": "RADIO", "name": "Radio procedure", "refresh_months": 36},
        headers=pm,
    )
    assert new.status_code == 201
    assert (
        await client.post(
            "/api/v1/training/courses",
            json={"code": "RADIO", "name": "Radio", "refresh_months": 36},
            headers=pm,
        )
    ).status_code == 409
    req = await client.post(
        "/api/v1/training/requirements", json={"role": "staff", "course_code": "RADIO"}, headers=pm
    )
    assert req.status_code == 201
    staff = (await client.get("/api/v1/training/people/N-STAFF", headers=pm)).json()
    assert [c["course_code"] for c in staff["courses"]] == ["ASR", "RADIO"]
    wrong = await client.post(
        "/api/v1/training/requirements", json={"role": "wizard", "course_code": "ASR"}, headers=pm
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == ["role"]
    assert (
        await client.delete("/api/v1/training/requirements/staff/RADIO", headers=mgr)
    ).status_code == 403
    assert (
        await client.delete("/api/v1/training/requirements/staff/RADIO", headers=pm)
    ).status_code == 204
    audited = (
        (
            await db.execute(
                select(AuditRecord.action)
                .where(AuditRecord.action.like("training.%"))
                .order_by(AuditRecord.id)
            )
        )
        .scalars()
        .all()
    )
    assert audited == [
        "training.course.update",
        "training.course.create",
        "training.requirement.add",
        "training.requirement.remove",
    ]


async def test_csv_exports_of_every_table_are_spreadsheet_safe(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    pm = await make_token("programme_manager", org=True)
    await client.post(
        "/api/v1/training/completions",
        json={"employee_id": "N-GUARD", "course_code": "ASR", "completed_on": "2025-05-05",
              "note": "=HYPERLINK(\"http://x\")"},
        headers=pm,
    )  # fmt: skip
    await client.post("/api/v1/training/reminders", json={"facility_code": "NYC-FO"}, headers=pm)
    for name, first_col in (
        ("completions.csv", "record_id"),
        ("overdue.csv", "employee_id"),
        ("courses.csv", "code"),
        ("requirements.csv", "role"),
        ("imports.csv", "id"),
        ("reminders.csv", "facility_code"),
    ):
        r = await client.get(f"/api/v1/training/{name}", headers=pm)
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0][0] == first_col, name
    recs = list(csv.DictReader(io.StringIO(
        (await client.get("/api/v1/training/completions.csv", headers=pm)).text
    )))  # fmt: skip
    assert recs[0]["note"].startswith("'=")
