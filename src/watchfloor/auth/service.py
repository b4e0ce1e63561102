"""Accounts, passwords, MFA, sessions, throttling, role grants and API tokens.

The logic only: no HTTP. Functions take an AsyncSession and a Clock and flush; the caller (API,
console or CLI) commits. One exception, on purpose: a *failed* log-in or MFA attempt commits its
own record (the attempt, the failure count, the lock-out, the audit record) before raising, so a
caller that simply lets the error propagate cannot lose it.

Log-in is two steps. `password_login` checks throttling, lock-out and the password and opens a
session that is not yet usable (`mfa_verified` False). `verify_mfa` (a TOTP code or a one-time
recovery code) completes it. A user who has no authenticator yet enrols instead
(`begin_totp_enrolment`, then `confirm_totp_enrolment`, which completes the session). Only
MFA-verified sessions resolve to a Principal (auth/deps.py).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.models import (
    ApiToken,
    LoginAttempt,
    RecoveryCode,
    RoleGrant,
    User,
    UserSession,
)
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import ROLE_PERMS, Perm, Role, ScopeKind
from watchfloor.auth.tokens import hash_secret, new_secret, same
from watchfloor.clock import Clock
from watchfloor.config import Settings, get_settings
from watchfloor.problems import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
)
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility, Region

_hasher = PasswordHasher()
# Recovery codes are ~50 random bits, not something a person chose: a light argon2 is plenty and
# keeps checking a user's ten codes quick.
_code_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
_dummy_hash: str | None = None

TOTP_ISSUER = "Watchfloor"
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
RECOVERY_CODE_LENGTH = 10
THROTTLE_WINDOW = timedelta(minutes=1)
ATTEMPT_RETENTION = timedelta(days=1)  # the audit log keeps the lasting record
SESSION_COOKIE_PREFIX = "wfs_"
MIN_PASSWORD_LENGTH = 12
ACTOR_ANONYMOUS = "anonymous"


# --------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy() -> str:
    """A hash to verify against for unknown usernames, so they take as long as known ones."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 1024:
        raise InvalidInput("Passwords may have at most 1024 characters.")


def normalise_username(username: str) -> str:
    return username.strip().lower()


# --------------------------------------------------------------------------- scopes and grants


@dataclass(frozen=True)
class ScopeSpec:
    """A scope named by codes, as people type it: the org, a region code or a facility code."""

    kind: ScopeKind
    code: str | None = None

    @classmethod
    def org(cls) -> ScopeSpec:
        return cls(ScopeKind.ORG)

    @classmethod
    def region(cls, code: str) -> ScopeSpec:
        return cls(ScopeKind.REGION, code)

    @classmethod
    def facility(cls, code: str) -> ScopeSpec:
        return cls(ScopeKind.FACILITY, code)


@dataclass(frozen=True)
class GrantInfo:
    """A grant as people read it: role and scope named by codes."""

    id: int
    role: str
    scope: str
    code: str | None


async def make_grant(
    db: AsyncSession, clock: Clock, role: Role | str, spec: ScopeSpec
) -> RoleGrant:
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(
            f"Unknown role '{role}'. Roles: {', '.join(r.value for r in Role)}."
        ) from None
    grant = RoleGrant(role=role.value, scope=spec.kind.value, created_at=clock.now())
    if spec.kind is ScopeKind.REGION:
        grant.region_id = (await sites.get_region(db, spec.code or "")).id
    elif spec.kind is ScopeKind.FACILITY:
        grant.facility_id = (await sites.get_facility(db, spec.code or "")).id
    return grant


async def _facility_regions(db: AsyncSession, facility_ids: set[int]) -> dict[int, int]:
    if not facility_ids:
        return {}
    rows = await db.execute(
        select(Facility.id, Facility.region_id).where(Facility.id.in_(facility_ids))
    )
    return {fid: rid for fid, rid in rows.all()}


def _covers(
    principal: Principal,
    perm: Perm,
    scope: str,
    facility_id: int | None,
    region_id: int | None,
) -> bool:
    """Does `principal` hold `perm` over the whole of this grant's scope?"""
    if scope == ScopeKind.ORG:
        return principal.allows_org(perm)
    if scope == ScopeKind.REGION:
        return principal.allows(perm, facility_id=None, region_id=region_id)
    return principal.allows(perm, facility_id=facility_id, region_id=region_id)


