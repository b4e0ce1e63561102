"""REST API of the facility registry: CRUD, scope, validation, conflicts, audit."""

from __future__ import annotations

from sqlalchemy import select

from watchfloor.audit.models import AuditRecord

PROBLEM = "application/problem+json"


async def _audit(db, action):  # type: ignore[no-untyped-def]
    rows = await db.execute(select(AuditRecord).where(AuditRecord.action == action))
    return rows.scalars().all()


async def test_unauthenticated_is_refused(client, org):
    for path in ("/api/v1/facilities", "/api/v1/facilities/ALPHA", "/api/v1/regions"):
        resp = await client.get(path)
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith(PROBLEM)


async def test_organisation_and_regions(client, org, make_token):
    admin = await make_token("admin", org=True)
    resp = await client.get("/api/v1/organisation", headers=admin)
    assert resp.json()["code"] == "TEST"
    resp = await client.patch("/api/v1/organisation", json={"name": "Renamed"}, headers=admin)
    assert resp.status_code == 200 and resp.json()["name"] == "Renamed"

    regions = (await client.get("/api/v1/regions", headers=admin)).json()
    assert {r["code"]: r["facility_count"] for r in regions} == {"R1": 2, "R2": 1}
    resp = await client.post("/api/v1/regions", json={"code": "R3", "name": "Three"}, headers=admin)
    assert resp.status_code == 201
    resp = await client.post("/api/v1/regions", json={"code": "R3", "name": "Again"}, headers=admin)
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith(PROBLEM)
    resp = await client.patch("/api/v1/regions/R3", json={"name": "Region 3"}, headers=admin)
    assert resp.json()["name"] == "Region 3"
    # a region that still has facilities cannot be deleted; an empty one can
    assert (await client.delete("/api/v1/regions/R1", headers=admin)).status_code == 409
    assert (await client.delete("/api/v1/regions/R3", headers=admin)).status_code == 204
    assert (await client.get("/api/v1/regions/R3", headers=admin)).status_code == 404


async def test_region_writes_need_org_scope(client, org, make_token):
    regional = await make_token("facility_manager", region="R1")
    resp = await client.post("/api/v1/regions", json={"code": "R9", "name": "X"}, headers=regional)
    assert resp.status_code == 403
    assert (await client.delete("/api/v1/regions/R2", headers=regional)).status_code == 403
    resp = await client.patch("/api/v1/regions/R2", json={"name": "Mine"}, headers=regional)
    assert resp.status_code == 403
    resp = await client.patch("/api/v1/regions/R1", json={"name": "Mine"}, headers=regional)
    assert resp.status_code == 200


