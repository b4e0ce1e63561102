"""Resolve the caller of a request into a Principal: an API token or a logged-in session.

API callers send `Authorization: Bearer <token>`. Browser callers carry the session cookie; their
unsafe requests must also carry the session's CSRF token (header `X-CSRF-Token` or form field
`csrf_token`), so another site cannot act with their cookie.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, object_session

from watchfloor.auth.models import ApiToken, RoleGrant, User, UserSession
from watchfloor.auth.principal import Grant, Principal
from watchfloor.auth.roles import Role, ScopeKind
from watchfloor.auth.tokens import hash_secret, same
from watchfloor.clock import Clock
from watchfloor.deps import client_ip, get_db
from watchfloor.problems import Forbidden, Unauthorized

SESSION_COOKIE = "wf_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: How long a resolved API token is trusted without asking the database again. A revocation
#: made in this process takes effect at once (`forget_tokens`); one made by another process
#: (another worker, the CLI) within this many seconds. See the README's security notes.
TOKEN_CACHE_SECONDS = 2.0
TOKEN_CACHE_MAX = 10_000


class _CachedToken:
    __slots__ = ("at", "grants", "id", "last_used_at", "name")

    def __init__(
        self, at: float, id: int, name: str, grants: tuple[Grant, ...], last_used_at: Any
    ) -> None:
        self.at = at
        self.id = id
        self.name = name
        self.grants = grants
        self.last_used_at = last_used_at


# (engine, token hash) -> the token as last read; only live (not revoked) tokens are kept
_token_cache: dict[tuple[int, str], _CachedToken] = {}


def forget_tokens(token_id: int | None = None) -> None:
    """Drop cached API tokens (all, or those with this id in any database) so their next use
    reads the database again. Called when a token is revoked or its grants change."""
    if token_id is None:
        _token_cache.clear()
        return
    for key, cached in list(_token_cache.items()):
        if cached.id == token_id:
            _token_cache.pop(key, None)


_CHANGED = "watchfloor.tokens_changed"


def _tokens_changed(_mapper: Any, _connection: Any, target: Any) -> None:
    """A token or grant was written in this process: forget the cache now, and again when that
    transaction commits (a request may have re-read the old row in between)."""
    forget_tokens()
    session = object_session(target)
    if session is not None:
        session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget_tokens()


for _model in (ApiToken, RoleGrant):
    for _what in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _what, _tokens_changed)
event.listen(Session, "after_commit", _after_commit)


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
    """The Principal of a bearer API token, or None if it is unknown or revoked.

    One joined query reads the token and its grants; the answer is kept in memory for
    TOKEN_CACHE_SECONDS (a revocation in this process drops it at once). `last_used_at` is
    written at most once a minute."""
    digest = hash_secret(secret)
    key = (id(db.get_bind()), digest)
    mono = time.monotonic()
    cached = _token_cache.get(key)
    if cached is None or mono - cached.at >= TOKEN_CACHE_SECONDS:
        rows = (
            await db.execute(
                select(
                    ApiToken.id,
                    ApiToken.name,
                    ApiToken.revoked_at,
                    ApiToken.last_used_at,
                    RoleGrant.role,
                    RoleGrant.scope,
                    RoleGrant.region_id,
                    RoleGrant.facility_id,
                )
                .outerjoin(RoleGrant, RoleGrant.token_id == ApiToken.id)
                .where(ApiToken.token_hash == digest)
                .order_by(RoleGrant.id)
            )
        ).all()
        if not rows or rows[0].revoked_at is not None:
            _token_cache.pop(key, None)
            return None
        first = rows[0]
        grants = tuple(
            Grant(
                role=Role(r.role),
                scope=ScopeKind(r.scope),
                region_id=r.region_id,
                facility_id=r.facility_id,
            )
            for r in rows
            if r.role is not None
        )
        if len(_token_cache) >= TOKEN_CACHE_MAX:
            _token_cache.clear()
        cached = _CachedToken(mono, first.id, first.name, grants, first.last_used_at)
        _token_cache[key] = cached
    now = clock.now()
    last: datetime | None = cached.last_used_at
    if last is None or now - last >= LAST_USED_RESOLUTION:
        cached.last_used_at = now
        await db.execute(update(ApiToken).where(ApiToken.id == cached.id).values(last_used_at=now))
        await db.commit()
    return Principal(kind="token", id=cached.id, name=cached.name, grants=cached.grants, ip=ip)


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


async def request_clock(request: Request) -> Clock:
    """The app's clock, as an async dependency: FastAPI runs a plain `def` dependency (such as
    watchfloor.deps.get_clock) in its thread pool, a thread hop on every request."""
    clock: Clock = request.app.state.clock
    return clock


async def optional_principal(
    request: Request,
    db: Annotated[AsyncSession, Depends(get_db)],
    clock: Annotated[Clock, Depends(request_clock)],
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
