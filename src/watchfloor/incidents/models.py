"""Incidents, their timelines, escalation (policies, timers), dispatch of units, and targets."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.bus.models import BigId
from watchfloor.db import Base


class IncidentStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    CONTAINED = "contained"
    CLOSED = "closed"


class Disposition(StrEnum):
    REAL = "real"
    FALSE_ALARM = "false_alarm"  # needs a cause
    DRILL = "drill"
    TEST = "test"


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    priority: Mapped[int] = mapped_column(Integer, index=True)  # the most urgent alarm's
    status: Mapped[str] = mapped_column(String(20), default=IncidentStatus.NEW, index=True)
    opened_at: Mapped[datetime] = mapped_column(index=True)
    last_alarm_at: Mapped[datetime]
    alarm_count: Mapped[int] = mapped_column(Integer, default=0)
    # when the incident last needed a person: opened, or re-opened by a P1 or more urgent alarm
    # (time to acknowledge is measured from here)
    attention_at: Mapped[datetime | None]
    # when the incident reached its current priority (time to dispatch / on scene count from here)
    priority_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(160))
    dispatched_at: Mapped[datetime | None]
    on_scene_at: Mapped[datetime | None]
    contained_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(160))
    disposition: Mapped[str | None] = mapped_column(String(20))
    disposition_cause: Mapped[str | None] = mapped_column(Text)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    # the escalation policy as it was when the incident opened: later edits never change it
    escalation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TimelineEntry(Base):
    __tablename__ = "incident_timeline"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    # event | alarm | status | note | escalation | notification | dispatch | system
    kind: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(160), default="system")
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EscalationPolicy(Base):
    """Per priority (optionally per facility): ordered steps, each after N seconds unacknowledged.

    steps: [{"after_seconds": 0, "target": "watch_floor"},
            {"after_seconds": 30, "target": "supervisor"},
            {"after_seconds": 60, "target": "facility_manager"}]
    repeat: how many times the whole chain runs again while still unacknowledged.
    """

    __tablename__ = "escalation_policies"
    __table_args__ = (UniqueConstraint("facility_id", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    priority: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class EscalationTimer(Base):
    """The next escalation step of an incident, persisted so it survives a restart."""

    __tablename__ = "escalation_timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    step_index: Mapped[int] = mapped_column(Integer)  # position in the flattened chain
    due_at: Mapped[datetime] = mapped_column(index=True)
    fired_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


class NotificationRequest(Base):
    """A request to notify a target, written through the outbox; the notify domain delivers it."""

    __tablename__ = "notification_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    step_index: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(80))  # watch_floor | supervisor | role | unit:CODE
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="requested")
    created_at: Mapped[datetime]


class UnitDispatch(Base):
    __tablename__ = "unit_dispatches"
    __table_args__ = (UniqueConstraint("incident_id", "response_unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    response_unit_id: Mapped[int] = mapped_column(
        ForeignKey("response_units.id", ondelete="CASCADE")
    )
    notified_at: Mapped[datetime]
    en_route_at: Mapped[datetime | None]
    on_scene_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    dispatched_by: Mapped[str] = mapped_column(String(160))


class ResponseTarget(Base):
    """E.g. P1 acknowledged within 15 s in 95% of cases."""

    __tablename__ = "response_targets"
    __table_args__ = (UniqueConstraint("priority", "measure"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    priority: Mapped[int] = mapped_column(Integer)
    measure: Mapped[str] = mapped_column(String(20))  # acknowledge | dispatch | on_scene
    seconds: Mapped[int] = mapped_column(Integer)
    percent: Mapped[int] = mapped_column(Integer, default=95)


class SchedulerBeat(Base):
    """Each background loop's last tick: a stalled one shows a health banner to operators."""

    __tablename__ = "scheduler_beats"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_beat_at: Mapped[datetime]
    process: Mapped[str] = mapped_column(String(120), default="")