def _grant_covered(
    principal: Principal, perm: Perm, grant: RoleGrant, regions: dict[int, int]
) -> bool:
    region_id = grant.region_id
    if grant.facility_id is not None:
        region_id = regions.get(grant.facility_id)
    return _covers(principal, perm, grant.scope, grant.facility_id, region_id)


async def _check_grantable(
    db: AsyncSession, actor: Principal, perm: Perm, grant: RoleGrant
) -> None:
    """The actor may hand out `grant` only within their own `perm` scope, and only a role whose
    permissions they hold there themselves: nobody can grant more than they have."""
    regions = await _facility_regions(
        db, {grant.facility_id} if grant.facility_id is not None else set()
    )
    needed = {perm} | set(ROLE_PERMS[Role(grant.role)])
    if not all(_grant_covered(actor, p, grant, regions) for p in needed):
        raise Forbidden(
            f"You may grant the role '{grant.role}' only within your own scope, and only where "
            "you hold every permission it carries. Ask an administrator with a wider scope."
        )


async def describe_grants(db: AsyncSession, grants: list[RoleGrant]) -> list[GrantInfo]:
    facility_ids = {g.facility_id for g in grants if g.facility_id is not None}
    region_ids = {g.region_id for g in grants if g.region_id is not None}
    fcodes: dict[int, str] = {}
    rcodes: dict[int, str] = {}
    if facility_ids:
        rows = await db.execute(
            select(Facility.id, Facility.code).where(Facility.id.in_(facility_ids))
        )
        fcodes = {i: c for i, c in rows.all()}
    if region_ids:
        rows = await db.execute(select(Region.id, Region.code).where(Region.id.in_(region_ids)))
        rcodes = {i: c for i, c in rows.all()}
    out = []
    for g in sorted(grants, key=lambda g: g.id or 0):
        code = None
        if g.facility_id is not None:
            code = fcodes.get(g.facility_id)
        elif g.region_id is not None:
            code = rcodes.get(g.region_id)
        out.append(GrantInfo(id=g.id, role=g.role, scope=g.scope, code=code))
    return out


# --------------------------------------------------------------------------- API tokens


async def create_token(
    db: AsyncSession,
    clock: Clock,
    actor: Principal | str,
    *,
    name: str,
    role: Role | str,
    scope: ScopeSpec,
) -> tuple[ApiToken, str]:
    """Create an API token; returns the row and the secret, which is shown once and never stored.

    When `actor` is a Principal (an API caller) the token's grant must lie within the actor's
    tokens:manage scope and the actor must hold the role's permissions there. A string actor
    ("system:cli") is trusted.
    """
    if not name.strip():
        raise InvalidInput("A token needs a name that says what uses it, e.g. 'door-feed-DAL'.")
    grant = await make_grant(db, clock, role, scope)
    if isinstance(actor, Principal):
        await _check_grantable(db, actor, Perm.TOKENS_MANAGE, grant)
    secret = new_secret()
    token = ApiToken(
        name=name.strip(),
        prefix=secret[:10],
        token_hash=hash_secret(secret),
        created_by=actor.label if isinstance(actor, Principal) else actor,
        created_at=clock.now(),
    )
    token.grants.append(grant)
    db.add(token)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "token.create",
        target_type="api_token",
        target_id=token.id,
        facility_id=grant.facility_id,
        details={
            "name": token.name,
            "prefix": token.prefix,
            "role": grant.role,
            "scope": scope.kind.value,
            "code": scope.code,
        },
    )
    return token, secret


async def _token_regions(db: AsyncSession, tokens: list[ApiToken]) -> dict[int, int]:
    return await _facility_regions(
        db, {g.facility_id for t in tokens for g in t.grants if g.facility_id is not None}
    )


def _token_in_scope(viewer: Principal, token: ApiToken, regions: dict[int, int]) -> bool:
    return any(_grant_covered(viewer, Perm.TOKENS_MANAGE, g, regions) for g in token.grants)


