"""Tables of the rollcall domain: a roll call ("Are you safe?") of one facility, one entry per
person asked, and every answer ever given (an answer may change; the history stays).

Entries have a `kind`: "staff" (a people.Person of the facility) today; "visitor" is the seam for
checked-in visitors once visitor management exists (their entries will carry no person_id).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.db import Base


class RollCallState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Answer(StrEnum):
    NO_ANSWER = "no_answer"
    SAFE = "safe"
    NEED_HELP = "need_help"


class Channel(StrEnum):
    LINK = "link"
    SMS = "sms"
    CONSOLE = "console"


class EntryKind(StrEnum):
    STAFF = "staff"
    VISITOR = "visitor"  # checked-in visitors, once visitor management exists


class RollCall(Base):
    __tablename__ = "roll_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    # the facility's id while the roll call is open, NULL once closed: the unique index makes
    # "one open roll call per facility" hold even between two processes
    open_facility_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    lockdown_id: Mapped[int | None] = mapped_column(Integer, index=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(300), default="")
    trigger: Mapped[str] = mapped_column(String(20), default="operator")  # operator|api|lockdown
    state: Mapped[str] = mapped_column(String(10), default=RollCallState.OPEN)
    started_by: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[datetime] = mapped_column(index=True)
    closed_by: Mapped[str | None] = mapped_column(String(160))
    closed_at: Mapped[datetime | None]
    alert_id: Mapped[int | None] = mapped_column(Integer)  # the notify alert that asked everyone
    ask_note: Mapped[str] = mapped_column(String(300), default="")  # why asking failed, if it did
    version: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every change


class RollCallEntry(Base):
    __tablename__ = "roll_call_entries"
    __table_args__ = (
        UniqueConstraint("roll_call_id", "person_id"),
        Index("ix_roll_call_entries_call_answer", "roll_call_id", "answer"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    roll_call_id: Mapped[int] = mapped_column(ForeignKey("roll_calls.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), default=EntryKind.STAFF)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    # snapshotted when the roll call started: the list stays true if the record changes later
    name: Mapped[str] = mapped_column(String(210))
    employee_id: Mapped[str] = mapped_column(String(40), default="")
    phone_digits: Mapped[str] = mapped_column(String(40), default="", index=True)
    answer: Mapped[str] = mapped_column(String(12), default=Answer.NO_ANSWER)
    answered_at: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(10))
    answered_by: Mapped[str | None] = mapped_column(String(160))  # an operator's label
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    zone_name: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(500), default="")


class RollCallAnswer(Base):
    """One answer as given: the history behind an entry's current answer."""

    __tablename__ = "roll_call_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("roll_call_entries.id", ondelete="CASCADE"), index=True
    )
    roll_call_id: Mapped[int] = mapped_column(
        ForeignKey("roll_calls.id", ondelete="CASCADE"), index=True
    )
    answer: Mapped[str] = mapped_column(String(12))
    channel: Mapped[str] = mapped_column(String(10))
    answered_by: Mapped[str | None] = mapped_column(String(160))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(500), default="")
