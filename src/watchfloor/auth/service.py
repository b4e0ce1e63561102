"""Accounts, passwords, role grants and API tokens."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.models import ApiToken, RoleGrant, User
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Role, ScopeKind
from watchfloor.auth.tokens import hash_secret, new_secret
from watchfloor.clock import Clock
from watchfloor.problems import InvalidInput
from watchfloor.sites import service as sites

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


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


async def create_token(
    db: AsyncSession,
    clock: Clock,
    actor: Principal | str,
    *,
    name: str,
    role: Role | str,
    scope: ScopeSpec,
) -> tuple[ApiToken, str]:
    """Create an API token; returns the row and the secret, which is shown once and never stored."""
    if not name.strip():
        raise InvalidInput("A token needs a name that says what uses it, e.g. 'door-feed-DAL'.")
    secret = new_secret()
    grant = await make_grant(db, clock, role, scope)
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
            "role": grant.role,
            "scope": scope.kind.value,
            "code": scope.code,
        },
    )
    return token, secret


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
    if len(password) < 12:
        raise InvalidInput("Passwords need at least 12 characters.")
    now = clock.now()
    user = User(
        username=username.strip().lower(),
        display_name=display_name,
        email=email,
        password_hash=hash_password(password),
        totp_secret=totp_secret,
        totp_enabled=totp_secret is not None,
        created_at=now,
        updated_at=now,
    )
    for role, spec in grants or []:
        user.grants.append(await make_grant(db, clock, role, spec))
    db.add(user)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "user.create",
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "grants": [[g.role, g.scope] for g in user.grants]},
    )
    return user
