"""Alarm rules (organisation-wide, with facility overrides) and the alarms they raise."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.bus.models import BigId
from watchfloor.db import Base


class Priority(IntEnum):
    P1 = 1  # life safety: panic, duress, weapon
    P2 = 2  # intrusion: forced door, motion after hours, glass break
    P3 = 3  # trouble and tamper
    P4 = 4  # information


class AlarmState(StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"  # the condition ended (device restored)
    CANCELLED_BY_SENDER = "cancelled_by_sender"  # staff cancel code: operator still confirms
    RESOLVED = "resolved"  # its incident closed


class AlarmRule(Base):
    """Event type + conditions → alarm type + priority.

    `key` names the rule; a facility rule with the same key as an organisation rule
    (facility_id NULL) replaces it at that facility. `conditions` (all optional):
      {"zones": ["LOBBY"], "zone_kinds": ["perimeter"],
       "schedule": "always" | "outside_hours" | "inside_hours",
       "count": 3, "window_seconds": 60,          # raise only on the 3rd within 60 s
       "attributes": {"confidence_min": 0.8}}
    """

    __tablename__ = "alarm_rules"
    __table_args__ = (UniqueConstraint("facility_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(60), index=True)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    alarm_type: Mapped[str] = mapped_column(String(60))
    priority: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (UniqueConstraint("event_id", "rule_key"),)  # one alarm per event and rule

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    rule_key: Mapped[str] = mapped_column(String(80))
    type: Mapped[str] = mapped_column(String(60))
    priority: Mapped[int] = mapped_column(Integer, index=True)
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(30), default=AlarmState.ACTIVE, index=True)
    raised_at: Mapped[datetime] = mapped_column(index=True)
    cleared_at: Mapped[datetime | None]
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
