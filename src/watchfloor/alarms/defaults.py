"""The organisation-wide alarm rules and response-time targets every installation starts with.

`ensure_defaults` adds whichever of them are missing and never changes one that exists, so an
administrator's edits (a disabled rule, a stricter target) survive every restart and upgrade.
Default rules cannot be deleted, only disabled or overridden per facility: deleting one would
bring it back on the next start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.models import AlarmRule, Priority
from watchfloor.clock import Clock
from watchfloor.incidents.models import ResponseTarget


@dataclass(frozen=True)
class DefaultRule:
    key: str
    name: str
    event_type: str
    alarm_type: str
    priority: int
    conditions: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True


DEFAULT_RULES: tuple[DefaultRule, ...] = (
    DefaultRule("panic", "Panic", "panic.pressed", "panic", Priority.P1),
    DefaultRule("duress", "Duress", "duress.code", "duress", Priority.P1),
    DefaultRule("weapon", "Weapon detected", "weapon.detected", "weapon", Priority.P1),
    DefaultRule("needs_help", "Person needs help", "person.needs_help", "needs_help", Priority.P1),
    # a door that will not lock during a lockdown is a P1 trouble: someone must go and secure it
    DefaultRule(
        "lock_failed", "Door failed to lock", "door.lock_failed", "lock_failed", Priority.P1
    ),
    DefaultRule("door_forced", "Door forced", "door.forced", "door_forced", Priority.P2),
    DefaultRule("glass_break", "Glass break", "glass.break", "glass_break", Priority.P2),
    DefaultRule(
        "intrusion",
        "Motion after hours",
        "motion.detected",
        "intrusion",
        Priority.P2,
        {"schedule": "outside_hours"},
    ),
    DefaultRule("door_held_open", "Door held open", "door.held_open", "door_held_open", 3),
    DefaultRule("door_tamper", "Door tamper", "door.tamper", "tamper", Priority.P3),
    DefaultRule("device_trouble", "Device trouble", "device.trouble", "device_trouble", 3),
    DefaultRule("device_offline", "Device offline", "device.offline", "device_offline", 3),
    DefaultRule(
        "access_denied_repeated",
        "Repeated access denied",
        "reader.access_denied",
        "access_denied",
        Priority.P3,
        {"count": 5, "window_seconds": 60},
    ),
    # A facility's scheduled end-to-end test signal was not processed in time (events/test_signal)
    DefaultRule(
        "test_signal_missing",
        "Test signal missing",
        "test.signal_missing",
        "test_signal_missing",
        Priority.P3,
    ),
    # Off by default: during opening hours every passer-by would raise one. Enable it (or
    # override it per facility with a zone or schedule condition) where a person in view matters.
    DefaultRule(
        "person_detected",
        "Person detected",
        "person.detected",
        "person_detected",
        Priority.P4,
        enabled=False,
    ),
)
DEFAULT_RULE_KEYS = frozenset(r.key for r in DEFAULT_RULES)

# Life-safety rules stay on and stay P1 everywhere: they may be given attribute conditions (e.g. a
# weapon detector's minimum confidence) but no schedule, zone or count that could silence them.
LIFE_SAFETY_KEYS = frozenset({"panic", "duress", "weapon", "needs_help"})
LIFE_SAFETY_CONDITIONS = frozenset({"attributes"})

# device.restored raises no alarm: it clears the device's active alarms of these types.
CLEARED_BY_RESTORE = frozenset({"device_offline", "device_trouble"})


@dataclass(frozen=True)
class DefaultTarget:
    priority: int
    measure: str  # acknowledge | dispatch | on_scene
    seconds: int
    percent: int


DEFAULT_TARGETS: tuple[DefaultTarget, ...] = (
    DefaultTarget(1, "acknowledge", 15, 95),
    DefaultTarget(1, "dispatch", 60, 95),
    DefaultTarget(1, "on_scene", 600, 90),
    DefaultTarget(2, "acknowledge", 60, 95),
    DefaultTarget(2, "dispatch", 300, 90),
    DefaultTarget(2, "on_scene", 900, 90),
    DefaultTarget(3, "acknowledge", 300, 90),
    DefaultTarget(4, "acknowledge", 3600, 80),
)


async def ensure_defaults(db: AsyncSession, clock: Clock) -> dict[str, int]:
    """Add the default rules and targets that are missing (idempotent; the caller commits).

    Returns how many of each were added. On PostgreSQL a transaction-scoped advisory lock keeps
    two processes starting at once from both adding the same organisation rule (a NULL
    facility_id does not take part in the unique constraint there)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
    now = clock.now()
    have = set(
        (await db.scalars(select(AlarmRule.key).where(AlarmRule.facility_id.is_(None)))).all()
    )
    added_rules = 0
    for rule in DEFAULT_RULES:
        if rule.key in have:
            continue
        db.add(
            AlarmRule(
                facility_id=None,
                key=rule.key,
                name=rule.name,
                event_type=rule.event_type,
                conditions=dict(rule.conditions),
                alarm_type=rule.alarm_type,
                priority=int(rule.priority),
                enabled=rule.enabled,
                created_at=now,
                updated_at=now,
            )
        )
        added_rules += 1
    targets = {
        (p, m)
        for p, m in (await db.execute(select(ResponseTarget.priority, ResponseTarget.measure)))
    }
    added_targets = 0
    for target in DEFAULT_TARGETS:
        if (target.priority, target.measure) in targets:
            continue
        db.add(
            ResponseTarget(
                priority=target.priority,
                measure=target.measure,
                seconds=target.seconds,
                percent=target.percent,
            )
        )
        added_targets += 1
    await db.flush()
    return {"rules": added_rules, "targets": added_targets}
