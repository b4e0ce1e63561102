"""Roles, what each may do, and the scopes a role is granted for.

A grant is (role, scope): scope is the whole organisation, one region, or one facility.
A permission is allowed on a facility when some grant's role carries it and the grant's scope
covers the facility (org covers all; a region covers its facilities; a facility covers itself).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PROGRAMME_MANAGER = "programme_manager"
    OPERATOR = "operator"
    FACILITY_MANAGER = "facility_manager"
    GUARD = "guard"
    STAFF = "staff"
    RESPONDER = "responder"
    THREAT_ASSESSOR = "threat_assessor"


class ScopeKind(StrEnum):
    ORG = "org"
    REGION = "region"
    FACILITY = "facility"


class Perm(StrEnum):
    SITES_READ = "sites:read"  # facilities, zones, devices, response units
    SITES_WRITE = "sites:write"
    PEOPLE_READ = "people:read"  # staff records and their contact channels
    PEOPLE_WRITE = "people:write"
    USERS_MANAGE = "users:manage"  # accounts and role grants
    TOKENS_MANAGE = "tokens:manage"  # API tokens for devices and integrations
    AUDIT_READ = "audit:read"
    ORG_IMPORT = "org:import"  # bulk import / export of the organisation


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.PROGRAMME_MANAGER: frozenset(
        {Perm.SITES_READ, Perm.PEOPLE_READ, Perm.AUDIT_READ, Perm.ORG_IMPORT}
    ),
    Role.OPERATOR: frozenset({Perm.SITES_READ, Perm.PEOPLE_READ}),
    Role.FACILITY_MANAGER: frozenset(
        {Perm.SITES_READ, Perm.SITES_WRITE, Perm.PEOPLE_READ, Perm.PEOPLE_WRITE, Perm.TOKENS_MANAGE}
    ),
    Role.GUARD: frozenset({Perm.SITES_READ, Perm.PEOPLE_READ}),
    Role.STAFF: frozenset(),
    Role.RESPONDER: frozenset({Perm.SITES_READ}),
    Role.THREAT_ASSESSOR: frozenset({Perm.SITES_READ}),
}

ROLE_LABELS: dict[Role, str] = {
    Role.ADMIN: "Administrator",
    Role.PROGRAMME_MANAGER: "Programme manager",
    Role.OPERATOR: "Watch-floor operator",
    Role.FACILITY_MANAGER: "Facility security manager",
    Role.GUARD: "Guard",
    Role.STAFF: "Staff",
    Role.RESPONDER: "Responder",
    Role.THREAT_ASSESSOR: "Threat assessor",
}
