"""Read-only queries behind the watch-floor console pages (queue, incident page, rules).

Scope is decided by Principal.scope (auth/principal.py); these functions only turn a Scope into
SQL through sites.service.scope_filter. Changes go through the domain services, never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.models import Alarm, AlarmRule, AlarmState
from watchfloor.auth.principal import Scope
from watchfloor.events.models import Event
from watchfloor.incidents.models import (
    Incident,
    IncidentStatus,
    TimelineEntry,
    UnitDispatch,
)
from watchfloor.sites.models import Device, Facility, ResponseUnit, Zone
from watchfloor.sites.service import scope_filter

PRIORITY_WORDS = {1: "Life safety", 2: "Intrusion", 3: "Trouble", 4: "Information"}
STATUS_LABELS = {
    IncidentStatus.NEW: "New — not acknowledged",
    IncidentStatus.ACKNOWLEDGED: "Acknowledged",
    IncidentStatus.DISPATCHED: "Units dispatched",
    IncidentStatus.ON_SCENE: "On scene",
    IncidentStatus.CONTAINED: "Contained",
    IncidentStatus.CLOSED: "Closed",
}
QUEUE_LIMIT = 500


@dataclass
class QueueRow:
    id: int
    priority: int
    title: str
    status: str
    opened_at: datetime
    last_alarm_at: datetime
    alarm_count: int
    facility_id: int
    region_id: int
    facility_code: str
    facility_name: str
    timezone: str
    zone: str = ""
    device: str = ""
    alarm_type: str = ""
    raised_by: str = ""
    cancelled_by_sender: bool = False

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)  # type: ignore[call-overload]

    @property
    def priority_word(self) -> str:
        return PRIORITY_WORDS.get(self.priority, "")


async def queue_rows(db: AsyncSession, scope: Scope, limit: int = QUEUE_LIMIT) -> list[QueueRow]:
    """Open incidents in scope, most urgent priority first, then oldest first."""
    rows = (
        await db.execute(
            select(Incident, Facility.region_id, Facility.code, Facility.name, Facility.timezone)
            .join(Facility, Facility.id == Incident.facility_id)
            .where(Incident.status != IncidentStatus.CLOSED, scope_filter(scope))
            .order_by(Incident.priority, Incident.opened_at, Incident.id)
            .limit(limit)
        )
    ).all()
    out = [
        QueueRow(
            id=inc.id,
            priority=inc.priority,
            title=inc.title,
            status=inc.status,
            opened_at=inc.opened_at,
            last_alarm_at=inc.last_alarm_at,
            alarm_count=inc.alarm_count,
            facility_id=inc.facility_id,
            region_id=region_id,
            facility_code=code,
            facility_name=name,
            timezone=tz,
        )
        for inc, region_id, code, name, tz in rows
    ]
    if not out:
        return out
    by_id = {r.id: r for r in out}
    # the most urgent (then latest) alarm of each incident names its zone, device and type
    alarms = (
        await db.execute(
            select(Alarm, Zone.name, Device.name, Event.source, Event.sender)
            .outerjoin(Zone, Zone.id == Alarm.zone_id)
            .outerjoin(Device, Device.id == Alarm.device_id)
            .outerjoin(Event, Event.id == Alarm.event_id)
            .where(Alarm.incident_id.in_(by_id))
            .order_by(Alarm.incident_id, Alarm.priority, Alarm.raised_at.desc(), Alarm.id.desc())
        )
    ).all()
    seen: set[int] = set()
    for alarm, zone_name, device_name, source, sender in alarms:
        row = by_id.get(alarm.incident_id or 0)
        if row is None:
            continue
        if alarm.state == AlarmState.CANCELLED_BY_SENDER:
            row.cancelled_by_sender = True
        if alarm.incident_id in seen:
            continue
        seen.add(alarm.incident_id or 0)
        row.zone = zone_name or ""
        row.device = device_name or ""
        row.alarm_type = alarm.type
        row.raised_by = raised_by(source, sender)
    return out


def raised_by(source: str | None, sender: str | None) -> str:
    """Who raised an alarm, when a person did (a staff panic from the web page or a phone)."""
    if source == "web" and sender and sender.startswith("user:"):
        return f"Raised by {sender.removeprefix('user:')} on the staff panic page"
    return ""


@dataclass
class IncidentView:
    incident: Incident
    facility: Facility
    alarms: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    units: list[ResponseUnit] = field(default_factory=list)


async def incident_view(db: AsyncSession, incident_id: int) -> IncidentView | None:
    incident = await db.get(Incident, incident_id)
    if incident is None:
        return None
    facility = await db.get(Facility, incident.facility_id)
    if facility is None:
        return None
    view = IncidentView(incident=incident, facility=facility)
    alarm_rows = (
        await db.execute(
            select(Alarm, Zone.name, Device.name, Device.code, Event.source, Event.sender)
            .outerjoin(Zone, Zone.id == Alarm.zone_id)
            .outerjoin(Device, Device.id == Alarm.device_id)
            .outerjoin(Event, Event.id == Alarm.event_id)
            .where(Alarm.incident_id == incident_id)
            .order_by(Alarm.raised_at.desc(), Alarm.id.desc())
        )
    ).all()
    view.alarms = [
        {
            "alarm": a,
            "zone": z or "",
            "device": d or "",
            "device_code": dc or "",
            "raised_by": raised_by(src, snd),
        }
        for a, z, d, dc, src, snd in alarm_rows
    ]
    view.timeline = list(
        (
            await db.execute(
                select(TimelineEntry)
                .where(TimelineEntry.incident_id == incident_id)
                .order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc())
                .limit(1000)
            )
        ).scalars()
    )
    disp = (
        await db.execute(
            select(UnitDispatch, ResponseUnit)
            .join(ResponseUnit, ResponseUnit.id == UnitDispatch.response_unit_id)
            .where(UnitDispatch.incident_id == incident_id)
            .order_by(UnitDispatch.notified_at, UnitDispatch.id)
        )
    ).all()
    view.dispatches = [{"dispatch": d, "unit": u} for d, u in disp]
    view.units = list(
        (
            await db.execute(
                select(ResponseUnit)
                .where(ResponseUnit.facility_id == facility.id)
                .order_by(ResponseUnit.kind, ResponseUnit.name)
            )
        ).scalars()
    )
    return view


async def effective_rules(
    db: AsyncSession, scope: Scope, facility_id: int | None
) -> list[tuple[AlarmRule, str]]:
    """Organisation rules and facility overrides in scope, as (rule, facility code or "")."""
    where: ColumnElement[bool] = AlarmRule.facility_id.is_(None)
    if facility_id is not None:
        where = or_(where, AlarmRule.facility_id == facility_id)
    else:
        where = or_(where, and_(AlarmRule.facility_id.is_not(None), scope_filter(scope)))
    rows = (
        await db.execute(
            select(AlarmRule, Facility.code)
            .outerjoin(Facility, Facility.id == AlarmRule.facility_id)
            .where(where)
            .order_by(AlarmRule.priority, AlarmRule.key, AlarmRule.facility_id.is_not(None))
        )
    ).all()
    return [(rule, code or "") for rule, code in rows]
