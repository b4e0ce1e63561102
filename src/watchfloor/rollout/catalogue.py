"""The countermeasure catalogue seeded by migration 0006: the measures of the overhaul.

Each entry: code, name, assessment area (assessments.models.Area), standard deadline relative to a
directive (DeadlineKind), review interval in days for continuous measures, and a description.
Migration 0006 copies this list as it stood then; edits here do not rewrite existing databases.
"""

from __future__ import annotations

from typing import Any

SEED: list[dict[str, Any]] = [
    {
        "code": "ARMED-OFFICERS",
        "name": "Armed officers on site around the clock",
        "area": "perimeter",
        "deadline": "72h",
        "description": "Armed, qualified security officers present at every public entrance "
        "24 hours a day, 7 days a week.",
    },
    {
        "code": "ACCESS-MFA",
        "name": "Biometric and multi-factor access control",
        "area": "access_control",
        "deadline": "immediate",
        "description": "Staff doors open only on two factors (badge plus PIN or biometric); "
        "shared and lost badges revoked.",
    },
    {
        "code": "VISITOR-SCREENING",
        "name": "Visitor pre-registration and screening",
        "area": "access_control",
        "deadline": "immediate",
        "description": "Every visitor pre-registered by a host, identity checked and escorted.",
    },
    {
        "code": "MASS-NOTIFY",
        "name": "Mass notification",
        "area": "interagency",
        "deadline": "72h",
        "description": "Every person on site reachable by alert within a minute (SMS, e-mail, "
        "public address), tested.",
    },
    {
        "code": "PANIC-BUTTONS",
        "name": "Panic buttons and silent alarms",
        "area": "alarms",
        "deadline": "2w",
        "description": "Fixed and mobile panic buttons at reception, interview rooms and "
        "screening, reporting silently to the watch floor.",
    },
    {
        "code": "HD-CAMERAS",
        "name": "HD cameras with analytics",
        "area": "surveillance",
        "deadline": "2w",
        "description": "High-definition cameras covering entrances, lobbies and perimeter, with "
        "analytics that raise events to the watch floor.",
    },
    {
        "code": "MOTION-SENSORS",
        "name": "Motion sensors",
        "area": "surveillance",
        "deadline": "2w",
        "description": "Motion sensors on the perimeter and in secure areas, armed out of hours.",
    },
    {
        "code": "SCREENING-XRAY",
        "name": "Magnetometers and x-ray screening",
        "area": "screening",
        "deadline": "30d",
        "description": "Walk-through magnetometers and x-ray of bags at every public entrance.",
    },
    {
        "code": "LOCKDOWN",
        "name": "Lockdown capability",
        "area": "lockdown",
        "deadline": "30d",
        "description": "Every exterior and interior door that matters locks from the console in "
        "seconds, with confirmation per door.",
    },
    {
        "code": "ASSESSMENT",
        "name": "Facility security assessment",
        "area": "emergency_plans",
        "deadline": "30d",
        "description": "A full security assessment of the facility with its security level.",
    },
    {
        "code": "THREAT-REPORTING",
        "name": "Confidential threat reporting",
        "area": "support",
        "deadline": "30d",
        "description": "Staff can report concerns confidentially; reports reach the threat "
        "assessment team.",
    },
    {
        "code": "LE-PARTNERSHIP",
        "name": "Law-enforcement partnership agreements",
        "area": "interagency",
        "deadline": "3m",
        "description": "A written agreement with local police and EMS: response, joint "
        "exercises, a named liaison.",
    },
    {
        "code": "MENTAL-HEALTH",
        "name": "Mental-health support",
        "area": "support",
        "deadline": "3m",
        "description": "Counselling available to staff, and post-incident support arranged in "
        "advance.",
    },
    {
        "code": "DRILLS-QUARTERLY",
        "name": "Quarterly active-shooter drills",
        "area": "training",
        "deadline": "continuous",
        "review_days": 90,
        "description": "An active-shooter drill every quarter, with an after-action report.",
    },
    {
        "code": "DEESCALATION",
        "name": "De-escalation training",
        "area": "training",
        "deadline": "continuous",
        "review_days": 365,
        "description": "Every front-line person trained in de-escalation, refreshed yearly.",
    },
]
