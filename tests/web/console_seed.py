"""Incidents, alarms and dead letters for the console tests (rows written as the services would)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.models import Alarm, AlarmState
from watchfloor.clock import Clock
from watchfloor.events.models import DeadLetter
from watchfloor.events.service import storable_text
from watchfloor.incidents.models import Incident, TimelineEntry
from watchfloor.sites.models import Device, Facility


async def add_incident(
    db: AsyncSession,
    clock: Clock,
    facility_code: str,
    priority: int,
    title: str,
    *,
    age_seconds: int = 0,
    status: str = "new",
    device_code: str | None = None,
    alarm_state: str = AlarmState.ACTIVE,
) -> Incident:
    facility = (
        await db.execute(select(Facility).where(Facility.code == facility_code))
    ).scalar_one()
    device = None
    if device_code:
        device = (
            await db.execute(
                select(Device).where(Device.facility_id == facility.id, Device.code == device_code)
            )
        ).scalar_one()
    at = clock.now() - timedelta(seconds=age_seconds)
    incident = Incident(
        facility_id=facility.id,
        title=title,
        priority=priority,
        status=status,
        opened_at=at,
        last_alarm_at=at,
        alarm_count=1,
        escalation={},
        closed_at=at if status == "closed" else None,
    )
    db.add(incident)
    await db.flush()
    db.add(
        Alarm(
            facility_id=facility.id,
            zone_id=device.zone_id if device else None,
            device_id=device.id if device else None,
            rule_key="test",
            type="panic" if priority == 1 else "intrusion",
            priority=priority,
            title=title,
            state=alarm_state,
            raised_at=at,
            incident_id=incident.id,
            attributes={},
        )
    )
    db.add(
        TimelineEntry(
            incident_id=incident.id, at=at, kind="alarm", actor="system", text=f"Alarm: {title}"
        )
    )
    await db.flush()
    return incident


async def add_dead_letter(
    db: AsyncSession, clock: Clock, raw: str, reason: str, facility_code: str | None
) -> DeadLetter:
    facility_id = None
    if facility_code:
        facility_id = (
            await db.execute(select(Facility.id).where(Facility.code == facility_code))
        ).scalar_one()
    letter = DeadLetter(
        received_at=clock.now(),
        source="http",
        facility_id=facility_id,
        channel="/api/v1/events",
        sender="token:door-feed",
        raw=storable_text(raw),  # as the events service keeps it (no NUL on PostgreSQL)
        reason=reason,
    )
    db.add(letter)
    await db.flush()
    return letter
