"""Staff panic presses from the console or phone, and each person's cancel and duress codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.bus.models import BigId
from watchfloor.db import Base


class PanicCodes(Base):
    """A person's own cancel code and a separate duress code (argon2 hashes).

    Entering the cancel code within the window marks the alarm "cancelled by sender" (the operator
    still sees and confirms it); entering the duress code looks the same on the sender's screen
    but raises a P1 duress alarm."""

    __tablename__ = "panic_codes"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    cancel_code_hash: Mapped[str] = mapped_column(String(200))
    duress_code_hash: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class PanicPress(Base):
    """A staff member's panic press: cancellable with their cancel code within a window."""

    __tablename__ = "panic_presses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    pressed_at: Mapped[datetime]
    cancel_until: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    duress_at: Mapped[datetime | None]
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong codes entered