async def list_tokens(db: AsyncSession, viewer: Principal | None = None) -> list[ApiToken]:
    """Every token (viewer None: the CLI), or those with a grant in the viewer's scope."""
    tokens = list((await db.execute(select(ApiToken).order_by(ApiToken.id))).scalars().all())
    if viewer is None:
        return tokens
    regions = await _token_regions(db, tokens)
    return [t for t in tokens if _token_in_scope(viewer, t, regions)]


async def get_token(db: AsyncSession, token_id: int, viewer: Principal | None = None) -> ApiToken:
    """A token by id; with a viewer, only one in their scope (404 otherwise)."""
    token = await db.get(ApiToken, token_id)
    if (
        token is not None
        and viewer is not None
        and not _token_in_scope(viewer, token, await _token_regions(db, [token]))
    ):
        token = None
    if token is None:
        raise NotFound(f"No API token has the id {token_id}.")
    return token


async def revoke_token(
    db: AsyncSession, clock: Clock, actor: Principal | str, token_id: int
) -> ApiToken:
    """Revoke a token: it stops working on its very next request. Revoking twice is harmless."""
    viewer = actor if isinstance(actor, Principal) else None
    token = await get_token(db, token_id, viewer)
    if viewer is not None:
        regions = await _token_regions(db, [token])
        if not all(_grant_covered(viewer, Perm.TOKENS_MANAGE, g, regions) for g in token.grants):
            raise Forbidden(
                "This token also reaches beyond your scope; ask an administrator to revoke it."
            )
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        await db.flush()
        from watchfloor.auth.deps import forget_tokens  # (deps imports this module's models)

        forget_tokens(token.id)  # refused at once in this process (again after the commit)
        await audit.record(
            db,
            clock,
            actor,
            "token.revoke",
            target_type="api_token",
            target_id=token.id,
            facility_id=next((g.facility_id for g in token.grants), None),
            details={"name": token.name, "prefix": token.prefix},
        )
    return token


# --------------------------------------------------------------------------- users


async def create_user(
    db: AsyncSession,
    clock: Clock,
    actor: Principal | str,
    *,
    username: str,
    password: str,
    display_name: str = "",
    email: str = "",
    grants: list[tuple[Role | str, ScopeSpec]] | None = None,
    totp_secret: str | None = None,
) -> User:
    """Create an account. With a Principal actor every grant must be within the actor's
    users:manage scope (and a non-organisation-wide actor must give at least one grant, or they
    could not see the account afterwards). `totp_secret` enrols TOTP at once (CLI, demo)."""
    check_password_strength(password)
    uname = normalise_username(username)
    if not uname or len(uname) > 80:
        raise InvalidInput("A username needs 1 to 80 characters.")
    existing = (await db.execute(select(User.id).where(User.username == uname))).first()
    if existing is not None:
        raise Conflict(f"The username '{uname}' is already taken.")
    now = clock.now()
    user = User(
        username=uname,
        display_name=display_name,
        email=email,
        password_hash=hash_password(password),
        totp_secret=totp_secret,
        totp_enabled=totp_secret is not None,
        failed_logins=0,
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    new_grants: list[RoleGrant] = []
    for role, spec in grants or []:
        grant = await make_grant(db, clock, role, spec)
        if isinstance(actor, Principal):
            await _check_grantable(db, actor, Perm.USERS_MANAGE, grant)
        new_grants.append(grant)
    if isinstance(actor, Principal) and not new_grants and not actor.allows_org(Perm.USERS_MANAGE):
        raise InvalidInput("Give the new account at least one role within your scope.")
    user.grants = new_grants
    db.add(user)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "user.create",
        target_type="user",
        target_id=user.id,
        details={
            "username": user.username,
            "grants": [[g.role, g.scope, g.region_id, g.facility_id] for g in new_grants],
            "totp_enrolled": user.totp_enabled,
        },
    )
    return user


async def get_user(db: AsyncSession, user_id: int) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"No user has the id {user_id}.")
    return user


