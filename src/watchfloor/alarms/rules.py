"""Rule evaluation: which rules apply to an event, and whether their conditions hold.

Pure functions where possible (zone, schedule, attributes); `effective_rules` and `count_reached`
read the database. Life safety first: a P1 rule ignores count windows and has no dedupe, so no
condition meant to calm a noisy sensor can ever silence a panic, duress or weapon alarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.models import Alarm, AlarmRule, Priority
from watchfloor.clock import as_utc
from watchfloor.events.models import Event

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


async def effective_rules(
    db: AsyncSession, facility_id: int, event_type: str | None = None
) -> list[AlarmRule]:
    """The rules in force at a facility: organisation rules, each replaced by the facility's
    rule with the same key (a disabled override switches the rule off there). Only enabled
    rules are returned; with `event_type`, only those for that type."""
    rows = (
        await db.scalars(
            select(AlarmRule)
            .where(or_(AlarmRule.facility_id.is_(None), AlarmRule.facility_id == facility_id))
            .order_by(AlarmRule.priority, AlarmRule.key)
        )
    ).all()
    by_key: dict[str, AlarmRule] = {}
    for rule in rows:
        if rule.facility_id is None:
            by_key.setdefault(rule.key, rule)
        else:
            by_key[rule.key] = rule  # the override wins
    return [
        r
        for r in sorted(by_key.values(), key=lambda r: (r.priority, r.key))
        if r.enabled and (event_type is None or r.event_type == event_type)
    ]


def zone_matches(
    conditions: Mapping[str, Any], zone_code: str | None, zone_kind: str | None
) -> bool:
    zones = conditions.get("zones")
    if zones and zone_code not in zones:
        return False
    kinds = conditions.get("zone_kinds")
    return not (kinds and zone_kind not in kinds)


def _parse_hhmm(value: str) -> time | None:
    """'08:00' → 08:00; '24:00' → None (the end of the day)."""
    if value == "24:00":
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _within(day_hours: Sequence[str] | None, local: time, *, next_day: bool) -> bool:
    """Is `local` inside the day's opening hours? With next_day, only the part of an overnight
    span (e.g. 22:00-06:00) that runs past midnight counts."""
    if not day_hours or len(day_hours) != 2:
        return False
    opens, closes = _parse_hhmm(day_hours[0]), _parse_hhmm(day_hours[1])
    if opens is None:
        return False
    overnight = closes is not None and closes <= opens
    if next_day:
        return overnight and closes is not None and local < closes
    if overnight:
        return local >= opens
    return local >= opens and (closes is None or local < closes)


def facility_zone(tz_name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_open(operating_hours: Mapping[str, Any] | None, tz_name: str | None, when: datetime) -> bool:
    """Is the facility open at `when` (any aware datetime), by its hours in its own time zone?

    Hours are {"mon": ["08:00", "18:00"], ..., "sun": null} in local time; a day that is null
    or missing is closed; closing at or before opening runs past midnight; "24:00" closes at
    midnight. A facility with no hours at all is open around the clock."""
    if not operating_hours:
        return True
    local = as_utc(when).astimezone(facility_zone(tz_name))
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    clock_time = local.time().replace(tzinfo=None)
    return _within(operating_hours.get(today), clock_time, next_day=False) or _within(
        operating_hours.get(yesterday), clock_time, next_day=True
    )


def schedule_matches(
    conditions: Mapping[str, Any],
    operating_hours: Mapping[str, Any] | None,
    tz_name: str | None,
    when: datetime,
) -> bool:
    schedule = conditions.get("schedule") or "always"
    if schedule == "always":
        return True
    open_now = is_open(operating_hours, tz_name, when)
    return not open_now if schedule == "outside_hours" else open_now


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def attributes_match(conditions: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """`x_min` / `x_max`: the attribute x is a number >= / <= the threshold; other names must
    equal the event's attribute. A missing attribute fails its condition."""
    for key, expected in (conditions.get("attributes") or {}).items():
        if key.endswith(("_min", "_max")):
            actual = _number(attributes.get(key[:-4]))
            threshold = _number(expected)
            if actual is None or threshold is None:
                return False
            if key.endswith("_min") and actual < threshold:
                return False
            if key.endswith("_max") and actual > threshold:
                return False
        elif attributes.get(key) != expected:
            return False
    return True


def uses_count(rule: AlarmRule) -> bool:
    """Does this rule's count window apply? Never for P1 (documented in RuleConditions)."""
    cond = rule.conditions or {}
    return (
        rule.priority != Priority.P1
        and bool(cond.get("count"))
        and bool(cond.get("window_seconds"))
    )


async def count_reached(
    db: AsyncSession,
    rule: AlarmRule,
    *,
    facility_id: int,
    device_id: int | None,
    event_id: int | None,
    occurred_at: datetime,
) -> bool:
    """Have `count` events of the rule's type come from the device (or, without a device, the
    facility) within the window ending at this event, with no alarm of this rule for it raised
    within the window already? Events are counted by their occurred_at."""
    cond = rule.conditions or {}
    count, window = int(cond["count"]), timedelta(seconds=int(cond["window_seconds"]))
    start = occurred_at - window
    where = [
        Event.facility_id == facility_id,
        Event.type == rule.event_type,
        Event.occurred_at > start,
        Event.occurred_at <= occurred_at,
    ]
    where.append(
        Event.device_id == device_id if device_id is not None else Event.device_id.is_(None)
    )
    if event_id is not None:
        where.append(Event.id <= event_id)
    seen = await db.scalar(select(func.count()).select_from(Event).where(*where))
    if (seen or 0) < count:
        return False
    recent = (
        select(Alarm.id)
        .join(Event, Event.id == Alarm.event_id)
        .where(
            Alarm.facility_id == facility_id,
            Alarm.rule_key == rule.key,
            Alarm.device_id == device_id if device_id is not None else Alarm.device_id.is_(None),
            Event.occurred_at > start,
        )
    )
    return (await db.scalar(recent.limit(1))) is None
