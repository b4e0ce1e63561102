"""Account administration over the API: scope, privilege escalation, MFA reset, disable."""

from __future__ import annotations

import pytest
from auth_helpers import PASSWORD, code_at, login
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.auth.service import ScopeSpec

USERS = "/api/v1/users"


def _grant(role: str, scope: str, code: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"role": role, "scope": scope}
    if code is not None:
        body["code"] = code
    return body


def _new(username: str, *grants: dict[str, object]) -> dict[str, object]:
    return {"username": username, "password": "a long enough password", "grants": list(grants)}


async def test_org_admin_manages_accounts(client, make_token, make_user, clock, db, sites):  # type: ignore[no-untyped-def]
    h = await make_token("admin", org=True)
    r = await client.post(
        USERS,
        json={
            **_new("Dana", _grant("facility_manager", "facility", "F1")),
            "display_name": "Dana Scully",
            "email": "dana@example.org",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    dana = r.json()
    assert dana["username"] == "dana" and dana["mfa_enrolled"] is False
    assert dana["grants"][0]["role"] == "facility_manager"
    assert dana["grants"][0]["code"] == "F1"
    assert "password" not in r.text and "a long enough password" not in r.text

    assert (await client.post(USERS, json=_new("dana"), headers=h)).status_code == 409
    # An organisation-wide administrator may create an account with no role yet.
    r = await client.post(USERS, json=_new("norole"), headers=h)
    assert r.status_code == 201 and r.json()["grants"] == []

    r = await client.post(
        f"{USERS}/{dana['id']}/grants", json=_grant("operator", "region", "EAST"), headers=h
    )
    assert r.status_code == 201
    grants = {(g["role"], g["scope"], g["code"]) for g in r.json()["grants"]}
    assert grants == {("facility_manager", "facility", "F1"), ("operator", "region", "EAST")}
    op_grant = next(g for g in r.json()["grants"] if g["role"] == "operator")

    r = await client.delete(f"{USERS}/{dana['id']}/grants/{op_grant['id']}", headers=h)
    assert r.status_code == 204
    r = await client.get(f"{USERS}/{dana['id']}", headers=h)
    assert [g["role"] for g in r.json()["grants"]] == ["facility_manager"]
    assert (
        await client.delete(f"{USERS}/{dana['id']}/grants/{op_grant['id']}", headers=h)
    ).status_code == 404

    r = await client.patch(f"{USERS}/{dana['id']}", json={"display_name": "D. Scully"}, headers=h)
    assert r.status_code == 200 and r.json()["display_name"] == "D. Scully"

    listed = (await client.get(USERS, headers=h)).json()
    assert [u["username"] for u in listed["items"]] == ["dana", "norole"]

    actions = [a for (a,) in await db.execute(select(AuditRecord.action))]
    for action in ("user.create", "user.grant", "user.revoke_grant", "user.update"):
        assert action in actions
    assert all(
        "a long enough password" not in str(d)
        for (d,) in await db.execute(select(AuditRecord.details))
    )


async def test_facility_admin_cannot_escalate(client, make_token, make_user, sites):  # type: ignore[no-untyped-def]
    """An administrator for facility F1 manages F1 only and never grants beyond it."""
    h = await make_token("admin", facility="F1")
    boss = await make_user("boss", [("admin", ScopeSpec.org())])
    f2 = await make_user("f2guard", [("guard", ScopeSpec.facility("F2"))])
    mixed = await make_user(
        "mixed", [("guard", ScopeSpec.facility("F1")), ("guard", ScopeSpec.facility("F3"))]
    )
    local = await make_user("local", [("guard", ScopeSpec.facility("F1"))])

    # Creating accounts: only with roles at F1.
    for grant in (
        _grant("admin", "org"),
        _grant("guard", "facility", "F2"),
        _grant("operator", "region", "EAST"),
    ):
        r = await client.post(USERS, json=_new("sneaky", grant), headers=h)
        assert r.status_code == 403, grant
        assert r.json()["type"].endswith("/forbidden")
    assert (await client.post(USERS, json=_new("sneaky"), headers=h)).status_code == 422
    r = await client.post(
        USERS, json=_new("newguard", _grant("guard", "facility", "F1")), headers=h
    )
    assert r.status_code == 201

    # Granting to an account in scope: only within F1.
    url = f"{USERS}/{local.id}/grants"
    assert (await client.post(url, json=_grant("admin", "org"), headers=h)).status_code == 403
    assert (
        await client.post(url, json=_grant("admin", "region", "EAST"), headers=h)
    ).status_code == 403
    assert (
        await client.post(url, json=_grant("admin", "facility", "F2"), headers=h)
    ).status_code == 403
    r = await client.post(url, json=_grant("facility_manager", "facility", "F1"), headers=h)
    assert r.status_code == 201

    # Seeing: accounts with a role at F1 only.
    names = {u["username"] for u in (await client.get(USERS, headers=h)).json()["items"]}
    assert names == {"mixed", "local", "newguard"}
    assert (await client.get(f"{USERS}/{f2.id}", headers=h)).status_code == 404
    assert (await client.get(f"{USERS}/{boss.id}", headers=h)).status_code == 404
    assert (
        await client.post(
            f"{USERS}/{f2.id}/grants", json=_grant("guard", "facility", "F1"), headers=h
        )
    ).status_code == 404

    # Changing an account that also holds roles elsewhere is refused.
    r = await client.patch(f"{USERS}/{mixed.id}", json={"is_active": False}, headers=h)
    assert r.status_code == 403
    assert (await client.post(f"{USERS}/{mixed.id}/reset-mfa", headers=h)).status_code == 403
    f3_grant = next(
        g
        for g in (await client.get(f"{USERS}/{mixed.id}", headers=h)).json()["grants"]
        if g["code"] == "F3"
    )
    r = await client.delete(f"{USERS}/{mixed.id}/grants/{f3_grant['id']}", headers=h)
    assert r.status_code == 403
    # ... but a wholly local account can be changed.
    r = await client.patch(f"{USERS}/{local.id}", json={"is_active": False}, headers=h)
    assert r.status_code == 200 and r.json()["is_active"] is False


async def test_region_admin_scope(client, make_token, sites):  # type: ignore[no-untyped-def]
    h = await make_token("admin", region="EAST")
    ok = await client.post(USERS, json=_new("east1", _grant("guard", "facility", "F2")), headers=h)
    assert ok.status_code == 201
    assert (
        await client.post(
            USERS, json=_new("east2", _grant("operator", "region", "EAST")), headers=h
        )
    ).status_code == 201
    assert (
        await client.post(USERS, json=_new("west1", _grant("guard", "facility", "F3")), headers=h)
    ).status_code == 403
    assert (
        await client.post(
            USERS, json=_new("west2", _grant("operator", "region", "WEST")), headers=h
        )
    ).status_code == 403


async def test_users_endpoints_need_users_manage(client, make_token, make_user, sites):  # type: ignore[no-untyped-def]
    target = await make_user("target", [("guard", ScopeSpec.facility("F1"))])
    calls = [
        ("GET", USERS, None),
        ("POST", USERS, _new("x", _grant("guard", "facility", "F1"))),
        ("GET", f"{USERS}/{target.id}", None),
        ("PATCH", f"{USERS}/{target.id}", {"unlock": True}),
        ("POST", f"{USERS}/{target.id}/grants", _grant("guard", "facility", "F1")),
        ("DELETE", f"{USERS}/{target.id}/grants/1", None),
        ("POST", f"{USERS}/{target.id}/reset-mfa", None),
    ]
    fm = await make_token("facility_manager", facility="F1")
    for method, url, body in calls:
        r = await client.request(method, url, json=body)
        assert r.status_code == 401, (method, url)
        r = await client.request(method, url, json=body, headers=fm)
        assert r.status_code == 403, (method, url)


async def test_bad_input_is_422(client, make_token, make_user, sites):  # type: ignore[no-untyped-def]
    h = await make_token("admin", org=True)
    user = await make_user("target", [("guard", ScopeSpec.facility("F1"))])
    bad_creates = [
        {"username": "x", "password": "short", "grants": []},
        {"username": "has space", "password": "a long enough password"},
        {**_new("y"), "is_admin": True},
        {**_new("y"), "email": "not-an-email"},
        _new("y", {"role": "emperor", "scope": "org"}),
        _new("y", {"role": "guard", "scope": "galaxy", "code": "F1"}),
        _new("y", _grant("guard", "org", "F1")),
        _new("y", _grant("guard", "facility")),
        {"username": ["y"], "password": 5},
        {**_new("y"), "display_name": "nul\x00byte"},
        _new("y", _grant("guard", "facility", "F\x001")),
    ]
    for body in bad_creates:
        r = await client.post(USERS, json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
    r = await client.post(USERS, json=_new("y", _grant("guard", "facility", "NOPE")), headers=h)
    assert r.status_code == 404
    for body in ({"is_active": "sometimes"}, {"username": "z"}, {"display_name": "x" * 500}):
        r = await client.patch(f"{USERS}/{user.id}", json=body, headers=h)
        assert r.status_code == 422, body
    for url in (f"{USERS}/0", f"{USERS}/abc", f"{USERS}/99999999999999999999"):
        assert (await client.get(url, headers=h)).status_code == 422
    assert (await client.get(f"{USERS}/424242", headers=h)).status_code == 404


async def test_reset_mfa_and_disable_end_sessions(client, admin, make_user, make_token, clock):  # type: ignore[no-untyped-def]
    await admin()
    h = await make_token("admin", org=True)
    user = await make_user("erin", [("admin", ScopeSpec.facility("F1"))])
    await login(client, user, clock)
    assert (await client.get(USERS)).status_code == 200

    r = await client.post(f"{USERS}/{user.id}/reset-mfa", headers=h)
    assert r.status_code == 200 and r.json()["mfa_enrolled"] is False
    assert (await client.get(USERS)).status_code == 401  # her session has ended
    r = await client.post("/api/v1/auth/login", json={"username": "erin", "password": PASSWORD})
    assert r.json()["enrolment_required"] is True
    # The old authenticator no longer logs her in.
    r = await client.post(
        "/api/v1/auth/mfa",
        json={"code": code_at(user.totp_secret, clock)},
        headers={"X-CSRF-Token": r.json()["csrf_token"]},
    )
    assert r.status_code == 409

    r = await client.patch(f"{USERS}/{user.id}", json={"is_active": False}, headers=h)
    assert r.status_code == 200
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    r = await client.post("/api/v1/auth/login", json={"username": "erin", "password": PASSWORD})
    assert r.status_code == 403


@pytest.mark.parametrize("how", ["disable", "remove_grant"])
async def test_last_org_admin_is_kept(client, admin, clock, how):  # type: ignore[no-untyped-def]
    root = await admin()
    csrf = await login(client, root, clock)
    h = {"X-CSRF-Token": csrf}
    if how == "disable":
        r = await client.patch(f"{USERS}/{root.id}", json={"is_active": False}, headers=h)
    else:
        me = (await client.get(f"{USERS}/{root.id}")).json()
        r = await client.delete(f"{USERS}/{root.id}/grants/{me['grants'][0]['id']}", headers=h)
    assert r.status_code == 409
    assert "last" in r.json()["detail"]