async def get_user_by_username(db: AsyncSession, username: str) -> User:
    uname = normalise_username(username)
    user = (await db.execute(select(User).where(User.username == uname))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user has the username '{uname}'.")
    return user


async def _user_regions(db: AsyncSession, users: list[User]) -> dict[int, int]:
    return await _facility_regions(
        db, {g.facility_id for u in users for g in u.grants if g.facility_id is not None}
    )


async def list_users(db: AsyncSession, viewer: Principal | None = None) -> list[User]:
    """Every account (viewer None: the CLI), or those holding a grant in the viewer's
    users:manage scope (an organisation-wide viewer sees all, including accounts with no role)."""
    users = list((await db.execute(select(User).order_by(User.username))).scalars().all())
    if viewer is None or viewer.allows_org(Perm.USERS_MANAGE):
        return users
    regions = await _user_regions(db, users)
    return [
        u
        for u in users
        if any(_grant_covered(viewer, Perm.USERS_MANAGE, g, regions) for g in u.grants)
    ]


async def get_user_for(db: AsyncSession, viewer: Principal, user_id: int) -> User:
    """A user the viewer may see (404 otherwise, so ids outside the scope reveal nothing)."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"No user has the id {user_id}.")
    if viewer.allows_org(Perm.USERS_MANAGE):
        return user
    regions = await _user_regions(db, [user])
    if not any(_grant_covered(viewer, Perm.USERS_MANAGE, g, regions) for g in user.grants):
        raise NotFound(f"No user has the id {user_id}.")
    return user


async def _require_manageable(db: AsyncSession, actor: Principal | str, user: User) -> None:
    """Changing an account needs users:manage over every scope it holds a role in: a facility
    administrator cannot disable or reset an organisation-wide administrator."""
    if not isinstance(actor, Principal) or actor.allows_org(Perm.USERS_MANAGE):
        return
    regions = await _user_regions(db, [user])
    if not user.grants or not all(
        _grant_covered(actor, Perm.USERS_MANAGE, g, regions) for g in user.grants
    ):
        raise Forbidden(
            f"'{user.username}' holds roles beyond your scope; ask an administrator with a "
            "wider scope to change this account."
        )


async def _revoke_sessions(db: AsyncSession, clock: Clock, user: User) -> int:
    rows = (
        (
            await db.execute(
                select(UserSession).where(
                    UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
                )
            )
        )
        .scalars()
        .all()
    )
    now = clock.now()
    for sess in rows:
        sess.revoked_at = now
    return len(rows)


async def _org_admin_count(db: AsyncSession) -> int:
    count = await db.scalar(
        select(func.count(func.distinct(RoleGrant.user_id)))
        .join(User, User.id == RoleGrant.user_id)
        .where(
            RoleGrant.role == Role.ADMIN.value,
            RoleGrant.scope == ScopeKind.ORG.value,
            User.is_active.is_(True),
        )
    )
    return int(count or 0)


def _is_org_admin(user: User) -> bool:
    return user.is_active and any(
        g.role == Role.ADMIN.value and g.scope == ScopeKind.ORG.value for g in user.grants
    )


async def update_user(
    db: AsyncSession,
    clock: Clock,
    actor: Principal | str,
    user: User,
    *,
    display_name: str | None = None,
    email: str | None = None,
    is_active: bool | None = None,
    unlock: bool = False,
) -> User:
    await _require_manageable(db, actor, user)
    changes: dict[str, object] = {}
    if display_name is not None and display_name != user.display_name:
        user.display_name, changes["display_name"] = display_name, display_name
    if email is not None and email != user.email:
        user.email, changes["email"] = email, email
    if is_active is not None and is_active != user.is_active:
        if not is_active and _is_org_admin(user) and await _org_admin_count(db) <= 1:
            raise Conflict(
                "This is the last active organisation-wide administrator. Make another "
                "administrator first."
            )
        user.is_active, changes["is_active"] = is_active, is_active
        if not is_active:
            changes["sessions_revoked"] = await _revoke_sessions(db, clock, user)
    if unlock:
        changes["unlocked"] = True
        changes["failed_logins_was"] = user.failed_logins
        user.failed_logins, user.locked_until = 0, None
    if changes:
        user.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "user.unlock" if set(changes) <= {"unlocked", "failed_logins_was"} else "user.update",
            target_type="user",
            target_id=user.id,
            details={"username": user.username, **changes},
        )
    return user


async def unlock_user(db: AsyncSession, clock: Clock, actor: Principal | str, user: User) -> User:
    return await update_user(db, clock, actor, user, unlock=True)


async def add_grant(
    db: AsyncSession,
    clock: Clock,
    actor: Principal | str,
    user: User,
    role: Role | str,
    spec: ScopeSpec,
) -> RoleGrant:
    grant = await make_grant(db, clock, role, spec)
    if isinstance(actor, Principal):
        await _check_grantable(db, actor, Perm.USERS_MANAGE, grant)
    for g in user.grants:
        if (g.role, g.scope, g.region_id, g.facility_id) == (
            grant.role,
            grant.scope,
            grant.region_id,
            grant.facility_id,
        ):
            return g  # already held: granting again changes nothing
    user.grants.append(grant)
    user.updated_at = clock.now()
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "user.grant",
        target_type="user",
        target_id=user.id,
        facility_id=grant.facility_id,
        details={
            "username": user.username,
            "grant_id": grant.id,
            "role": grant.role,
            "scope": spec.kind.value,
            "code": spec.code,
        },
    )
    return grant


async def remove_grant(
    db: AsyncSession, clock: Clock, actor: Principal | str, user: User, grant_id: int
) -> None:
    grant = next((g for g in user.grants if g.id == grant_id), None)
    if grant is None:
        raise NotFound(f"User '{user.username}' has no grant with the id {grant_id}.")
    if isinstance(actor, Principal):
        regions = await _user_regions(db, [user])
        if not _grant_covered(actor, Perm.USERS_MANAGE, grant, regions):
            raise Forbidden("That role was granted beyond your scope; you cannot remove it.")
    if (
        grant.role == Role.ADMIN.value
        and grant.scope == ScopeKind.ORG.value
        and _is_org_admin(user)
        and await _org_admin_count(db) <= 1
        and sum(
            1 for g in user.grants if g.role == Role.ADMIN.value and g.scope == ScopeKind.ORG.value
        )
        <= 1
    ):
        raise Conflict(
            "This is the last organisation-wide administrator. Make another administrator first."
        )
    facility_id = grant.facility_id
    details = {
        "username": user.username,
        "grant_id": grant.id,
        "role": grant.role,
        "scope": grant.scope,
        "region_id": grant.region_id,
        "facility_id": grant.facility_id,
    }
    user.grants.remove(grant)
    user.updated_at = clock.now()
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "user.revoke_grant",
        target_type="user",
        target_id=user.id,
        facility_id=facility_id,
        details=details,
    )


async def reset_mfa(db: AsyncSession, clock: Clock, actor: Principal | str, user: User) -> None:
    """Forget the user's authenticator and recovery codes and end their sessions; they enrol
    again at their next log-in."""
    await _require_manageable(db, actor, user)
    user.totp_secret = None
    user.totp_enabled = False
    user.totp_last_step = None
    user.updated_at = clock.now()
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    revoked = await _revoke_sessions(db, clock, user)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "user.reset_mfa",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "sessions_revoked": revoked},
    )


async def set_password(
    db: AsyncSession, clock: Clock, actor: Principal | str, user: User, password: str
) -> None:
    await _require_manageable(db, actor, user)
    check_password_strength(password)
    user.password_hash = hash_password(password)
    user.updated_at = clock.now()
    revoked = await _revoke_sessions(db, clock, user)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "user.set_password",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "sessions_revoked": revoked},
    )


# --------------------------------------------------------------------------- log-in


def _locked_problem(until: datetime) -> Problem:
    return Problem(
        f"This account is locked after too many failed attempts until "
        f"{until.strftime('%Y-%m-%d %H:%M')} UTC. Try again then, or ask an administrator to "
        "unlock it.",
        status=423,
        slug="account-locked",
        title="Account locked",
    )


def _is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


async def _register_failure(
    db: AsyncSession, clock: Clock, settings: Settings, user: User, ip: str
) -> bool:
    """Count a failed password or code toward lock-out; True when this failure locked it."""
    now = clock.now()
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= settings.login_max_failures:
        user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
        await audit.record(
            db,
            clock,
            f"user:{user.username}",
            "auth.locked_out",
            target_type="user",
            target_id=user.id,
            ip=ip,
            details={"failures": user.failed_logins, "until": user.locked_until.isoformat()},
        )
        return True
    return False


async def _check_throttle(
    db: AsyncSession, now: datetime, settings: Settings, username: str, ip: str
) -> None:
    since = now - THROTTLE_WINDOW
    limit = settings.login_throttle_per_minute
    for column, value in ((LoginAttempt.username, username), (LoginAttempt.ip, ip)):
        if not value:
            continue
        count, oldest = (
            await db.execute(
                select(func.count(LoginAttempt.id), func.min(LoginAttempt.at)).where(
                    column == value, LoginAttempt.at > since
                )
            )
        ).one()
        if count >= limit and oldest is not None:
            if oldest.tzinfo is None:  # some drivers drop the type on aggregates
                from watchfloor.clock import as_utc

                oldest = as_utc(oldest)
            wait = max(1, math.ceil((oldest + THROTTLE_WINDOW - now).total_seconds()))
            raise TooManyRequests(
                f"Too many log-in attempts. Wait {wait} seconds and try again.",
                headers={"Retry-After": str(wait)},
            )


async def password_login(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    *,
    username: str,
    password: str,
    ip: str,
    user_agent: str,
) -> tuple[UserSession, str]:
    """First step of log-in. Returns the new (not yet MFA-verified) session and the cookie value,
    which is stored only as its SHA-256. Raises TooManyRequests (429, Retry-After), Problem 423
    "account-locked", Forbidden (disabled account) or Unauthorized("Wrong username or password.").
    """
    uname = "".join(ch for ch in normalise_username(username) if ch.isprintable())[:80]
    ip = (ip or "")[:64]
    user_agent = "".join(ch for ch in (user_agent or "") if ch.isprintable())[:300]
    now = clock.now()
    await db.execute(delete(LoginAttempt).where(LoginAttempt.at < now - ATTEMPT_RETENTION))
    await _check_throttle(db, now, settings, uname, ip)

    user = (await db.execute(select(User).where(User.username == uname))).scalar_one_or_none()
    actor = f"user:{uname}" if user is not None else ACTOR_ANONYMOUS

    if user is not None and _is_locked(user, now):
        assert user.locked_until is not None
        db.add(LoginAttempt(username=uname, ip=ip, at=now, success=False))
        await audit.record(
            db,
            clock,
            actor,
            "auth.login_failed",
            target_type="user",
            target_id=user.id,
            ip=ip,
            details={"username": uname, "reason": "locked"},
        )
        locked_until = user.locked_until
        await db.commit()
        raise _locked_problem(locked_until)
    if user is not None and user.locked_until is not None:  # the lock has run out
        user.locked_until, user.failed_logins = None, 0

    password_ok = _verify_password(user.password_hash if user else _dummy(), password[:1024])
    if user is None or not password_ok:
        db.add(LoginAttempt(username=uname, ip=ip, at=now, success=False))
        locked = False
        if user is not None:
            locked = await _register_failure(db, clock, settings, user, ip)
        await audit.record(
            db,
            clock,
            actor,
            "auth.login_failed",
            target_type="user" if user else "",
            target_id=user.id if user else "",
            ip=ip,
            details={
                "username": uname,
                "reason": "wrong password" if user else "unknown user",
            },
        )
        until = user.locked_until if user is not None else None
        await db.commit()
        if locked and until is not None:
            raise _locked_problem(until)
        raise Unauthorized("Wrong username or password.")

    db.add(LoginAttempt(username=uname, ip=ip, at=now, success=True))
    if not user.is_active:
        await audit.record(
            db,
            clock,
            actor,
            "auth.login_failed",
            target_type="user",
            target_id=user.id,
            ip=ip,
            details={"username": uname, "reason": "disabled"},
        )
        await db.commit()
        raise Forbidden("This account has been disabled. Ask an administrator.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)

    cookie_secret = new_secret(SESSION_COOKIE_PREFIX)
    sess = UserSession(
        user_id=user.id,
        token_hash=hash_secret(cookie_secret),
        csrf_token=secrets.token_urlsafe(32),
        mfa_verified=False,
        ip=ip,
        user_agent=user_agent,
        created_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
        last_seen_at=now,
    )
    db.add(sess)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "auth.password_ok",
        target_type="user",
        target_id=user.id,
        ip=ip,
        details={
            "session_id": sess.id,
            "user_agent": user_agent,
            "mfa_enrolled": user.totp_enabled,
        },
    )
    return sess, cookie_secret


def _check_session_live(sess: UserSession, now: datetime) -> None:
    if sess.revoked_at is not None or sess.expires_at <= now:
        raise Unauthorized("Your log-in has expired or ended. Log in again.")


def _match_totp(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code equals `code` (now, or one step either side), else None."""
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if same(totp.generate_otp(step), code):
            return step
    return None


def _normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch not in "- ")


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    half = RECOVERY_CODE_LENGTH // 2
    return f"{raw[:half]}-{raw[half:]}"


