"""REST API of the auth domain (thin: parse, authorise, call the service, return).

Log-in: POST /auth/login sets the session cookie; then POST /auth/mfa with a code, or (no
authenticator yet) POST /auth/totp/enrol and /auth/totp/confirm. These steps work on the cookie
session before it is MFA-verified; every unsafe one needs the session's X-CSRF-Token header.
Account administration (/users) needs users:manage, API tokens (/tokens) tokens:manage; both are
limited to the caller's scope and nobody can grant more than they hold.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth import service
from watchfloor.auth.deps import (
    CSRF_HEADER,
    SESSION_COOKIE,
    CurrentPrincipal,
    principal_from_token,
    session_from_cookie,
)
from watchfloor.auth.models import ApiToken, RoleGrant, User, UserSession
from watchfloor.auth.roles import Perm, ScopeKind
from watchfloor.auth.schemas import (
    CodeIn,
    EnrolOut,
    GrantIn,
    GrantOut,
    LoginIn,
    LoginOut,
    MeOut,
    MfaOut,
    RecoveryCodesOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    UserCreate,
    UserList,
    UserOut,
    UserPatch,
)
from watchfloor.auth.tokens import same
from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.deps import DB, ClockDep, SettingsDep, client_ip
from watchfloor.problems import Forbidden, Unauthorized

router = APIRouter(tags=["auth"])

Id = Annotated[int, Path(ge=1, le=2_147_483_647)]


# --------------------------------------------------------------------------- helpers


def _spec(scope: ScopeKind, code: str | None) -> service.ScopeSpec:
    return service.ScopeSpec(scope, code if scope is not ScopeKind.ORG else None)


def _set_session_cookie(response: Response, settings: Settings, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )


def _clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=settings.cookie_secure
    )


async def _cookie_session(
    request: Request, db: AsyncSession, clock: Clock, *, csrf: bool
) -> tuple[UserSession, User]:
    """The caller's live session, verified or not yet; unsafe requests must carry its CSRF."""
    cookie = request.cookies.get(SESSION_COOKIE)
    found = await session_from_cookie(db, clock, cookie) if cookie else None
    if found is None:
        raise Unauthorized("Log in first: your session is missing, has expired or has ended.")
    if csrf:
        _check_csrf(request, found[0])
    return found


def _check_csrf(request: Request, sess: UserSession) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not same(sent, sess.csrf_token):
        raise Forbidden(f"Send the session's CSRF token in the {CSRF_HEADER} header.")


async def _grant_outs(db: AsyncSession, grants: list[RoleGrant]) -> dict[int, GrantOut]:
    return {
        g.id: GrantOut(id=g.id, role=g.role, scope=g.scope, code=g.code)
        for g in await service.describe_grants(db, grants)
    }


def _user_out(user: User, grants: dict[int, GrantOut]) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        is_active=user.is_active,
        mfa_enrolled=user.totp_enabled,
        failed_logins=user.failed_logins,
        locked_until=user.locked_until,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
        grants=[grants[g.id] for g in sorted(user.grants, key=lambda g: g.id)],
    )


async def _one_user_out(db: AsyncSession, user: User) -> UserOut:
    await db.refresh(user, ["grants"])
    return _user_out(user, await _grant_outs(db, list(user.grants)))


def _token_out(token: ApiToken, grants: dict[int, GrantOut]) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_by=token.created_by,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
        grants=[grants[g.id] for g in sorted(token.grants, key=lambda g: g.id)],
    )


# --------------------------------------------------------------------------- log-in and MFA


