"""Resolve the caller of a request into a Principal: an API token or a logged-in session.

API callers send `Authorization: Bearer <token>`. Browser callers carry the session cookie; their
unsafe requests must also carry the session's CSRF token (header `X-CSRF-Token` or form field
`csrf_token`), so another site cannot act with their cookie.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth.models import ApiToken, RoleGrant, User, UserSession
from watchfloor.auth.principal import Grant, Principal
from watchfloor.auth.roles import Role, ScopeKind
from watchfloor.auth.tokens import hash_secret, same
from watchfloor.clock import Clock
from watchfloor.deps import client_ip, get_clock, get_db
from watchfloor.problems import Forbidden, Unauthorized

SESSION_COOKIE = "wf_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LAST_USED_RESOLUTION = timedelta(minutes=1)


def grants_of(rows: list[RoleGrant]) -> tuple[Grant, ...]:
    return tuple(
        Grant(
            role=Role(g.role),
            scope=ScopeKind(g.scope),
            region_id=g.region_id,
            facility_id=g.facility_id,
        )
        for g in rows
    )


async def principal_from_token(
    db: AsyncSession, clock: Clock, secret: str, ip: str | None
) -> Principal | None:
    token = (
        await db.execute(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        return None
    now = clock.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        await db.commit()
    return Principal(
        kind="token", id=token.id, name=token.name, grants=grants_of(token.grants), ip=ip
    )


async def session_from_cookie(
    db: AsyncSession, clock: Clock, cookie: str
) -> tuple[UserSession, User] | None:
    row = (
        await db.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == hash_secret(cookie))
        )
    ).one_or_none()
    if row is None:
        return None
    sess, user = row
    if sess.revoked_at is not None or sess.expires_at <= clock.now() or not user.is_active:
        return None
    return sess, user


async def optional_principal(
    request: Request,
    db: Annotated[AsyncSession, Depends(get_db)],
    clock: Annotated[Clock, Depends(get_clock)],
) -> Principal | None:
    ip = client_ip(request)
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("Send the API token as 'Authorization: Bearer <token>'.")
        principal = await principal_from_token(db, clock, secret.strip(), ip)
        if principal is None:
            raise Unauthorized("This API token is unknown or has been revoked.")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    found = await session_from_cookie(db, clock, cookie)
    if found is None:
        return None
    sess, user = found
    if not sess.mfa_verified:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else ""
        if not sent or not same(sent, sess.csrf_token):
            raise Forbidden("The form's security token is missing or stale. Reload and try again.")
    return Principal(
        kind="user",
        id=user.id,
        name=user.username,
        grants=grants_of(user.grants),
        ip=ip,
        session_id=sess.id,
        extra={"csrf": sess.csrf_token, "display_name": user.display_name or user.username},
    )


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthorized()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
