"""Tables of the drills domain: the organisation's required drill kinds, per-facility recurring
schedules (RFC 5545 RRULEs anchored at a local date and time), drills as run (with the timings
captured from the lockdown and roll-call domains or typed in), their participants, after-action
reports and the corrective actions those reports raise.

A drill kind's compliance status (overdue, due soon, compliant, never held) and a corrective
action's "overdue" are computed from the injected clock, never stored.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.db import Base


class DrillKind(StrEnum):
    ACTIVE_SHOOTER = "active_shooter"
    LOCKDOWN = "lockdown"
    EVACUATION = "evacuation"
    SHELTER_IN_PLACE = "shelter_in_place"
    JOINT_EXERCISE = "joint_exercise"  # with police / EMS: partner agencies recorded
    TABLETOP = "tabletop"
    COMMUNITY_MEETING = "community_meeting"


#: kinds that run through the lockdown (and so the roll call) in EXERCISE mode
LOCKDOWN_KINDS: frozenset[str] = frozenset(
    {DrillKind.ACTIVE_SHOOTER, DrillKind.LOCKDOWN, DrillKind.SHELTER_IN_PLACE}
)

KIND_LABELS: dict[str, str] = {
    DrillKind.ACTIVE_SHOOTER: "Active shooter",
    DrillKind.LOCKDOWN: "Lockdown",
    DrillKind.EVACUATION: "Evacuation",
    DrillKind.SHELTER_IN_PLACE: "Shelter in place",
    DrillKind.JOINT_EXERCISE: "Joint exercise (police / EMS)",
    DrillKind.TABLETOP: "Tabletop exercise",
    DrillKind.COMMUNITY_MEETING: "Community meeting",
}


class DrillState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ActionState(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class DrillRequirement(Base):
    """An organisation-wide required drill kind: every facility holds one every interval."""

    __tablename__ = "drill_requirements"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), unique=True)
    interval_months: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(160), default="")


class DrillSchedule(Base):
    """A facility's recurring drill: an RRULE anchored at a local wall-clock date and time."""

    __tablename__ = "drill_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(200))
    rrule: Mapped[str] = mapped_column(String(300))
    # the first occurrence as a wall-clock time in the facility's time zone: "YYYY-MM-DDTHH:MM"
    anchor_local: Mapped[str] = mapped_column(String(16))
    partner_agencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(160))
    updated_at: Mapped[datetime]


class Drill(Base):
    __tablename__ = "drills"
    __table_args__ = (Index("ix_drills_facility_kind_state", "facility_id", "kind", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("drill_schedules.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(12), default=DrillState.PLANNED)
    planned_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    run_by: Mapped[str] = mapped_column(String(160), default="")
    partner_agencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    lockdown_id: Mapped[int | None] = mapped_column(Integer)
    roll_call_id: Mapped[int | None] = mapped_column(Integer)
    # timings: captured from the lockdown / roll call, or typed in for other kinds
    seconds_to_locked: Mapped[int | None] = mapped_column(Integer)
    doors_total: Mapped[int | None] = mapped_column(Integer)
    doors_failed: Mapped[int | None] = mapped_column(Integer)
    seconds_to_accounted: Mapped[int | None] = mapped_column(Integer)
    accounted_share: Mapped[float | None] = mapped_column(Float)
    safe_count: Mapped[int | None] = mapped_column(Integer)
    need_help_count: Mapped[int | None] = mapped_column(Integer)
    no_answer_count: Mapped[int | None] = mapped_column(Integer)
    seconds_to_lifted: Mapped[int | None] = mapped_column(Integer)
    seconds_to_evacuated: Mapped[int | None] = mapped_column(Integer)  # typed in
    timings_source: Mapped[str] = mapped_column(String(12), default="")  # captured | typed
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(160))
    updated_at: Mapped[datetime]


class DrillParticipant(Base):
    __tablename__ = "drill_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("drills.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(12))  # roll_call | manual | external
    name: Mapped[str] = mapped_column(String(210))
    agency: Mapped[str] = mapped_column(String(200), default="")
    count: Mapped[int] = mapped_column(Integer, default=1)
    person_id: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(String(12), default="")
    added_by: Mapped[str] = mapped_column(String(160))
    added_at: Mapped[datetime]


class DrillReport(Base):
    """The after-action report of a drill (one per drill)."""

    __tablename__ = "drill_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("drills.id", ondelete="CASCADE"), unique=True)
    worked: Mapped[str] = mapped_column(Text, default="")
    gaps: Mapped[str] = mapped_column(Text, default="")
    written_by: Mapped[str] = mapped_column(String(160))
    written_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DrillAction(Base):
    """A corrective action from an after-action report: a tracked task."""

    __tablename__ = "drill_actions"
    __table_args__ = (
        Index("ix_drill_actions_facility_state_due", "facility_id", "state", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("drills.id", ondelete="CASCADE"), index=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(500))
    owner: Mapped[str] = mapped_column(String(160))
    due_on: Mapped[date] = mapped_column(Date)  # the facility's local date
    state: Mapped[str] = mapped_column(String(12), default=ActionState.OPEN)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(160))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(160))
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(160))
