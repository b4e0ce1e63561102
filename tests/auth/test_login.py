"""Log-in over the API: password, TOTP, recovery codes, lock-out, throttling, sessions, CSRF."""

from __future__ import annotations

import httpx
import pyotp
from auth_helpers import PASSWORD, code_at, login
from sqlalchemy import select, text

from watchfloor.audit.models import AuditRecord
from watchfloor.auth import service
from watchfloor.auth.deps import SESSION_COOKIE
from watchfloor.auth.models import User, UserSession

LOGIN = "/api/v1/auth/login"
MFA = "/api/v1/auth/mfa"
ME = "/api/v1/auth/me"


async def _password(client: httpx.AsyncClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return await client.post(LOGIN, json={"username": username, "password": password})


async def test_password_and_totp_login(client, admin, clock, db):  # type: ignore[no-untyped-def]
    user = await admin()
    r = await _password(client, "ROOT ")  # usernames are case- and space-insensitive
    assert r.status_code == 200
    body = r.json()
    assert body["mfa_required"] is True and body["enrolment_required"] is False
    cookie = r.headers["set-cookie"].lower()
    assert SESSION_COOKIE in cookie and "httponly" in cookie
    assert "samesite=strict" in cookie and "path=/" in cookie
    csrf = body["csrf_token"]

    # Password alone does not open anything that needs a principal.
    assert (await client.get("/api/v1/users")).status_code == 401
    r = await client.get(ME)
    assert r.status_code == 200 and r.json()["mfa_verified"] is False

    r = await client.post(
        MFA, json={"code": code_at(user.totp_secret, clock)}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    me = (await client.get(ME)).json()
    assert me["mfa_verified"] is True and me["username"] == "root"
    assert me["csrf_token"] == csrf
    assert me["grants"] == [
        {"id": me["grants"][0]["id"], "role": "admin", "scope": "org", "code": None}
    ]
    assert (await client.get("/api/v1/users")).status_code == 200

    row = await db.get(User, user.id)
    assert row.last_login_at == clock.now() and row.failed_logins == 0
    # The session cookie is stored only as its hash.
    secret = client.cookies[SESSION_COOKIE]
    sessions = (await db.execute(select(UserSession))).scalars().all()
    assert [s.token_hash for s in sessions] == [service.hash_secret(secret)]
    actions = [a for (a,) in (await db.execute(select(AuditRecord.action)))]
    assert "auth.password_ok" in actions and "auth.login" in actions


async def test_code_one_step_old_is_accepted(client, admin, clock):  # type: ignore[no-untyped-def]
    user = await admin()
    csrf = (await _password(client, "root")).json()["csrf_token"]
    r = await client.post(
        MFA, json={"code": code_at(user.totp_secret, clock, -1)}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200


async def test_wrong_password_and_unknown_user_look_the_same(client, admin, db):  # type: ignore[no-untyped-def]
    await admin()
    wrong = await _password(client, "root", "not the password at all")
    unknown = await _password(client, "nobody", "not the password at all")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"] == "Wrong username or password."
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    details = [d for (d,) in await db.execute(select(AuditRecord.details))]
    assert all("not the password" not in str(d) for d in details)
    failed = (
        (await db.execute(select(AuditRecord).where(AuditRecord.action == "auth.login_failed")))
        .scalars()
        .all()
    )
    assert len(failed) == 2 and failed[0].ip == "127.0.0.1"


async def test_wrong_code_refused(client, admin, clock):  # type: ignore[no-untyped-def]
    user = await admin()
    csrf = (await _password(client, "root")).json()["csrf_token"]
    good = code_at(user.totp_secret, clock)
    bad = "000000" if good != "000000" else "111111"
    r = await client.post(MFA, json={"code": bad}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    assert (await client.get("/api/v1/users")).status_code == 401
    # A code from far outside the window is refused too.
    r = await client.post(
        MFA, json={"code": code_at(user.totp_secret, clock, 5)}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 401


async def test_replayed_totp_code_refused(client, admin, clock, app):  # type: ignore[no-untyped-def]
    user = await admin()
    await login(client, user, clock)
    code = code_at(user.totp_secret, clock)
    clock.advance(seconds=10)  # still the same (or next) time step: the code is still "current"
    transport = httpx.ASGITransport(app=app, client=("127.0.0.2", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        csrf = (await _password(other, "root")).json()["csrf_token"]
        r = await other.post(MFA, json={"code": code}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 401
        assert "already been used" in r.json()["detail"]
        # The next step's code works.
        clock.advance(seconds=30)
        r = await other.post(
            MFA, json={"code": code_at(user.totp_secret, clock)}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 200


async def test_enrolment_at_first_login_and_recovery_code_works_once(client, make_user, clock, db):  # type: ignore[no-untyped-def]
    await make_user("newbie", [("admin", service.ScopeSpec.org())], totp=False)
    r = await _password(client, "newbie")
    assert r.json() == {
        "mfa_required": False,
        "enrolment_required": True,
        "csrf_token": r.json()["csrf_token"],
    }
    csrf = r.json()["csrf_token"]
    h = {"X-CSRF-Token": csrf}
    r = await client.post(MFA, json={"code": "123456"}, headers=h)
    assert r.status_code == 409
    assert (await client.get("/api/v1/users")).status_code == 401

    assert (await client.post("/api/v1/auth/totp/enrol")).status_code == 403  # no CSRF
    r = await client.post("/api/v1/auth/totp/enrol", headers=h)
    assert r.status_code == 200
    enrol = r.json()
    assert enrol["uri"].startswith("otpauth://totp/Watchfloor:newbie?")
    assert "issuer=Watchfloor" in enrol["uri"] and enrol["secret"] in enrol["uri"]
    assert enrol["qr_svg"].startswith("<svg")
    secret = enrol["secret"]
    user = (await db.execute(select(User).where(User.username == "newbie"))).scalar_one()
    assert user.totp_enabled is False  # pending until confirmed

    bad = "000000" if code_at(secret, clock) != "000000" else "111111"
    r = await client.post("/api/v1/auth/totp/confirm", json={"code": bad}, headers=h)
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/auth/totp/confirm", json={"code": code_at(secret, clock)}, headers=h
    )
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert (await client.get("/api/v1/users")).status_code == 200
    # Enrolled now: a second enrolment is refused.
    assert (await client.post("/api/v1/auth/totp/enrol", headers=h)).status_code == 409
    # Recovery codes are stored hashed.
    stored = [h for (h,) in await db.execute(text("SELECT code_hash FROM recovery_codes"))]
    assert len(stored) == 10 and not set(stored) & {c.replace("-", "") for c in codes}

    await client.post("/api/v1/auth/logout", headers=h)
    clock.advance(minutes=1)
    for attempt in range(2):
        csrf = (await _password(client, "newbie")).json()["csrf_token"]
        r = await client.post(MFA, json={"code": codes[3].upper()}, headers={"X-CSRF-Token": csrf})
        if attempt == 0:
            assert r.status_code == 200, r.text
            assert (await client.get("/api/v1/users")).status_code == 200
            await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        else:
            assert r.status_code == 401  # used once already
    actions = [a for (a,) in await db.execute(select(AuditRecord.action))]
    assert "auth.mfa_enrolled" in actions and "auth.login_recovery_code" in actions


async def test_lockout_after_failures_then_expiry_and_admin_unlock(
    client, admin, make_user, clock, app
):  # type: ignore[no-untyped-def]
    root = await admin()
    user = await make_user("alice", [("guard", service.ScopeSpec.facility("F1"))])
    for i in range(5):
        r = await _password(client, "alice", "wrong password number")
        assert r.status_code == (423 if i == 4 else 401)
    assert r.json()["type"].endswith("/account-locked")
    assert "administrator" in r.json()["detail"]
    # Even the right password is refused while locked.
    r = await _password(client, "alice")
    assert r.status_code == 423

    clock.advance(minutes=16)
    r = await _password(client, "alice")
    assert r.status_code == 200

    # Lock again, then an administrator unlocks at once.
    clock.advance(minutes=2)
    for _ in range(5):
        await _password(client, "alice", "wrong password number")
    assert (await _password(client, "alice")).status_code == 423
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as adm:
        csrf = await login(adm, root, clock)
        r = await adm.patch(
            f"/api/v1/users/{user.id}", json={"unlock": True}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 200 and r.json()["failed_logins"] == 0
    r = await _password(client, "alice")
    assert r.status_code == 200
    await client.post(
        MFA,
        json={"code": code_at(user.totp_secret, clock)},
        headers={"X-CSRF-Token": r.json()["csrf_token"]},
    )
    assert (await client.get(ME)).json()["mfa_verified"] is True


async def test_wrong_codes_count_toward_lockout(client, admin, clock, db):  # type: ignore[no-untyped-def]
    user = await admin()
    csrf = (await _password(client, "root")).json()["csrf_token"]
    good = code_at(user.totp_secret, clock)
    bad = "000000" if good != "000000" else "111111"
    statuses = [
        (await client.post(MFA, json={"code": bad}, headers={"X-CSRF-Token": csrf})).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 423]
    # The half-logged-in session is ended, and the account is locked.
    assert (await client.get(ME)).status_code == 401
    assert (await _password(client, "root")).status_code == 423
    row = await db.get(User, user.id)
    assert row.locked_until is not None


async def test_throttling_per_username_and_per_ip(client, admin, clock, app):  # type: ignore[no-untyped-def]
    await admin()
    for _ in range(10):
        assert (await _password(client, "ghost", "whatever it is")).status_code == 401
    r = await _password(client, "ghost", "whatever it is")
    assert r.status_code == 429
    assert r.json()["type"].endswith("/too-many-requests")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # The same IP is throttled for another username too.
    assert (await _password(client, "root")).status_code == 429
    # Another IP can still log in as root (per-username count for root is 0).
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        assert (await _password(other, "root")).status_code == 200
        # Per username: ten tries for 'ghost' from anywhere are the limit.
        assert (await _password(other, "ghost", "whatever it is")).status_code == 429
    clock.advance(seconds=61)
    assert (await _password(client, "root")).status_code == 200


async def test_session_expires_with_the_clock(client, admin, clock, settings):  # type: ignore[no-untyped-def]
    user = await admin()
    await login(client, user, clock)
    assert (await client.get("/api/v1/users")).status_code == 200
    clock.advance(hours=settings.session_hours - 0.1)
    assert (await client.get("/api/v1/users")).status_code == 200
    clock.advance(hours=0.2)
    assert (await client.get("/api/v1/users")).status_code == 401
    assert (await client.get(ME)).status_code == 401


async def test_logout_revokes_the_session(client, admin, clock, db):  # type: ignore[no-untyped-def]
    user = await admin()
    csrf = await login(client, user, clock)
    cookie = client.cookies[SESSION_COOKIE]
    assert (await client.post("/api/v1/auth/logout")).status_code == 403  # CSRF needed
    r = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert SESSION_COOKIE not in client.cookies
    # Replaying the old cookie gets nothing.
    client.cookies.set(SESSION_COOKIE, cookie)
    assert (await client.get("/api/v1/users")).status_code == 401
    assert (await client.get(ME)).status_code == 401
    client.cookies.clear()
    actions = [a for (a,) in await db.execute(select(AuditRecord.action))]
    assert "auth.logout" in actions
    # Logging out without a session is harmless.
    assert (await client.post("/api/v1/auth/logout")).status_code == 204


async def test_csrf_required_for_cookie_sessions(client, admin, clock, sites):  # type: ignore[no-untyped-def]
    user = await admin()
    csrf = await login(client, user, clock)
    body = {
        "username": "bob",
        "password": "a long enough password",
        "grants": [{"role": "guard", "scope": "facility", "code": "F1"}],
    }
    r = await client.post("/api/v1/users", json=body)
    assert r.status_code == 403
    r = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    # Safe methods need no CSRF token.
    assert (await client.get("/api/v1/users")).status_code == 200


async def test_disabled_account_cannot_log_in(client, admin, make_user, clock, db):  # type: ignore[no-untyped-def]
    await admin()
    user = await make_user("carol", [("guard", service.ScopeSpec.facility("F1"))])
    row = await db.get(User, user.id)
    row.is_active = False
    await db.commit()
    r = await _password(client, "carol")
    assert r.status_code == 403 and "disabled" in r.json()["detail"]


async def test_bad_login_input(client):  # type: ignore[no-untyped-def]
    for body in (
        {"username": "root"},
        {"username": "root", "password": "x", "extra": 1},
        {"username": 12, "password": ["x"]},
        {"username": "x" * 500, "password": "y"},
        {"username": "", "password": "y"},
    ):
        r = await client.post(LOGIN, json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"].startswith("application/problem+json")
    # Control characters never reach the database as they are (PostgreSQL refuses NUL).
    r = await client.post(LOGIN, json={"username": "ro\x00ot", "password": "whatever"})
    assert r.status_code == 401
    r = await client.post(LOGIN, content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    # MFA and enrolment without a session.
    assert (await client.post(MFA, json={"code": "123456"})).status_code == 401
    assert (await client.post("/api/v1/auth/totp/confirm", json={"code": "1"})).status_code == 401
    assert (await client.get(ME)).status_code == 401
    assert (await client.get(ME, headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_password_rehashed_when_parameters_change(client, admin, db):  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    user = await admin()
    row = await db.get(User, user.id)
    row.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    old = row.password_hash
    await db.commit()
    assert (await _password(client, "root")).status_code == 200
    await db.refresh(row)
    assert row.password_hash != old and pyotp  # rehashed with the current parameters