async def _replace_recovery_codes(db: AsyncSession, user: User) -> list[str]:
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        db.add(
            RecoveryCode(
                user_id=user.id, code_hash=_code_hasher.hash(_normalise_recovery_code(code))
            )
        )
    return codes


async def _use_recovery_code(db: AsyncSession, user: User, code: str, now: datetime) -> int | None:
    """Mark the matching unused recovery code used; return how many remain, or None if no match."""
    cleaned = _normalise_recovery_code(code)
    if len(cleaned) != RECOVERY_CODE_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in cleaned):
        return None
    rows = (
        (
            await db.execute(
                select(RecoveryCode).where(
                    RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
                )
            )
        )
        .scalars()
        .all()
    )
    for row in rows:
        matched: bool
        try:
            matched = _code_hasher.verify(row.code_hash, cleaned)
        except (VerificationError, InvalidHashError):
            matched = False
        if matched:
            row.used_at = now
            return len(rows) - 1
    return None


async def verify_mfa(
    db: AsyncSession,
    clock: Clock,
    sess: UserSession,
    code: str,
    *,
    settings: Settings | None = None,
) -> None:
    """Second step of log-in: a current TOTP code (each time step accepted once) or an unused
    recovery code. Marks the session MFA-verified. A wrong code counts toward lock-out."""
    settings = settings or get_settings()
    now = clock.now()
    _check_session_live(sess, now)
    user = await get_user(db, sess.user_id)
    actor = f"user:{user.username}"
    if _is_locked(user, now):
        assert user.locked_until is not None
        raise _locked_problem(user.locked_until)
    if not user.totp_enabled or not user.totp_secret:
        raise Problem(
            "This account has no authenticator app yet. Set one up first (TOTP enrolment).",
            status=409,
            slug="mfa-not-enrolled",
        )
    code = (code or "").strip().replace(" ", "")[:64]
    step = _match_totp(user.totp_secret, code, now)
    replayed = step is not None and user.totp_last_step is not None and step <= user.totp_last_step
    if step is not None and not replayed:
        user.totp_last_step = step
        action, details = "auth.login", {"session_id": sess.id, "method": "totp"}
    else:
        remaining = None if replayed else await _use_recovery_code(db, user, code, now)
        if remaining is None:
            locked = await _register_failure(db, clock, settings, user, sess.ip)
            await audit.record(
                db,
                clock,
                actor,
                "auth.mfa_failed",
                target_type="user",
                target_id=user.id,
                ip=sess.ip,
                details={"session_id": sess.id, "reason": "replayed" if replayed else "wrong code"},
            )
            if locked:
                sess.revoked_at = now
            until = user.locked_until
            await db.commit()
            if locked and until is not None:
                raise _locked_problem(until)
            if replayed:
                raise Unauthorized(
                    "That code has already been used. Wait for the next code from your "
                    "authenticator app."
                )
            raise Unauthorized(
                "That code is not valid. Enter the current 6-digit code from your authenticator "
                "app, or one of your recovery codes."
            )
        action = "auth.login_recovery_code"
        details = {"session_id": sess.id, "method": "recovery_code", "remaining": remaining}
    sess.mfa_verified = True
    sess.last_seen_at = now
    user.last_login_at = now
    user.failed_logins = 0
    user.locked_until = None
    await db.flush()
    await audit.record(
        db, clock, actor, action, target_type="user", target_id=user.id, ip=sess.ip, details=details
    )


