"""Tables of the lockdown domain: a lockdown per facility, one row per door it commands, and the
rules that start a lockdown by themselves (an alarm type → lock down that zone or facility)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.bus.models import BigId
from watchfloor.db import Base


class LockdownState(StrEnum):
    LOCKING = "locking"  # commands in flight (or retrying)
    LOCKED = "locked"  # every door confirmed locked
    PARTIAL = "partial"  # every door answered, some failed after every retry (flagged)
    LIFTING = "lifting"  # unlock commands in flight
    LIFTED = "lifted"  # over


ACTIVE_STATES = (
    LockdownState.LOCKING.value,
    LockdownState.LOCKED.value,
    LockdownState.PARTIAL.value,
    LockdownState.LIFTING.value,
)


class DoorState(StrEnum):
    COMMANDED = "commanded"  # lock sent, no confirmation yet (or being retried)
    LOCKED = "locked"  # the controller confirmed it
    FAILED = "failed"  # still not locked after every retry: flagged, P1 alarm raised
    UNLOCKED = "unlocked"  # back to its normal schedule after the lift


class Lockdown(Base):
    __tablename__ = "lockdowns"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    # the facility's id while the lockdown is active, NULL once lifted: unique, so a facility has
    # at most one active lockdown on every database (NULLs never collide)
    active_facility_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    zone_name: Mapped[str | None] = mapped_column(String(200))
    # a region lockdown is one row per facility, grouped by the request that made them
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"))
    request_id: Mapped[str] = mapped_column(String(32), index=True)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20), default="api")  # api, console, incident, rule
    state: Mapped[str] = mapped_column(String(20), default=LockdownState.LOCKING, index=True)
    incident_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    door_count: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[datetime] = mapped_column(index=True)
    locked_at: Mapped[datetime | None]  # every door answered (locked or failed)
    lift_requested_by: Mapped[str | None] = mapped_column(String(160))
    lift_requested_key: Mapped[str | None] = mapped_column(String(80))  # "user:12": who, exactly
    lift_requested_at: Mapped[datetime | None]
    lift_reason: Mapped[str | None] = mapped_column(Text)
    lift_approved_by: Mapped[str | None] = mapped_column(String(160))
    lift_approved_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(160))
    lifted_at: Mapped[datetime | None]  # unlock commands started
    ended_at: Mapped[datetime | None]  # every door answered the unlock
    updated_at: Mapped[datetime]


class LockdownDoor(Base):
    __tablename__ = "lockdown_doors"
    __table_args__ = (UniqueConstraint("lockdown_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lockdown_id: Mapped[int] = mapped_column(
        ForeignKey("lockdowns.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # what the door was when commanded (the console shows these without joins)
    door_code: Mapped[str] = mapped_column(String(60))
    door_name: Mapped[str] = mapped_column(String(200))
    zone_name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    controller_address: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), default=DoorState.COMMANDED)
    commanded_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    alarm_raised: Mapped[bool] = mapped_column(Boolean, default=False)
    # the lift: unlock attempts and the last unlock error (the door stays flagged if it will not)
    unlock_attempts: Mapped[int] = mapped_column(Integer, default=0)
    unlocked_at: Mapped[datetime | None]


class LockdownTrigger(Base):
    """An alarm of this type starts a lockdown of the alarm's zone (or the whole facility).
    facility_id NULL: the organisation-wide default; a facility's own trigger for the same alarm
    type overrides it (enabled=False switches the default off there)."""

    __tablename__ = "lockdown_triggers"
    __table_args__ = (UniqueConstraint("facility_id", "alarm_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    alarm_type: Mapped[str] = mapped_column(String(40))  # e.g. "weapon"
    scope: Mapped[str] = mapped_column(String(20), default="zone")  # zone | facility
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