@router.post("/auth/login", response_model=LoginOut)
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
) -> LoginOut:
    """Check username and password; sets the session cookie. MFA (or enrolment) comes next."""
    sess, secret = await service.password_login(
        db,
        clock,
        settings,
        username=body.username,
        password=body.password,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    user = await service.get_user(db, sess.user_id)
    enrolled = user.totp_enabled
    csrf = sess.csrf_token
    await db.commit()
    _set_session_cookie(response, settings, secret)
    return LoginOut(mfa_required=enrolled, enrolment_required=not enrolled, csrf_token=csrf)


@router.post("/auth/mfa", response_model=MfaOut)
async def mfa(
    body: CodeIn, request: Request, db: DB, clock: ClockDep, settings: SettingsDep
) -> MfaOut:
    """Complete log-in with the current TOTP code or an unused recovery code."""
    sess, _user = await _cookie_session(request, db, clock, csrf=True)
    await service.verify_mfa(db, clock, sess, body.code, settings=settings)
    await db.commit()
    return MfaOut(mfa_verified=True)


@router.post("/auth/totp/enrol", response_model=EnrolOut)
async def totp_enrol(request: Request, db: DB, clock: ClockDep) -> EnrolOut:
    """Start setting up an authenticator app: a new secret, its otpauth:// URI and QR code."""
    _sess, user = await _cookie_session(request, db, clock, csrf=True)
    secret, uri = await service.begin_totp_enrolment(db, clock, user)
    await db.commit()
    return EnrolOut(secret=secret, uri=uri, qr_svg=service.totp_qr_svg(uri))


@router.post("/auth/totp/confirm", response_model=RecoveryCodesOut)
async def totp_confirm(body: CodeIn, request: Request, db: DB, clock: ClockDep) -> RecoveryCodesOut:
    """Finish setting up the app with a code from it; returns one-time recovery codes, once."""
    sess, _user = await _cookie_session(request, db, clock, csrf=True)
    codes = await service.confirm_totp_enrolment(db, clock, sess, body.code)
    await db.commit()
    return RecoveryCodesOut(recovery_codes=codes)


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, db: DB, clock: ClockDep, settings: SettingsDep) -> Response:
    """End the session (the cookie stops working at once). Without a live session: no-op."""
    cookie = request.cookies.get(SESSION_COOKIE)
    found = await session_from_cookie(db, clock, cookie) if cookie else None
    if found is not None:
        _check_csrf(request, found[0])
        await service.logout(db, clock, found[0])
        await db.commit()
    out = Response(status_code=204)
    _clear_session_cookie(out, settings)
    return out


@router.get("/auth/me", response_model=MeOut)
async def me(request: Request, db: DB, clock: ClockDep) -> MeOut:
    """Who is calling: a session (verified or still in log-in) or an API token."""
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, secret = auth.partition(" ")
        principal = (
            await principal_from_token(db, clock, secret.strip(), client_ip(request))
            if scheme.lower() == "bearer" and secret.strip()
            else None
        )
        if principal is None:
            raise Unauthorized("This API token is unknown or has been revoked.")
        token = await service.get_token(db, principal.id)
        grants = await _grant_outs(db, list(token.grants))
        return MeOut(
            kind="token",
            id=token.id,
            username=token.name,
            display_name=token.name,
            mfa_verified=False,
            enrolment_required=False,
            grants=list(grants.values()),
            csrf_token=None,
        )
    sess, user = await _cookie_session(request, db, clock, csrf=False)
    grants = await _grant_outs(db, list(user.grants))
    return MeOut(
        kind="user",
        id=user.id,
        username=user.username,
        display_name=user.display_name or user.username,
        mfa_verified=sess.mfa_verified,
        enrolment_required=not user.totp_enabled,
        grants=list(grants.values()),
        csrf_token=sess.csrf_token,
    )


# --------------------------------------------------------------------------- users


