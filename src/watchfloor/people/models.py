"""Staff records: who works where, how to reach them, and their vetting."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from watchfloor.db import Base

if TYPE_CHECKING:
    from watchfloor.sites.models import Facility


class VettingStatus(StrEnum):
    PENDING = "pending"
    CLEARED = "cleared"
    EXPIRED = "expired"
    DENIED = "denied"


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    employee_id: Mapped[str] = mapped_column(String(40), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100), index=True)
    job_title: Mapped[str] = mapped_column(String(120), default="")
    role: Mapped[str] = mapped_column(String(40), default="staff")  # a watchfloor Role value
    email: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    # further channels in order of preference: [{"channel": "sms", "value": "+1..."}]
    contacts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    vetting_status: Mapped[str] = mapped_column(String(20), default=VettingStatus.PENDING)
    vetting_expires_on: Mapped[date | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    # loaded with the person: every API answer names the facility by its code
    facility: Mapped[Facility] = relationship(lazy="joined")