def totp_uri(username: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def totp_qr_svg(uri: str) -> str:
    """The otpauth:// URI as an inline SVG QR code (for the enrolment page)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff"))


def totp_qr_terminal(uri: str) -> str:
    """The otpauth:// URI as a QR code drawn with block characters, for a terminal."""
    import io

    out = io.StringIO()
    segno.make(uri, error="m").terminal(out=out, compact=True)
    return out.getvalue()


async def begin_totp_enrolment(db: AsyncSession, clock: Clock, user: User) -> tuple[str, str]:
    """Store a new pending TOTP secret (not yet enabled); return it and its otpauth:// URI."""
    if user.totp_enabled:
        raise Conflict(
            "An authenticator app is already set up for this account. An administrator can "
            "reset it."
        )
    secret = pyotp.random_base32()
    user.totp_secret = secret
    user.totp_last_step = None
    user.updated_at = clock.now()
    await db.flush()
    await audit.record(
        db,
        clock,
        f"user:{user.username}",
        "auth.mfa_enrolment_started",
        target_type="user",
        target_id=user.id,
    )
    return secret, totp_uri(user.username, secret)


async def confirm_totp_enrolment(
    db: AsyncSession, clock: Clock, sess: UserSession, code: str
) -> list[str]:
    """Check a code from the newly set-up app, enable TOTP, complete the session's log-in, and
    return ten one-time recovery codes (shown once; stored hashed)."""
    now = clock.now()
    _check_session_live(sess, now)
    user = await get_user(db, sess.user_id)
    if user.totp_enabled:
        raise Conflict("An authenticator app is already set up for this account.")
    if not user.totp_secret:
        raise Problem(
            "Start the set-up of an authenticator app first.",
            status=409,
            slug="enrolment-not-started",
        )
    step = _match_totp(user.totp_secret, (code or "").strip().replace(" ", ""), now)
    if step is None:
        raise InvalidInput(
            "That code does not match. Check that the authenticator app's clock is right and "
            "enter the 6-digit code it shows now."
        )
    user.totp_enabled = True
    user.totp_last_step = step
    user.updated_at = now
    user.last_login_at = now
    user.failed_logins = 0
    sess.mfa_verified = True
    sess.last_seen_at = now
    codes = await _replace_recovery_codes(db, user)
    await db.flush()
    await audit.record(
        db,
        clock,
        f"user:{user.username}",
        "auth.mfa_enrolled",
        target_type="user",
        target_id=user.id,
        ip=sess.ip,
        details={"session_id": sess.id, "recovery_codes": len(codes)},
    )
    return codes


async def enrol_totp_now(
    db: AsyncSession, clock: Clock, actor: Principal | str, user: User
) -> tuple[str, str, list[str]]:
    """Enrol TOTP directly (the CLI hands the QR code to the person): (secret, uri, codes)."""
    secret = pyotp.random_base32()
    user.totp_secret = secret
    user.totp_enabled = True
    user.totp_last_step = None
    user.updated_at = clock.now()
    codes = await _replace_recovery_codes(db, user)
    await db.flush()
    await audit.record(db, clock, actor, "user.mfa_enrolled", target_type="user", target_id=user.id)
    return secret, totp_uri(user.username, secret), codes


async def logout(db: AsyncSession, clock: Clock, sess: UserSession) -> None:
    if sess.revoked_at is None:
        sess.revoked_at = clock.now()
    user = await db.get(User, sess.user_id)
    await db.flush()
    await audit.record(
        db,
        clock,
        f"user:{user.username if user else sess.user_id}",
        "auth.logout",
        target_type="user",
        target_id=sess.user_id,
        ip=sess.ip,
        details={"session_id": sess.id},
    )
