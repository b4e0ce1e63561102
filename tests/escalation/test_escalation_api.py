"""Escalation policy API and the system-health API."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.clock import FakeClock
from watchfloor.incidents import escalation
from watchfloor.incidents.models import EscalationPolicy

PROBLEM = "application/problem+json"
P1_BODY = {
    "name": "P1 fast",
    "steps": [
        {"after_seconds": 0, "target": "watch_floor"},
        {"after_seconds": 15, "target": "supervisor"},
    ],
    "repeat": 3,
}


async def test_list_shows_builtin_defaults_then_stored_ones(
    client: httpx.AsyncClient, make_token, facilities, sessionmaker, clock
) -> None:
    operator = await make_token("operator", org=True)
    r = await client.get("/api/v1/escalation-policies", headers=operator)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(p["priority"], p["source"]) for p in body] == [
        (1, "built-in"),
        (2, "built-in"),
        (3, "built-in"),
        (4, "built-in"),
    ]
    assert [s["after_seconds"] for s in body[0]["steps"]] == [0, 30, 60]
    assert body[0]["repeat"] == 2 and body[0]["cycle_seconds"] == 90
    async with sessionmaker() as db:
        await escalation.ensure_default_policies(db, clock)
        await db.commit()
    r = await client.get("/api/v1/escalation-policies", headers=operator)
    assert {p["source"] for p in r.json()} == {"organisation"}


async def test_admin_edits_the_organisation_default_and_it_is_audited(
    client: httpx.AsyncClient, make_token, facilities, sessionmaker
) -> None:
    admin = await make_token("admin", org=True)
    r = await client.put("/api/v1/escalation-policies/1", json=P1_BODY, headers=admin)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["source"] == "organisation" and out["facility_code"] is None
    assert out["repeat"] == 3 and out["cycle_seconds"] == 30
    r = await client.put(
        "/api/v1/escalation-policies/1", json={**P1_BODY, "repeat": 0}, headers=admin
    )
    assert r.status_code == 200
    async with sessionmaker() as db:
        rows = (await db.execute(select(EscalationPolicy))).scalars().all()
        assert len(rows) == 1 and rows[0].repeat == 0
        audits = (
            (
                await db.execute(
                    select(AuditRecord).where(AuditRecord.action == "escalation_policy.set")
                )
            )
            .scalars()
            .all()
        )
        assert len(audits) == 2
        assert audits[1].details["before"]["repeat"] == 3
        assert audits[1].actor.startswith("token:")


@pytest.mark.parametrize(
    ("role", "scope"),
    [
        ("facility_manager", {"facility": "ESC-1"}),
        ("admin", {"region": "R1"}),
        ("operator", {"org": True}),
    ],
)
async def test_org_default_needs_org_wide_escalation_rights(
    client: httpx.AsyncClient, make_token, facilities, role, scope
) -> None:
    headers = await make_token(role, **scope)
    r = await client.put("/api/v1/escalation-policies/1", json=P1_BODY, headers=headers)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_facility_manager_overrides_their_own_facility_only(
    client: httpx.AsyncClient, make_token, facilities
) -> None:
    fm = await make_token("facility_manager", facility="ESC-1")
    url = "/api/v1/facilities/ESC-1/escalation-policies/2"
    r = await client.put(url, json=P1_BODY, headers=fm)
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "facility" and r.json()["facility_code"] == "ESC-1"

    r = await client.put("/api/v1/facilities/ESC-2/escalation-policies/2", json=P1_BODY, headers=fm)
    assert r.status_code == 403
    r = await client.put("/api/v1/facilities/NOPE/escalation-policies/2", json=P1_BODY, headers=fm)
    assert r.status_code == 404

    # in force at ESC-1: the override for P2, the organisation's (built-in) for the rest
    r = await client.get("/api/v1/escalation-policies", params={"facility": "ESC-1"}, headers=fm)
    assert r.status_code == 200
    assert [p["source"] for p in r.json()] == ["built-in", "facility", "built-in", "built-in"]
    r = await client.get("/api/v1/escalation-policies", params={"facility": "ESC-2"}, headers=fm)
    assert r.status_code == 403

    # another facility's manager does not see ESC-1's override in the list
    other = await make_token("facility_manager", facility="ESC-3")
    r = await client.get("/api/v1/escalation-policies", headers=other)
    assert r.status_code == 200
    assert all(p["facility_code"] is None for p in r.json())
    r = await client.get("/api/v1/escalation-policies", headers=fm)
    assert [p["facility_code"] for p in r.json()][-1] == "ESC-1"

    r = await client.delete(url, headers=other)
    assert r.status_code == 403
    r = await client.delete(url, headers=fm)
    assert r.status_code == 204
    r = await client.delete(url, headers=fm)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "body",
    [
        {"steps": []},
        {
            "steps": [
                {"after_seconds": 30, "target": "supervisor"},
                {"after_seconds": 0, "target": "watch_floor"},
            ]
        },
        {"steps": [{"after_seconds": i, "target": "watch_floor"} for i in range(11)]},
        {"steps": [{"after_seconds": 86_401, "target": "watch_floor"}]},
        {"steps": [{"after_seconds": -1, "target": "watch_floor"}]},
        {"steps": [{"after_seconds": 0, "target": "the_moon"}]},
        {"steps": [{"after_seconds": "soon", "target": "watch_floor"}]},
        {"steps": [{"after_seconds": 0, "target": "watch_floor", "extra": 1}]},
        {"steps": [{"after_seconds": 0, "target": "watch_floor"}], "repeat": 11},
        {"steps": [{"after_seconds": 0, "target": "watch_floor"}], "colour": "red"},
        {"steps": [{"after_seconds": 0, "target": "watch_floor"}], "name": "a\x00b"},
        {},
    ],
)
async def test_invalid_policies_are_refused(
    client: httpx.AsyncClient, make_token, facilities, body, sessionmaker
) -> None:
    admin = await make_token("admin", org=True)
    r = await client.put("/api/v1/escalation-policies/1", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    async with sessionmaker() as db:
        assert (await db.execute(select(EscalationPolicy))).first() is None


@pytest.mark.parametrize("priority", ["0", "5", "p1", "-1"])
async def test_unknown_priority_is_422(
    client: httpx.AsyncClient, make_token, facilities, priority
) -> None:
    admin = await make_token("admin", org=True)
    r = await client.put(f"/api/v1/escalation-policies/{priority}", json=P1_BODY, headers=admin)
    assert r.status_code == 422


async def test_policies_need_a_login(client: httpx.AsyncClient, make_token, facilities) -> None:
    assert (await client.get("/api/v1/escalation-policies")).status_code == 401
    staff = await make_token("staff", facility="ESC-1")
    assert (await client.get("/api/v1/escalation-policies", headers=staff)).status_code == 403


async def test_system_health_api(
    client: httpx.AsyncClient, make_token, facilities, sessionmaker, clock: FakeClock
) -> None:
    operator = await make_token("operator", org=True)
    r = await client.get("/api/v1/system/health", headers=operator)
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["problems"] == []

    async with sessionmaker() as db:
        await escalation.record_beat(db, "escalation", clock.now())
        await db.commit()
    clock.advance(seconds=42)
    guard = await make_token("guard", facility="ESC-1")
    r = await client.get("/api/v1/system/health", headers=guard)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded"
    assert [(p["code"], p["component"]) for p in body["problems"]] == [
        ("loop_stalled", "escalation")
    ]
    assert "42 s" in body["problems"][0]["message"]
    assert body["problems"][0]["since"].startswith(
        (clock.now() - timedelta(seconds=42)).date().isoformat()
    )

    assert (await client.get("/api/v1/system/health")).status_code == 401
    staff = await make_token("staff", facility="ESC-1")
    r = await client.get("/api/v1/system/health", headers=staff)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_region_scoped_list_shows_only_its_facilities_overrides(
    client: httpx.AsyncClient, make_token, facilities
) -> None:
    admin = await make_token("admin", org=True)
    for code in ("ESC-1", "ESC-3"):
        r = await client.put(
            f"/api/v1/facilities/{code}/escalation-policies/3", json=P1_BODY, headers=admin
        )
        assert r.status_code == 200
    r = await client.get("/api/v1/escalation-policies", headers=admin)
    assert [p["facility_code"] for p in r.json() if p["facility_code"]] == ["ESC-1", "ESC-3"]
    east = await make_token("operator", region="R1")
    r = await client.get("/api/v1/escalation-policies", headers=east)
    assert r.status_code == 200
    assert [p["facility_code"] for p in r.json() if p["facility_code"]] == ["ESC-1"]
    assert len(r.json()) == 5
