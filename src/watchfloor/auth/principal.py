"""Who is calling, what they were granted, and the one place scope is decided."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchfloor.auth.roles import ROLE_PERMS, Perm, Role, ScopeKind
from watchfloor.problems import Forbidden


@dataclass(frozen=True)
class Grant:
    role: Role
    scope: ScopeKind
    region_id: int | None = None
    facility_id: int | None = None

    def covers(self, facility_id: int | None, region_id: int | None) -> bool:
        if self.scope is ScopeKind.ORG:
            return True
        if self.scope is ScopeKind.REGION:
            return region_id is not None and region_id == self.region_id
        return facility_id is not None and facility_id == self.facility_id


@dataclass(frozen=True)
class Scope:
    """The facilities a principal may touch for one permission: everything, or these ids."""

    everything: bool
    facility_ids: frozenset[int] = frozenset()
    region_ids: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.everything and not self.facility_ids and not self.region_ids


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "token"
    id: int
    name: str
    grants: tuple[Grant, ...]
    ip: str | None = None
    session_id: int | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    def roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    def has_perm_anywhere(self, perm: Perm) -> bool:
        return any(perm in ROLE_PERMS[g.role] for g in self.grants)

    def allows(self, perm: Perm, *, facility_id: int | None, region_id: int | None) -> bool:
        """May this principal use `perm` on the facility (or region, with facility_id None)?"""
        return any(
            perm in ROLE_PERMS[g.role] and g.covers(facility_id, region_id) for g in self.grants
        )

    def allows_org(self, perm: Perm) -> bool:
        return any(perm in ROLE_PERMS[g.role] and g.scope is ScopeKind.ORG for g in self.grants)

    def scope(self, perm: Perm) -> Scope:
        grants = [g for g in self.grants if perm in ROLE_PERMS[g.role]]
        if any(g.scope is ScopeKind.ORG for g in grants):
            return Scope(everything=True)
        return Scope(
            everything=False,
            facility_ids=frozenset(g.facility_id for g in grants if g.facility_id is not None),
            region_ids=frozenset(
                g.region_id
                for g in grants
                if g.scope is ScopeKind.REGION and g.region_id is not None
            ),
        )

    def require(self, perm: Perm, *, facility_id: int | None, region_id: int | None) -> None:
        if not self.allows(perm, facility_id=facility_id, region_id=region_id):
            raise Forbidden(f"Your roles do not allow '{perm}' here. Ask an administrator.")

    def require_org(self, perm: Perm) -> None:
        if not self.allows_org(perm):
            raise Forbidden(
                f"'{perm}' across the whole organisation needs an organisation-wide role."
            )

    def require_anywhere(self, perm: Perm) -> None:
        if not self.has_perm_anywhere(perm):
            raise Forbidden(f"Your roles do not include '{perm}'. Ask an administrator.")


SYSTEM = Principal(kind="system", id=0, name="cli", grants=(Grant(Role.ADMIN, ScopeKind.ORG),))