async def test_facility_crud_and_audit(client, org, make_token, db):
    admin = await make_token("admin", org=True)
    body = {
        "code": "DELTA",
        "name": "Delta Holding",
        "region": "R2",
        "kind": "holding",
        "latitude": 39.7,
        "longitude": -105.0,
        "timezone": "America/Denver",
        "population": 40,
        "operating_hours": {d: ["00:00", "24:00"] for d in ("mon", "tue", "sun")},
    }
    resp = await client.post("/api/v1/facilities", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["region"] == "R2" and created["operating_hours"]["mon"] == ["00:00", "24:00"]
    assert created["operating_hours"]["wed"] is None

    resp = await client.patch(
        "/api/v1/facilities/DELTA", json={"name": "Delta Holding Site", "population": 55},
        headers=admin,
    )  # fmt: skip
    assert resp.status_code == 200
    assert resp.json()["name"] == "Delta Holding Site"
    assert (await client.get("/api/v1/facilities/DELTA", headers=admin)).json()["population"] == 55

    [rec] = await _audit(db, "facility.update")
    assert rec.details == {"name": ["Delta Holding", "Delta Holding Site"], "population": [40, 55]}
    assert rec.target_id == "DELTA"
    assert len(await _audit(db, "facility.create")) == 1

    # moving it to another region
    resp = await client.patch("/api/v1/facilities/DELTA", json={"region": "R1"}, headers=admin)
    assert resp.json()["region"] == "R1"
    resp = await client.patch("/api/v1/facilities/DELTA", json={"region": "NOPE"}, headers=admin)
    assert resp.status_code == 404

    assert (await client.delete("/api/v1/facilities/DELTA", headers=admin)).status_code == 204
    assert (await client.get("/api/v1/facilities/DELTA", headers=admin)).status_code == 404
    assert len(await _audit(db, "facility.delete")) == 1


async def test_facility_delete_removes_children(client, org, make_token):
    admin = await make_token("admin", org=True)
    assert (await client.delete("/api/v1/facilities/ALPHA", headers=admin)).status_code == 204
    page = (await client.get("/api/v1/facilities", headers=admin)).json()
    assert [f["code"] for f in page["items"]] == ["BRAVO", "CHARLIE"]
    assert (await client.get("/api/v1/facilities/ALPHA/devices", headers=admin)).status_code == 404


async def test_list_search_filters_and_pages(client, org, make_token):
    admin = await make_token("operator", org=True)

    async def codes(**params):  # type: ignore[no-untyped-def]
        resp = await client.get("/api/v1/facilities", params=params, headers=admin)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return [f["code"] for f in body["items"]], body["total"]

    assert await codes() == (["ALPHA", "BRAVO", "CHARLIE"], 3)
    assert await codes(q="court") == (["BRAVO"], 1)
    assert await codes(q="denver") == (["CHARLIE"], 1)  # city
    assert await codes(q="100%") == ([], 0)  # LIKE wildcards are literal
    assert await codes(region="R1") == (["ALPHA", "BRAVO"], 2)
    assert await codes(kind="detention") == (["CHARLIE"], 1)
    assert await codes(state="co") == (["CHARLIE"], 1)
    assert await codes(limit=2) == (["ALPHA", "BRAVO"], 3)
    assert await codes(limit=2, offset=2) == (["CHARLIE"], 3)


async def test_facility_scope(client, org, make_token):
    alpha = await make_token("facility_manager", facility="ALPHA")
    page = (await client.get("/api/v1/facilities", headers=alpha)).json()
    assert [f["code"] for f in page["items"]] == ["ALPHA"] and page["total"] == 1
    assert [r["code"] for r in (await client.get("/api/v1/regions", headers=alpha)).json()] == [
        "R1"
    ]
    assert (await client.get("/api/v1/regions/R2", headers=alpha)).status_code == 403
    for path in (
        "/api/v1/facilities/BRAVO",
        "/api/v1/facilities/BRAVO/zones",
        "/api/v1/facilities/BRAVO/zones/LOBBY",
        "/api/v1/facilities/BRAVO/devices",
        "/api/v1/facilities/BRAVO/devices/DOOR-1",
        "/api/v1/facilities/BRAVO/response-units",
    ):
        resp = await client.get(path, headers=alpha)
        assert resp.status_code in (403, 404), path
        assert resp.headers["content-type"].startswith(PROBLEM)
    resp = await client.patch("/api/v1/facilities/BRAVO", json={"name": "x"}, headers=alpha)
    assert resp.status_code == 403
    resp = await client.post(
        "/api/v1/facilities/BRAVO/zones", json={"code": "Z", "name": "Z"}, headers=alpha
    )
    assert resp.status_code == 403
    # its own facility: may edit, may not delete (that needs the region) nor create facilities
    resp = await client.patch("/api/v1/facilities/ALPHA", json={"population": 5}, headers=alpha)
    assert resp.status_code == 200
    assert (await client.delete("/api/v1/facilities/ALPHA", headers=alpha)).status_code == 403
    resp = await client.post(
        "/api/v1/facilities", json={"code": "NEW", "name": "New", "region": "R1"}, headers=alpha
    )
    assert resp.status_code == 403


async def test_region_scope_and_read_only_roles(client, org, make_token):
    r2 = await make_token("facility_manager", region="R2")
    page = (await client.get("/api/v1/facilities", headers=r2)).json()
    assert [f["code"] for f in page["items"]] == ["CHARLIE"]
    resp = await client.post(
        "/api/v1/facilities", json={"code": "ECHO", "name": "Echo", "region": "R2"}, headers=r2
    )
    assert resp.status_code == 201
    resp = await client.post(
        "/api/v1/facilities", json={"code": "FOX", "name": "Fox", "region": "R1"}, headers=r2
    )
    assert resp.status_code == 403

    guard = await make_token("guard", facility="ALPHA")
    assert (await client.get("/api/v1/facilities/ALPHA/devices", headers=guard)).status_code == 200
    resp = await client.patch("/api/v1/facilities/ALPHA", json={"name": "x"}, headers=guard)
    assert resp.status_code == 403
    staff = await make_token("staff", facility="ALPHA")
    assert (await client.get("/api/v1/facilities", headers=staff)).status_code == 403


async def test_zones_devices_units_crud(client, org, make_token, db):
    mgr = await make_token("facility_manager", facility="ALPHA")
    base = "/api/v1/facilities/ALPHA"
    zones = (await client.get(f"{base}/zones", headers=mgr)).json()
    assert [z["code"] for z in zones] == ["LOBBY", "SECURE"]
    resp = await client.post(
        f"{base}/zones", json={"code": "PERIM", "name": "Perimeter", "kind": "perimeter"},
        headers=mgr,
    )  # fmt: skip
    assert resp.status_code == 201
    resp = await client.patch(f"{base}/zones/PERIM", json={"floor": "G"}, headers=mgr)
    assert resp.json()["floor"] == "G"

    devices = (await client.get(f"{base}/devices", headers=mgr)).json()
    assert [d["code"] for d in devices] == ["CAM-1", "DOOR-1", "PANIC-1"]
    by_kind = (await client.get(f"{base}/devices", params={"kind": "door"}, headers=mgr)).json()
    assert [d["code"] for d in by_kind] == ["DOOR-1"]
    by_status = await client.get(f"{base}/devices", params={"status": "online"}, headers=mgr)
    assert [d["code"] for d in by_status.json()] == ["DOOR-1"]
    in_lobby = (await client.get(f"{base}/devices", params={"zone": "LOBBY"}, headers=mgr)).json()
    assert [d["code"] for d in in_lobby] == ["CAM-1", "DOOR-1"]

    resp = await client.post(
        f"{base}/devices",
        json={"code": "RDR-1", "name": "Reader", "kind": "reader", "zone": "PERIM",
              "protocol": "osdp", "address": "osdp://controller-1/2", "supervision_seconds": 300},
        headers=mgr,
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    assert resp.json()["zone"] == "PERIM"
    resp = await client.patch(f"{base}/devices/RDR-1", json={"zone": "LOBBY"}, headers=mgr)
    assert resp.json()["zone"] == "LOBBY"
    resp = await client.patch(f"{base}/devices/RDR-1", json={"zone": None}, headers=mgr)
    assert resp.json()["zone"] is None
    resp = await client.patch(f"{base}/devices/RDR-1", json={"zone": "NOWHERE"}, headers=mgr)
    assert resp.status_code == 422
    [rec] = [r for r in await _audit(db, "device.update") if "zone" in r.details][:1]
    assert rec.details["zone"] == ["PERIM", "LOBBY"]

    # deleting a zone keeps its devices, without a zone
    assert (await client.delete(f"{base}/zones/LOBBY", headers=mgr)).status_code == 204
    assert (await client.get(f"{base}/devices/DOOR-1", headers=mgr)).json()["zone"] is None
    assert (await client.delete(f"{base}/devices/DOOR-1", headers=mgr)).status_code == 204
    assert (await client.get(f"{base}/devices/DOOR-1", headers=mgr)).status_code == 404

    resp = await client.post(
        f"{base}/response-units",
        json={"code": "EMS", "name": "County EMS", "kind": "ems",
              "contacts": [{"channel": "phone", "value": "+1 214 555 0199"}]},
        headers=mgr,
    )  # fmt: skip
    assert resp.status_code == 201
    resp = await client.patch(
        f"{base}/response-units/EMS", json={"notes": "Station 4"}, headers=mgr
    )
    assert resp.json()["notes"] == "Station 4"
    units = (await client.get(f"{base}/response-units", headers=mgr)).json()
    assert [u["code"] for u in units] == ["EMS", "POLICE"]
    assert (await client.delete(f"{base}/response-units/EMS", headers=mgr)).status_code == 204
    assert len(await _audit(db, "response_unit.delete")) == 1


async def test_duplicate_codes_conflict(client, org, make_token):
    admin = await make_token("admin", org=True)
    resp = await client.post(
        "/api/v1/facilities", json={"code": "ALPHA", "name": "Again", "region": "R1"},
        headers=admin,
    )  # fmt: skip
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith(PROBLEM)
    base = "/api/v1/facilities/ALPHA"
    resp = await client.post(f"{base}/zones", json={"code": "LOBBY", "name": "L"}, headers=admin)
    assert resp.status_code == 409
    resp = await client.post(
        f"{base}/devices", json={"code": "DOOR-1", "name": "D", "kind": "door"}, headers=admin
    )
    assert resp.status_code == 409
    resp = await client.post(
        f"{base}/response-units", json={"code": "POLICE", "name": "P", "kind": "police"},
        headers=admin,
    )  # fmt: skip
    assert resp.status_code == 409
    # the same zone code in another facility is fine
    resp = await client.post(
        "/api/v1/facilities/CHARLIE/zones", json={"code": "LOBBY", "name": "L"}, headers=admin
    )
    assert resp.status_code == 201


async def test_validation_errors_name_the_field(client, org, make_token):
    admin = await make_token("admin", org=True)
    good = {"code": "ZULU", "name": "Zulu", "region": "R1"}
    cases = [
        ({"latitude": 91}, "latitude"),
        ({"longitude": -181}, "longitude"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"population": -1}, "population"),
        ({"floor_area_sqft": 10**12}, "floor_area_sqft"),
        ({"kind": "castle"}, "kind"),
        ({"code": "bad code!"}, "code"),
        ({"code": "x" * 41}, "code"),
        ({"population": "many"}, "population"),
        ({"operating_hours": {"mon": ["25:00", "18:00"]}}, "operating_hours"),
        ({"operating_hours": {"someday": ["08:00", "18:00"]}}, "operating_hours"),
        ({"colour": "blue"}, "colour"),
        ({"name": "nul\x00byte"}, "name"),
    ]
    for change, field in cases:
        resp = await client.post("/api/v1/facilities", json={**good, **change}, headers=admin)
        assert resp.status_code == 422, (change, resp.text)
        assert resp.headers["content-type"].startswith(PROBLEM)
        body = resp.json()
        assert any(field in e["loc"] for e in body["errors"]), (change, body)

    resp = await client.patch("/api/v1/facilities/ALPHA", json={"name": None}, headers=admin)
    assert resp.status_code == 422
    resp = await client.post(
        "/api/v1/facilities/ALPHA/devices", json={"code": "X", "name": "X", "kind": "toaster"},
        headers=admin,
    )  # fmt: skip
    assert resp.status_code == 422
    resp = await client.post(
        "/api/v1/facilities/ALPHA/response-units",
        json={"code": "X", "name": "X", "kind": "police",
              "contacts": [{"channel": "pigeon", "value": "x"}]},
        headers=admin,
    )  # fmt: skip
    assert resp.status_code == 422
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"kind": "castle"}):
        resp = await client.get("/api/v1/facilities", params=params, headers=admin)
        assert resp.status_code == 422, params
    assert (await client.get("/api/v1/facilities/bad code!", headers=admin)).status_code == 422
