"""GET /api/v1/audit and /api/v1/audit/verify: scope, filters, paging; reading is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from watchfloor.audit import service as audit
from watchfloor.audit.models import AuditRecord
from watchfloor.sites.models import Facility, Organisation, Region

PROBLEM = "application/problem+json"


@pytest.fixture
async def seeded(db, clock):  # type: ignore[no-untyped-def]
    """Two regions, three facilities, and a few records about each (plus one about none)."""
    now = clock.now()
    org = Organisation(code="AG", name="Agency", created_at=now, updated_at=now)
    south = Region(code="SOUTH", name="South", organisation=org, created_at=now, updated_at=now)
    north = Region(code="NORTH", name="North", organisation=org, created_at=now, updated_at=now)
    fac = {
        code: Facility(code=code, name=code, region=region, created_at=now, updated_at=now)
        for code, region in (("DAL-01", south), ("HOU-01", south), ("NYC-01", north))
    }
    db.add_all([org, *fac.values()])
    await db.flush()
    for code in ("DAL-01", "HOU-01", "NYC-01"):
        clock.advance(minutes=1)
        await audit.record(
            db,
            clock,
            "user:alice",
            "device.update",
            facility_id=fac[code].id,
            target_type="device",
            target_id=f"{code}-D1",
            details={"status": "online"},
        )
        clock.advance(minutes=1)
        await audit.record(
            db,
            clock,
            "user:bob",
            "person.create",
            facility_id=fac[code].id,
            target_type="person",
            target_id=f"{code}-P1",
        )
    clock.advance(minutes=1)
    await audit.record(db, clock, "user:root", "user.create", target_type="user", target_id="7")
    await db.commit()
    return fac


async def items(client, url, headers):  # type: ignore[no-untyped-def]
    resp = await client.get(url, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_org_reader_sees_everything_newest_first(client, make_token, seeded):
    headers = await make_token("programme_manager", org=True)
    body = await items(client, "/api/v1/audit", headers)
    actions = [r["action"] for r in body["items"]]
    # 7 seeded records plus the token's own creation, newest first
    assert body["total"] == 8
    assert actions[0] == "token.create"
    assert actions[1] == "user.create"
    ids = [r["id"] for r in body["items"]]
    assert ids == sorted(ids, reverse=True)
    dal = next(r for r in body["items"] if r["target_id"] == "DAL-01-D1")
    assert dal["facility_code"] == "DAL-01"
    assert dal["details"] == {"status": "online"}
    assert dal["actor"] == "user:alice"
    assert len(dal["hash"]) == 64 and len(dal["prev_hash"]) == 64


async def test_reading_is_itself_audited(client, make_token, seeded, db):
    headers = await make_token("admin", org=True, name="auditor")
    await items(client, "/api/v1/audit?action=person.create", headers)
    rec = (
        await db.execute(select(AuditRecord).where(AuditRecord.action == "audit.read"))
    ).scalar_one()
    assert rec.actor == "token:auditor"
    assert rec.details["filters"]["action"] == "person.create"
    assert rec.details["returned"] == 3
    # the next read shows the previous read
    body = await items(client, "/api/v1/audit?action=audit.read", headers)
    assert body["total"] == 1
    count, findings = await audit.verify(db)
    assert findings == [] and count == 10


async def test_scoped_readers_see_only_their_facilities(client, make_token, seeded):
    dal_admin = await make_token("admin", facility="DAL-01")
    body = await items(client, "/api/v1/audit", dal_admin)
    assert {r["facility_code"] for r in body["items"]} == {"DAL-01"}
    # DAL's token creation was recorded against DAL, so it shows too
    assert {r["action"] for r in body["items"]} == {
        "device.update",
        "person.create",
        "token.create",
    }

    south_pm = await make_token("programme_manager", region="SOUTH")
    body = await items(client, "/api/v1/audit", south_pm)
    assert {r["facility_code"] for r in body["items"]} == {"DAL-01", "HOU-01"}
    assert all(r["action"] != "user.create" for r in body["items"])  # org-level, not theirs

    # asking for a facility outside the scope is refused, not silently emptied
    resp = await client.get("/api/v1/audit?facility=NYC-01", headers=south_pm)
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith(PROBLEM)


async def test_callers_without_audit_read_are_refused(client, make_token, seeded):
    for role in ("facility_manager", "guard", "operator", "staff"):
        headers = await make_token(role, org=True)
        resp = await client.get("/api/v1/audit", headers=headers)
        assert resp.status_code == 403, role
        resp = await client.get("/api/v1/audit/verify", headers=headers)
        assert resp.status_code == 403, role
    for url in ("/api/v1/audit", "/api/v1/audit/verify"):
        resp = await client.get(url)
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith(PROBLEM)


async def test_filters_and_paging(client, make_token, seeded, clock):
    headers = await make_token("admin", org=True)
    body = await items(client, "/api/v1/audit?action=device.update", headers)
    assert body["total"] == 3
    body = await items(client, "/api/v1/audit?action=person.", headers)
    assert {r["action"] for r in body["items"]} == {"person.create"}
    body = await items(client, "/api/v1/audit?action=person", headers)
    assert body["total"] == 0  # exact unless it ends in "."
    body = await items(client, "/api/v1/audit?actor=user:bob&facility=HOU-01", headers)
    assert [r["target_id"] for r in body["items"]] == ["HOU-01-P1"]

    # the seeded records are at 12:01 ... 12:07 on 2026-01-05 (UTC)
    body = await items(
        client, "/api/v1/audit?since=2026-01-05T12:02:00Z&until=2026-01-05T12:04:00Z", headers
    )
    assert [r["target_id"] for r in body["items"]] == ["HOU-01-D1", "DAL-01-P1"]
    # an offset is honoured: 07:02-05:00 is 12:02 UTC
    body = await items(
        client, "/api/v1/audit?since=2026-01-05T07:02:00-05:00&until=2026-01-05T12:04:00", headers
    )
    assert [r["target_id"] for r in body["items"]] == ["HOU-01-D1", "DAL-01-P1"]

    # each read adds a record: paging by before_id is stable while the log grows
    first = await items(client, "/api/v1/audit?limit=3", headers)
    last = first["items"][-1]["id"]
    second = await items(client, f"/api/v1/audit?limit=3&before_id={last}", headers)
    assert [r["id"] for r in second["items"]] == [last - 1, last - 2, last - 3]
    offset = await items(client, "/api/v1/audit?limit=2&offset=1&action=device.update", headers)
    assert [r["target_id"] for r in offset["items"]] == ["HOU-01-D1", "DAL-01-D1"]

    for bad in (
        "?since=yesterday",
        "?limit=0",
        "?limit=5000",
        "?offset=-1",
        "?actor=%00",
        "?since=0001-01-01T00:00:00%2B05:00",
        "?facility=" + "x" * 41,
    ):
        resp = await client.get("/api/v1/audit" + bad, headers=headers)
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.headers["content-type"].startswith(PROBLEM)
    resp = await client.get("/api/v1/audit?facility=NOPE", headers=headers)
    assert resp.status_code == 404


async def test_verify_endpoint(client, make_token, seeded, db):
    headers = await make_token("admin", org=True)
    resp = await client.get("/api/v1/audit/verify", headers=headers)
    assert resp.status_code == 200
    assert resp.json() == {"records": 8, "intact": True, "findings": []}

    # scoped readers may not verify the whole organisation's log
    dal_admin = await make_token("admin", facility="DAL-01")
    assert (await client.get("/api/v1/audit/verify", headers=dal_admin)).status_code == 403

    await db.execute(text("UPDATE audit_log SET actor = 'user:mallory' WHERE id = 3"))
    await db.commit()
    body = (await client.get("/api/v1/audit/verify", headers=headers)).json()
    assert body["intact"] is False
    assert [f["record_id"] for f in body["findings"]] == [3]
    assert "altered" in body["findings"][0]["problem"]
