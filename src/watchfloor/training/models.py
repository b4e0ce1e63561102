"""Tables of the training domain: the course catalogue, which courses each role must hold, the
completion records (entered or imported from an LMS export), the import history, and the daily
reminders sent to facility managers.

A person's *status* on a required course (current, due soon, overdue, never) is computed from
their latest completion's `expires_on` and the injected clock, never stored.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.db import Base


class TrainingStatus(StrEnum):
    """A person's standing on one required course (computed, not stored)."""

    OVERDUE = "overdue"  # the latest completion has expired
    NEVER = "never"  # no completion on record
    DUE_SOON = "due_soon"  # expires within training_due_soon_days
    CURRENT = "current"


class CompletionSource(StrEnum):
    ENTERED = "entered"  # typed in the console or sent to the API
    LMS_IMPORT = "lms_import"  # a row of an imported LMS export


class TrainingCourse(Base):
    __tablename__ = "training_courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    refresh_months: Mapped[int] = mapped_column(Integer)  # how long a completion stays valid
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(160), default="")


class TrainingRequirement(Base):
    """People whose Person.role is `role` must hold a current completion of the course."""

    __tablename__ = "training_requirements"
    __table_args__ = (
        Index("ix_training_requirements_role_course", "role", "course_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(40))  # a watchfloor Role value
    course_id: Mapped[int] = mapped_column(
        ForeignKey("training_courses.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(160), default="")


class TrainingImport(Base):
    """One accepted LMS export (rejected files write nothing, so they are not here)."""

    __tablename__ = "training_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(index=True)
    imported_by: Mapped[str] = mapped_column(String(160))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # already on record / repeated
    facility_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # facilities touched


class TrainingCompletion(Base):
    __tablename__ = "training_completions"
    __table_args__ = (
        Index(
            "ix_training_completions_person_course_date",
            "person_id",
            "course_id",
            "completed_on",
            unique=True,
        ),
        Index("ix_training_completions_course_expires", "course_id", "expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("training_courses.id", ondelete="CASCADE"))
    completed_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)  # valid through this day
    source: Mapped[str] = mapped_column(String(20), default=CompletionSource.ENTERED)
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_imports.id", ondelete="SET NULL"), index=True
    )
    note: Mapped[str] = mapped_column(String(300), default="")
    recorded_by: Mapped[str] = mapped_column(String(160))
    recorded_at: Mapped[datetime]


class TrainingReminder(Base):
    """The reminder digest of one facility on one (facility-local) day: at most one per day."""

    __tablename__ = "training_reminders"
    __table_args__ = (
        Index("ix_training_reminders_facility_day", "facility_id", "day", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    sent_at: Mapped[datetime] = mapped_column(index=True)
    sent_by: Mapped[str] = mapped_column(String(160))
    trigger: Mapped[str] = mapped_column(String(20))  # schedule | manual
    overdue: Mapped[int] = mapped_column(Integer, default=0)  # overdue + never
    due_soon: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    alert_id: Mapped[int | None] = mapped_column(Integer)  # notify's alert, None if no manager
