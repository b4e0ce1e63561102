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
    DEVICE = "device"  # a device or integration that only reports events


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
    EVENTS_INGEST = "events:ingest"  # report device events (HTTP, MQTT bridges)
    ESCALATION_MANAGE = "escalation:manage"  # edit escalation policies (defaults need org scope)
    PANIC_RAISE = "panic:raise"  # a person raises a silent panic alarm where they are
    ALARMS_READ = "alarms:read"  # alarm queue, incidents, alarm rules, response-time reports
    INCIDENTS_MANAGE = "incidents:manage"  # acknowledge, dispatch, contain, close, add notes
    RULES_WRITE = "alarm_rules:write"  # alarm rules (organisation rules need org scope)
    LOCKDOWN_START = "lockdown:start"  # lock down a facility, zone or region (and drills)
    LOCKDOWN_LIFT = "lockdown:lift"  # lift a lockdown (or approve another person's lift)
    NOTIFY_SEND = "notify:send"  # compose and send alerts (and test alerts)
    NOTIFY_READ = "notify:read"  # alerts, delivery dashboard, who has not acknowledged
    ROLLCALL_READ = "rollcall:read"  # roll-call boards and their exports
    ROLLCALL_MANAGE = "rollcall:manage"  # start / close a roll call, answer for a person
    ASSESSMENTS_READ = "assessments:read"  # facility assessments, FSL, findings, their reports
    ASSESSMENTS_WRITE = "assessments:write"  # conduct assessments, record and close findings
    PROGRAMME_READ = "programme:read"  # directives, rollout board, preparedness scorecards
    DIRECTIVES_MANAGE = "directives:manage"  # issue directives, approve waivers (org-wide work)
    ROLLOUT_UPDATE = "rollout:update"  # move a facility's rollout tasks along
    DRILLS_READ = "drills:read"  # drill schedules, runs, after-action reports, drill compliance
    DRILLS_MANAGE = "drills:manage"  # schedule and run drills, record participation, write AARs
    TRAINING_READ = "training:read"  # training records, overdue lists, vetting expiry (personal)
    TRAINING_MANAGE = "training:manage"  # courses, requirements, completions, LMS imports


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.PROGRAMME_MANAGER: frozenset(
        {
            Perm.SITES_READ,
            Perm.PEOPLE_READ,
            Perm.AUDIT_READ,
            Perm.ORG_IMPORT,
            Perm.ALARMS_READ,
            Perm.NOTIFY_READ,
            Perm.ROLLCALL_READ,
            Perm.ASSESSMENTS_READ,
            Perm.ASSESSMENTS_WRITE,
            Perm.PROGRAMME_READ,
            Perm.DIRECTIVES_MANAGE,
            Perm.ROLLOUT_UPDATE,
            Perm.DRILLS_READ,
            Perm.DRILLS_MANAGE,
            Perm.TRAINING_READ,
            Perm.TRAINING_MANAGE,
        }
    ),
    Role.OPERATOR: frozenset(
        {
            Perm.SITES_READ,
            Perm.PEOPLE_READ,
            Perm.ALARMS_READ,
            Perm.INCIDENTS_MANAGE,
            Perm.LOCKDOWN_START,
            Perm.NOTIFY_SEND,
            Perm.NOTIFY_READ,
            Perm.ROLLCALL_READ,
            Perm.ROLLCALL_MANAGE,
            Perm.DRILLS_READ,
        }
    ),
    Role.FACILITY_MANAGER: frozenset(
        {
            Perm.SITES_READ,
            Perm.SITES_WRITE,
            Perm.PEOPLE_READ,
            Perm.PEOPLE_WRITE,
            Perm.TOKENS_MANAGE,
            Perm.EVENTS_INGEST,
            Perm.ESCALATION_MANAGE,
            Perm.ALARMS_READ,
            Perm.INCIDENTS_MANAGE,
            Perm.RULES_WRITE,
            Perm.LOCKDOWN_START,
            Perm.LOCKDOWN_LIFT,
            Perm.NOTIFY_SEND,
            Perm.NOTIFY_READ,
            Perm.ROLLCALL_READ,
            Perm.ROLLCALL_MANAGE,
            Perm.ASSESSMENTS_READ,
            Perm.ASSESSMENTS_WRITE,
            Perm.PROGRAMME_READ,
            Perm.ROLLOUT_UPDATE,
            Perm.DRILLS_READ,
            Perm.DRILLS_MANAGE,
            Perm.TRAINING_READ,
            Perm.TRAINING_MANAGE,
        }
    ),
    Role.GUARD: frozenset(
        {
            Perm.SITES_READ,
            Perm.PEOPLE_READ,
            Perm.ALARMS_READ,
            Perm.INCIDENTS_MANAGE,
            Perm.LOCKDOWN_START,
            Perm.ROLLCALL_READ,
            Perm.ROLLCALL_MANAGE,
        }
    ),
    Role.STAFF: frozenset(),
    Role.RESPONDER: frozenset({Perm.SITES_READ}),
    Role.THREAT_ASSESSOR: frozenset({Perm.SITES_READ}),
    Role.DEVICE: frozenset({Perm.EVENTS_INGEST}),
}

# Every person, whatever their role, can raise a panic alarm where they are granted (devices are
# not people: a device reports panic.pressed events itself).
for _role in ROLE_PERMS:
    if _role is not Role.DEVICE:
        ROLE_PERMS[_role] = ROLE_PERMS[_role] | {Perm.PANIC_RAISE}

ROLE_LABELS: dict[Role, str] = {
    Role.ADMIN: "Administrator",
    Role.PROGRAMME_MANAGER: "Programme manager",
    Role.OPERATOR: "Watch-floor operator",
    Role.FACILITY_MANAGER: "Facility security manager",
    Role.GUARD: "Guard",
    Role.STAFF: "Staff",
    Role.RESPONDER: "Responder",
    Role.THREAT_ASSESSOR: "Threat assessor",
    Role.DEVICE: "Device or integration",
}
