"""Device events as received, dead letters, and device supervision settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.bus.models import BigId
from watchfloor.db import Base


class Event(Base):
    """One thing a device or integration reported. Written before it is acknowledged."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("facility_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True
    )
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(60), index=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime]
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(20), default="http")  # http|mqtt|web|system|sim
    sender: Mapped[str] = mapped_column(String(160), default="")  # "token:door-feed", "user:ana"
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeadLetter(Base):
    """A message that could not be accepted: kept with its raw payload and the reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(20))  # http | mqtt
    facility_id: Mapped[int | None] = mapped_column(Integer, index=True)  # when it could be told
    channel: Mapped[str] = mapped_column(String(300), default="")  # MQTT topic or HTTP path
    sender: Mapped[str] = mapped_column(String(160), default="")
    raw: Mapped[str] = mapped_column(Text)  # the payload as received (decoded lossily if binary)
    reason: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(160))


class SupervisionSetting(Base):
    """Supervision interval per device kind; a device's own supervision_seconds wins."""

    __tablename__ = "supervision_settings"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    seconds: Mapped[int] = mapped_column(Integer)


class TestSignal(Base):
    """One end-to-end test signal of a facility (events/test_signal.py): when it was sent, when
    ingest stored it, and when the pipeline's consumer processed it (None: not yet)."""

    __tablename__ = "test_signals"
    __test__ = False  # not a pytest test class

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL"), unique=True
    )
    source: Mapped[str] = mapped_column(String(20), default="system")
    sender: Mapped[str] = mapped_column(String(160), default="")
    sent_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