@router.get("/users", response_model=UserList)
async def list_users(principal: CurrentPrincipal, db: DB) -> UserList:
    """Accounts holding a role within your users:manage scope."""
    principal.require_anywhere(Perm.USERS_MANAGE)
    users = await service.list_users(db, principal)
    grants = await _grant_outs(db, [g for u in users for g in u.grants])
    return UserList(items=[_user_out(u, grants) for u in users], total=len(users))


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(
    body: UserCreate, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> UserOut:
    """Create an account; it sets up its authenticator app at first log-in."""
    principal.require_anywhere(Perm.USERS_MANAGE)
    user = await service.create_user(
        db,
        clock,
        principal,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
        email=str(body.email or ""),
        grants=[(g.role, _spec(g.scope, g.code)) for g in body.grants],
    )
    out = await _one_user_out(db, user)
    await db.commit()
    return out


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: Id, principal: CurrentPrincipal, db: DB) -> UserOut:
    principal.require_anywhere(Perm.USERS_MANAGE)
    user = await service.get_user_for(db, principal, user_id)
    return await _one_user_out(db, user)


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(
    user_id: Id, body: UserPatch, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> UserOut:
    """Change display name or e-mail, disable or enable, or unlock after failed log-ins."""
    principal.require_anywhere(Perm.USERS_MANAGE)
    user = await service.get_user_for(db, principal, user_id)
    await service.update_user(
        db,
        clock,
        principal,
        user,
        display_name=body.display_name,
        email=None if body.email is None else str(body.email),
        is_active=body.is_active,
        unlock=body.unlock,
    )
    out = await _one_user_out(db, user)
    await db.commit()
    return out


@router.post("/users/{user_id}/grants", response_model=UserOut, status_code=201)
async def add_grant(
    user_id: Id, body: GrantIn, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> UserOut:
    """Grant a role for the organisation, a region or a facility (within your own scope)."""
    principal.require_anywhere(Perm.USERS_MANAGE)
    user = await service.get_user_for(db, principal, user_id)
    await service.add_grant(db, clock, principal, user, body.role, _spec(body.scope, body.code))
    out = await _one_user_out(db, user)
    await db.commit()
    return out


@router.delete("/users/{user_id}/grants/{grant_id}", status_code=204)
async def remove_grant(
    user_id: Id, grant_id: Id, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> Response:
    principal.require_anywhere(Perm.USERS_MANAGE)
    user = await service.get_user_for(db, principal, user_id)
    await service.remove_grant(db, clock, principal, user, grant_id)
    await db.commit()
    return Response(status_code=204)


@router.post("/users/{user_id}/reset-mfa", response_model=UserOut)
async def reset_mfa(user_id: Id, principal: CurrentPrincipal, db: DB, clock: ClockDep) -> UserOut:
    """Forget the account's authenticator and recovery codes and end its sessions."""
    principal.require_anywhere(Perm.USERS_MANAGE)
    user = await service.get_user_for(db, principal, user_id)
    await service.reset_mfa(db, clock, principal, user)
    out = await _one_user_out(db, user)
    await db.commit()
    return out


# --------------------------------------------------------------------------- API tokens


@router.get("/tokens", response_model=TokenList)
async def list_tokens(principal: CurrentPrincipal, db: DB) -> TokenList:
    """API tokens within your tokens:manage scope (revoked ones included, marked)."""
    principal.require_anywhere(Perm.TOKENS_MANAGE)
    tokens = await service.list_tokens(db, principal)
    grants = await _grant_outs(db, [g for t in tokens for g in t.grants])
    return TokenList(items=[_token_out(t, grants) for t in tokens], total=len(tokens))


@router.post("/tokens", response_model=TokenCreated, status_code=201)
async def create_token(
    body: TokenCreate, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> TokenCreated:
    """Mint a token for a device or integration. The secret is in this response only."""
    principal.require_anywhere(Perm.TOKENS_MANAGE)
    token, secret = await service.create_token(
        db, clock, principal, name=body.name, role=body.role, scope=_spec(body.scope, body.code)
    )
    grants = await _grant_outs(db, list(token.grants))
    out = TokenCreated(**_token_out(token, grants).model_dump(), token=secret)
    await db.commit()
    return out


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: Id, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> Response:
    """Revoke a token: it stops working on its next request."""
    principal.require_anywhere(Perm.TOKENS_MANAGE)
    await service.revoke_token(db, clock, principal, token_id)
    await db.commit()
    return Response(status_code=204)
