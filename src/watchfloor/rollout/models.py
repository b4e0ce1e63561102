"""Tables of the rollout domain: the countermeasure catalogue, directives, and the rollout tasks a
directive generates (one per facility and measure) with the history of their transitions.

A task's *state* is what people set (planned → in progress → done, or waived with an approver);
its *status* on the board (done, waived, late, due soon, on track) is computed from the state,
the due date and the injected clock, never stored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.db import Base


class DeadlineKind(StrEnum):
    IMMEDIATE = "immediate"  # within 24 hours of issue
    HOURS_72 = "72h"  # 72 elapsed hours
    WEEKS_2 = "2w"  # 14 calendar days, facility-local wall clock
    DAYS_30 = "30d"  # 30 calendar days, facility-local wall clock
    MONTHS_3 = "3m"  # 3 calendar months, facility-local wall clock
    CONTINUOUS = "continuous"  # no due date; reviewed every review_days


class TaskState(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    WAIVED = "waived"


class TaskStatus(StrEnum):
    """The board's view of a task (computed, not stored)."""

    LATE = "late"
    DUE_SOON = "due_soon"
    ON_TRACK = "on_track"
    DONE = "done"
    WAIVED = "waived"


class Countermeasure(Base):
    __tablename__ = "countermeasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    area: Mapped[str] = mapped_column(String(40))  # an assessment area key
    description: Mapped[str] = mapped_column(Text, default="")
    deadline: Mapped[str] = mapped_column(String(12))  # DeadlineKind
    review_days: Mapped[int | None] = mapped_column(Integer)  # continuous measures only
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Directive(Base):
    __tablename__ = "directives"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime] = mapped_column(index=True)
    issued_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime]
    # {"kind": "all" | "region" | "list", "regions": [codes], "facilities": [codes]}
    selection: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    measures: Mapped[list[str]] = mapped_column(JSON, default=list)  # countermeasure codes
    facility_count: Mapped[int] = mapped_column(Integer, default=0)
    task_count: Mapped[int] = mapped_column(Integer, default=0)
    last_due_at: Mapped[datetime | None]


class RolloutTask(Base):
    __tablename__ = "rollout_tasks"
    __table_args__ = (
        Index(
            "ix_rollout_tasks_directive_facility_measure",
            "directive_id",
            "facility_id",
            "countermeasure_id",
            unique=True,
        ),
        # covering indexes of the board's two scans (per facility, per measure)
        Index("ix_rollout_tasks_facility_state_due", "facility_id", "state", "due_at"),
        Index(
            "ix_rollout_tasks_measure_state_due",
            "countermeasure_id",
            "state",
            "due_at",
            "closed_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    directive_id: Mapped[int] = mapped_column(ForeignKey("directives.id", ondelete="CASCADE"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    countermeasure_id: Mapped[int] = mapped_column(ForeignKey("countermeasures.id"))
    state: Mapped[str] = mapped_column(String(12), default=TaskState.PLANNED)
    due_at: Mapped[datetime | None]  # NULL for continuous measures
    review_days: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None]  # when it became done or waived
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(160), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    waiver_reason: Mapped[str] = mapped_column(String(500), default="")
    waiver_requested_by: Mapped[str | None] = mapped_column(String(160))
    waiver_requested_at: Mapped[datetime | None]
    waiver_approved_by: Mapped[str | None] = mapped_column(String(160))
    version: Mapped[int] = mapped_column(Integer, default=0)


class RolloutTaskEvent(Base):
    """One transition of a task (or a waiver request / refusal), in order."""

    __tablename__ = "rollout_task_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(
        ForeignKey("rollout_tasks.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(30))  # move | waiver_requested | waived | ...
    from_state: Mapped[str] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(String(500), default="")
