"""Staff records over the REST API: create, read, filter, change, delete; scope and validation."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.audit.service import verify

PROBLEM = "application/problem+json"


def person(employee_id: str = "E-100", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "employee_id": employee_id,
        "given_name": "Ana",
        "family_name": "Reyes",
        "job_title": "Security officer",
        "role": "guard",
        "email": "ana.reyes@example.org",
        "phone": "+1 214 555 0100",
        "contacts": [{"channel": "sms", "value": "+12145550100"}],
        "vetting_status": "cleared",
        "vetting_expires_on": "2027-03-01",
    }
    body.update(extra)
    return body


@pytest.fixture
async def admin(make_token, org):  # type: ignore[no-untyped-def]
    return await make_token("admin", org=True)


async def add(client, headers, facility: str, **kwargs):  # type: ignore[no-untyped-def]
    resp = await client.post(
        f"/api/v1/facilities/{facility}/people", json=person(**kwargs), headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_create_and_read_back(client, admin, db):
    created = await add(client, admin, "DAL-01")
    assert created["facility_code"] == "DAL-01"
    assert created["role"] == "guard"
    assert created["email"] == "ana.reyes@example.org"
    assert created["vetting_current"] is True
    assert created["contacts"] == [{"channel": "sms", "value": "+12145550100"}]

    resp = await client.get("/api/v1/people/E-100", headers=admin)
    assert resp.status_code == 200
    assert resp.json() == created

    rec = (
        await db.execute(select(AuditRecord).where(AuditRecord.action == "person.create"))
    ).scalar_one()
    assert rec.target_id == "E-100"
    assert rec.actor.startswith("token:")
    assert rec.facility_id is not None
    assert rec.details["family_name"] == "Reyes"


async def test_duplicate_employee_id_is_409_even_across_facilities(client, admin):
    await add(client, admin, "DAL-01")
    resp = await client.post("/api/v1/facilities/NYC-01/people", json=person(), headers=admin)
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert "E-100" in resp.json()["detail"]
    listing = await client.get("/api/v1/people", headers=admin)
    assert listing.json()["total"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"email": "not-an-email"},
        {"role": "superuser"},
        {"vetting_status": "maybe"},
        {"vetting_expires_on": "2027-02-30"},
        {"vetting_expires_on": "1900-01-01"},
        {"vetting_expires_on": 20270301.5},
        {"given_name": ""},
        {"given_name": "A\x00na"},
        {"given_name": 42},
        {"employee_id": "has spaces"},
        {"employee_id": "x" * 41},
        {"phone": "call me maybe"},
        {"contacts": [{"channel": "carrier-pigeon", "value": "x"}]},
        {"contacts": [{"channel": "sms"}]},
        {"active": "perhaps"},
        {"clearance_level": "top"},
    ],
)
async def test_bad_input_is_422_problem_and_changes_nothing(client, admin, change):
    resp = await client.post(
        "/api/v1/facilities/DAL-01/people", json=person(**change), headers=admin
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert (await client.get("/api/v1/people", headers=admin)).json()["total"] == 0


async def test_missing_required_fields_and_non_json(client, admin):
    resp = await client.post(
        "/api/v1/facilities/DAL-01/people", json={"employee_id": "E-1"}, headers=admin
    )
    assert resp.status_code == 422
    locs = {tuple(e["loc"]) for e in resp.json()["errors"]}
    assert ("body", "given_name") in locs and ("body", "family_name") in locs
    resp = await client.post(
        "/api/v1/facilities/DAL-01/people",
        content=b"{not json",
        headers={**admin, "content-type": "application/json"},
    )
    assert resp.status_code == 422


async def test_unknown_facility_is_404(client, admin):
    resp = await client.post("/api/v1/facilities/NOPE-9/people", json=person(), headers=admin)
    assert resp.status_code == 404
    resp = await client.get("/api/v1/facilities/NOPE-9/people", headers=admin)
    assert resp.status_code == 404


async def test_filters(client, admin, clock):
    today = clock.now().date()
    await add(
        client,
        admin,
        "DAL-01",
        employee_id="E-1",
        family_name="Adams",
        vetting_expires_on=str(today + timedelta(days=10)),
    )
    await add(
        client,
        admin,
        "DAL-01",
        employee_id="E-2",
        family_name="Baker",
        vetting_expires_on=str(today + timedelta(days=90)),
    )
    await add(
        client,
        admin,
        "DAL-01",
        employee_id="E-3",
        family_name="Chen",
        vetting_status="pending",
        vetting_expires_on=None,
        active=False,
    )
    await add(
        client,
        admin,
        "DAL-01",
        employee_id="E-4",
        family_name="Diaz",
        vetting_expires_on=str(today - timedelta(days=1)),
    )
    await add(client, admin, "HOU-01", employee_id="E-5", family_name="Evans")

    async def ids(url: str) -> list[str]:
        resp = await client.get(url, headers=admin)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["total"] == len(body["items"])
        return [p["employee_id"] for p in body["items"]]

    base = "/api/v1/facilities/DAL-01/people"
    assert await ids(base) == ["E-1", "E-2", "E-3", "E-4"]  # by family name
    assert await ids(base + "?expiring_within_days=30") == ["E-1"]
    assert await ids(base + "?expiring_within_days=0") == []
    assert await ids(base + "?expiring_within_days=365") == ["E-1", "E-2"]
    assert await ids(base + "?vetting_status=pending") == ["E-3"]
    assert await ids(base + "?active=false") == ["E-3"]
    assert await ids(base + "?active=true&vetting_status=cleared") == ["E-1", "E-2", "E-4"]
    assert await ids(base + "?q=chen") == ["E-3"]
    assert await ids(base + "?q=e-4") == ["E-4"]
    assert await ids(base + "?q=%25") == []  # a LIKE wildcard is matched literally
    assert await ids("/api/v1/people?facility=HOU-01") == ["E-5"]
    assert await ids("/api/v1/people?expiring_within_days=30") == ["E-1"]

    page = (await client.get(base + "?limit=2&offset=1", headers=admin)).json()
    assert page["total"] == 4
    assert [p["employee_id"] for p in page["items"]] == ["E-2", "E-3"]

    current = {
        p["employee_id"]: p["vetting_current"]
        for p in (await client.get(base, headers=admin)).json()["items"]
    }
    assert current == {"E-1": True, "E-2": True, "E-3": False, "E-4": False}
    clock.advance(days=11)
    current = {
        p["employee_id"]: p["vetting_current"]
        for p in (await client.get(base, headers=admin)).json()["items"]
    }
    assert current["E-1"] is False

    for bad in (
        "?expiring_within_days=-1",
        "?expiring_within_days=abc",
        "?vetting_status=nope",
        "?limit=0",
        "?limit=100000",
        "?offset=-3",
        "?active=maybe",
        "?q=%00",
    ):
        resp = await client.get(base + bad, headers=admin)
        assert resp.status_code == 422, bad
        assert resp.headers["content-type"].startswith(PROBLEM)


async def test_patch_changes_only_sent_fields_and_is_audited(client, admin, db):
    await add(client, admin, "DAL-01")
    resp = await client.patch(
        "/api/v1/people/E-100",
        json={"job_title": "Shift supervisor", "email": None, "vetting_expires_on": None},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["job_title"] == "Shift supervisor"
    assert body["email"] == ""
    assert body["vetting_expires_on"] is None
    assert body["given_name"] == "Ana"

    rec = (
        await db.execute(select(AuditRecord).where(AuditRecord.action == "person.update"))
    ).scalar_one()
    assert rec.details["changes"]["job_title"] == ["Security officer", "Shift supervisor"]
    assert set(rec.details["changes"]) == {"job_title", "email", "vetting_expires_on"}

    for bad in (
        {"given_name": None},
        {"role": "king"},
        {"employee_id": "E-200"},
        {"email": "@@"},
        {"facility_code": "NOPE\x00"},
    ):
        resp = await client.patch("/api/v1/people/E-100", json=bad, headers=admin)
        assert resp.status_code == 422, (bad, resp.text)
    # an unchanged PATCH writes no audit record
    assert (
        await client.patch("/api/v1/people/E-100", json={"given_name": "Ana"}, headers=admin)
    ).status_code == 200
    count = len(
        (await db.execute(select(AuditRecord).where(AuditRecord.action == "person.update"))).all()
    )
    assert count == 1


async def test_move_to_another_facility_needs_write_on_both(client, admin, make_token):
    await add(client, admin, "DAL-01")
    dal_manager = await make_token("facility_manager", facility="DAL-01")
    resp = await client.patch(
        "/api/v1/people/E-100", json={"facility_code": "HOU-01"}, headers=dal_manager
    )
    assert resp.status_code == 403
    south_manager = await make_token("facility_manager", region="SOUTH")
    resp = await client.patch(
        "/api/v1/people/E-100", json={"facility_code": "HOU-01"}, headers=south_manager
    )
    assert resp.status_code == 200
    assert resp.json()["facility_code"] == "HOU-01"
    # DAL's manager has lost sight of the person now
    assert (await client.get("/api/v1/people/E-100", headers=dal_manager)).status_code == 404


async def test_delete(client, admin, db):
    await add(client, admin, "DAL-01")
    resp = await client.delete("/api/v1/people/E-100", headers=admin)
    assert resp.status_code == 204
    assert (await client.get("/api/v1/people/E-100", headers=admin)).status_code == 404
    assert (await client.delete("/api/v1/people/E-100", headers=admin)).status_code == 404
    rec = (
        await db.execute(select(AuditRecord).where(AuditRecord.action == "person.delete"))
    ).scalar_one()
    assert rec.target_id == "E-100" and rec.details["given_name"] == "Ana"
    count, findings = await verify(db)
    assert count == 3 and findings == []  # token.create, person.create, person.delete


async def test_scope_is_enforced(client, admin, make_token):
    await add(client, admin, "DAL-01", employee_id="E-DAL")
    await add(client, admin, "HOU-01", employee_id="E-HOU")
    await add(client, admin, "NYC-01", employee_id="E-NYC")
    dal_manager = await make_token("facility_manager", facility="DAL-01")
    dal_guard = await make_token("guard", facility="DAL-01")
    south_operator = await make_token("operator", region="SOUTH")
    staff = await make_token("staff", org=True)

    # a facility manager sees and changes only their own facility
    resp = await client.get("/api/v1/people", headers=dal_manager)
    assert [p["employee_id"] for p in resp.json()["items"]] == ["E-DAL"]
    assert (
        await client.get("/api/v1/facilities/HOU-01/people", headers=dal_manager)
    ).status_code == 403
    assert (
        await client.get("/api/v1/people?facility=HOU-01", headers=dal_manager)
    ).status_code == 403
    assert (
        await client.post(
            "/api/v1/facilities/HOU-01/people", json=person("E-X"), headers=dal_manager
        )
    ).status_code == 403
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(
            method,
            "/api/v1/people/E-HOU",
            json={"job_title": "x"} if method == "PATCH" else None,
            headers=dal_manager,
        )
        assert resp.status_code == 404, method
    # and gets the same answer for an employee id that does not exist at all
    assert (await client.get("/api/v1/people/E-NONE", headers=dal_manager)).status_code == 404

    # a guard may read their facility's staff, not change them
    assert (await client.get("/api/v1/people/E-DAL", headers=dal_guard)).status_code == 200
    assert (
        await client.patch("/api/v1/people/E-DAL", json={"job_title": "x"}, headers=dal_guard)
    ).status_code == 403
    assert (await client.delete("/api/v1/people/E-DAL", headers=dal_guard)).status_code == 403
    assert (
        await client.post("/api/v1/facilities/DAL-01/people", json=person("E-Y"), headers=dal_guard)
    ).status_code == 403

    # a region-scoped operator sees the region's facilities
    resp = await client.get("/api/v1/people", headers=south_operator)
    assert sorted(p["employee_id"] for p in resp.json()["items"]) == ["E-DAL", "E-HOU"]
    assert (await client.get("/api/v1/people/E-NYC", headers=south_operator)).status_code == 404

    # staff hold no people permission at all
    assert (await client.get("/api/v1/people", headers=staff)).status_code == 403
    assert (await client.get("/api/v1/facilities/DAL-01/people", headers=staff)).status_code == 403

    # nobody logged in
    for method, url in (
        ("GET", "/api/v1/people"),
        ("GET", "/api/v1/people/E-DAL"),
        ("GET", "/api/v1/facilities/DAL-01/people"),
        ("DELETE", "/api/v1/people/E-DAL"),
    ):
        resp = await client.request(method, url)
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith(PROBLEM)
    assert (
        await client.get("/api/v1/people/E-DAL", headers={"Authorization": "Bearer wf_bogus"})
    ).status_code == 401
    # nothing was changed by any refused call
    resp = await client.get("/api/v1/people", headers=admin)
    assert resp.json()["total"] == 3


async def test_vetting_dates_are_plain_dates(client, admin):
    created = await add(client, admin, "DAL-01", vetting_expires_on=str(date(2030, 12, 31)))
    assert created["vetting_expires_on"] == "2030-12-31"
