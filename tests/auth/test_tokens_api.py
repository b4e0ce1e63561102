"""API tokens: created once, hashed at rest, scoped, revocable at once, last use recorded."""

from __future__ import annotations

from sqlalchemy import select, text

from watchfloor.audit.models import AuditRecord
from watchfloor.auth.models import ApiToken

TOKENS = "/api/v1/tokens"


def _token(name: str, role: str, scope: str, code: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"name": name, "role": role, "scope": scope}
    if code is not None:
        body["code"] = code
    return body


async def test_create_use_and_revoke(client, make_token, clock, db, sites):  # type: ignore[no-untyped-def]
    h = await make_token("admin", org=True)
    r = await client.post(TOKENS, json=_token("door-feed-F1", "guard", "facility", "F1"), headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["token"]
    assert secret.startswith("wf_") and created["prefix"] == secret[:10]
    assert created["grants"][0]["code"] == "F1" and created["last_used_at"] is None
    bearer = {"Authorization": f"Bearer {secret}"}

    # Stored hashed: the secret appears in no column of any token row, nor in the audit log.
    for row in (await db.execute(text("SELECT * FROM api_tokens"))).all():
        assert all(secret not in str(v) for v in row)
    for (details,) in await db.execute(select(AuditRecord.details)):
        assert secret not in str(details)

    me = await client.get("/api/v1/auth/me", headers=bearer)
    assert me.status_code == 200 and me.json()["kind"] == "token"
    assert me.json()["grants"][0]["role"] == "guard"
    row = (await db.execute(select(ApiToken).where(ApiToken.id == created["id"]))).scalar_one()
    assert row.last_used_at == clock.now()

    # Last use is kept to the minute: advance and use again.
    clock.advance(minutes=5)
    await client.get("/api/v1/auth/me", headers=bearer)
    listed = (await client.get(TOKENS, headers=h)).json()
    mine = next(t for t in listed["items"] if t["id"] == created["id"])
    assert mine["last_used_at"].startswith(clock.now().strftime("%Y-%m-%dT%H:%M"))
    assert "token" not in mine

    assert (await client.delete(f"{TOKENS}/{created['id']}", headers=h)).status_code == 204
    r = await client.get("/api/v1/auth/me", headers=bearer)
    assert r.status_code == 401
    listed = (await client.get(TOKENS, headers=h)).json()
    assert next(t for t in listed["items"] if t["id"] == created["id"])["revoked_at"]
    # Revoking again is harmless.
    assert (await client.delete(f"{TOKENS}/{created['id']}", headers=h)).status_code == 204
    actions = [a for (a,) in await db.execute(select(AuditRecord.action))]
    assert actions.count("token.revoke") == 1 and "token.create" in actions


async def test_revoked_token_stops_at_once_on_protected_routes(client, make_token, sites):  # type: ignore[no-untyped-def]
    admin = await make_token("admin", org=True)
    r = await client.post(TOKENS, json=_token("ops", "admin", "org"), headers=admin)
    other = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await client.get("/api/v1/users", headers=other)).status_code == 200
    await client.delete(f"{TOKENS}/{r.json()['id']}", headers=admin)
    r = await client.get("/api/v1/users", headers=other)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


async def test_facility_manager_mints_only_within_scope(client, make_token, sites):  # type: ignore[no-untyped-def]
    fm = await make_token("facility_manager", facility="F1")
    ok = await client.post(TOKENS, json=_token("reader", "guard", "facility", "F1"), headers=fm)
    assert ok.status_code == 201
    same_role = _token("deputy", "facility_manager", "facility", "F1")
    assert (await client.post(TOKENS, json=same_role, headers=fm)).status_code == 201
    for body in (
        _token("x", "guard", "facility", "F2"),  # another facility
        _token("x", "guard", "region", "EAST"),  # wider scope
        _token("x", "guard", "org"),
        _token("x", "admin", "facility", "F1"),  # a role with more than they hold
        _token("x", "programme_manager", "facility", "F1"),
    ):
        r = await client.post(TOKENS, json=body, headers=fm)
        assert r.status_code == 403, body

    admin = await make_token("admin", org=True)
    elsewhere = await client.post(
        TOKENS, json=_token("f2", "guard", "facility", "F2"), headers=admin
    )
    listed = (await client.get(TOKENS, headers=fm)).json()
    names = {t["name"] for t in listed["items"]}
    assert "f2" not in names and {"reader", "deputy", "test-facility_manager"} <= names
    assert (
        await client.delete(f"{TOKENS}/{elsewhere.json()['id']}", headers=fm)
    ).status_code == 404
    assert (await client.delete(f"{TOKENS}/{ok.json()['id']}", headers=fm)).status_code == 204


async def test_tokens_need_tokens_manage(client, make_token, sites):  # type: ignore[no-untyped-def]
    guard = await make_token("guard", facility="F1")
    for method, url, body in (
        ("GET", TOKENS, None),
        ("POST", TOKENS, _token("x", "guard", "facility", "F1")),
        ("DELETE", f"{TOKENS}/1", None),
    ):
        assert (await client.request(method, url, json=body)).status_code == 401
        assert (await client.request(method, url, json=body, headers=guard)).status_code == 403


async def test_token_bad_input(client, make_token, sites):  # type: ignore[no-untyped-def]
    h = await make_token("admin", org=True)
    for body in (
        {"name": "", "role": "guard", "scope": "org"},
        {"name": "x", "role": "guard", "scope": "org", "secret": "mine"},
        {"name": "x", "role": "root", "scope": "org"},
        {"name": "x", "role": "guard", "scope": "facility"},
        {"name": "x", "role": "guard", "scope": "org", "code": "F1"},
        {"name": "x" * 200, "role": "guard", "scope": "org"},
        {"name": 5, "role": ["guard"], "scope": None},
        {"name": "nul\x00", "role": "guard", "scope": "org"},
    ):
        r = await client.post(TOKENS, json=body, headers=h)
        assert r.status_code == 422, body
    assert (await client.delete(f"{TOKENS}/99999999999", headers=h)).status_code == 422
    assert (await client.delete(f"{TOKENS}/4242", headers=h)).status_code == 404
    for auth in ("Basic abc", "Bearer", "Bearer wf_unknown"):
        r = await client.get(TOKENS, headers={"Authorization": auth})
        assert r.status_code == 401
