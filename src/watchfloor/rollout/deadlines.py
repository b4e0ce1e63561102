"""Directive deadline arithmetic and the status of a task at a moment.

Every instant is stored and compared in UTC. The kinds, relative to the directive's issue time:

- ``immediate``: 24 elapsed hours;
- ``72h``: 72 elapsed hours (a DST change in between does not matter: hours are hours);
- ``2w``: 14 calendar days and ``30d``: 30 calendar days, on the facility's own wall clock: a
  directive issued at 09:00 in Chicago is due at 09:00 Chicago time 14 days later, which is 14×24
  hours ± 1 when a DST change falls in between;
- ``3m``: 3 calendar months on the facility's wall clock (31 January + 3 months = 30 April;
  a day past the month's end is clamped to its last day);
- ``continuous``: no due date; reviewed every ``review_days``.

A local time that does not exist (the spring-forward gap) or is ambiguous (fall back) is resolved
by Python's zoneinfo with ``fold=0``: the earlier offset.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchfloor.rollout.models import DeadlineKind, TaskState, TaskStatus

DEADLINE_LABELS: dict[str, str] = {
    DeadlineKind.IMMEDIATE: "Immediate (24 hours)",
    DeadlineKind.HOURS_72: "72 hours",
    DeadlineKind.WEEKS_2: "2 weeks",
    DeadlineKind.DAYS_30: "30 days",
    DeadlineKind.MONTHS_3: "3 months",
    DeadlineKind.CONTINUOUS: "Continuous",
}
STATUS_LABELS: dict[str, str] = {
    TaskStatus.LATE: "Late",
    TaskStatus.DUE_SOON: "Due soon",
    TaskStatus.ON_TRACK: "On track",
    TaskStatus.DONE: "Done",
    TaskStatus.WAIVED: "Waived",
}
STATE_LABELS: dict[str, str] = {
    TaskState.PLANNED: "Planned",
    TaskState.IN_PROGRESS: "In progress",
    TaskState.DONE: "Done",
    TaskState.WAIVED: "Waived",
}
#: the board's order: what needs attention first
STATUS_ORDER = [
    TaskStatus.LATE,
    TaskStatus.DUE_SOON,
    TaskStatus.ON_TRACK,
    TaskStatus.DONE,
    TaskStatus.WAIVED,
]


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def add_months(local: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months later (day clamped to the month's end)."""
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def due_at(kind: str, issued_at: datetime, tz: str = "UTC") -> datetime | None:
    """When a measure with this deadline kind is due, for a directive issued at `issued_at`
    (UTC-aware) at a facility in time zone `tz`. None for continuous measures."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware (UTC)")
    issued = issued_at.astimezone(UTC)
    if kind == DeadlineKind.IMMEDIATE:
        return issued + timedelta(hours=24)
    if kind == DeadlineKind.HOURS_72:
        return issued + timedelta(hours=72)
    if kind == DeadlineKind.CONTINUOUS:
        return None
    # calendar arithmetic on the facility's wall clock, then back to UTC
    info = zone(tz)
    local = issued.astimezone(info).replace(tzinfo=None)
    if kind == DeadlineKind.WEEKS_2:
        target = local + timedelta(days=14)
    elif kind == DeadlineKind.DAYS_30:
        target = local + timedelta(days=30)
    elif kind == DeadlineKind.MONTHS_3:
        target = add_months(local, 3)
    else:
        raise ValueError(f"unknown deadline kind '{kind}'")
    return target.replace(tzinfo=info).astimezone(UTC)


def status_of(state: str, due: datetime | None, now: datetime, due_soon: timedelta) -> TaskStatus:
    """done / waived by state; otherwise late once `now` is past the due time (strictly after),
    due soon when the due time is at most `due_soon` away, on track otherwise (and always for
    continuous measures, which have no due time)."""
    if state == TaskState.DONE:
        return TaskStatus.DONE
    if state == TaskState.WAIVED:
        return TaskStatus.WAIVED
    if due is None:
        return TaskStatus.ON_TRACK
    if now > due:
        return TaskStatus.LATE
    if due - now <= due_soon:
        return TaskStatus.DUE_SOON
    return TaskStatus.ON_TRACK


def local_display(value: datetime | None, tz: str) -> str:
    """'2026-12-01 09:00 CST' in the facility's time zone ('—' for none)."""
    if value is None:
        return "—"
    return value.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M %Z")
