"""The transactional outbox and the record of messages a consumer has already handled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.db import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class ProcessedMessage(Base):
    """(consumer, msg_id) seen: a redelivered message is acknowledged and skipped."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(80), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime]
