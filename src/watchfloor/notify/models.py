"""Tables of the notify domain: recipient groups, alerts (each also a CAP 1.2 document), and one
delivery row per recipient and channel."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from watchfloor.bus.models import BigId
from watchfloor.db import Base


class AlertStatus(StrEnum):
    """CAP 1.2 <status> values an alert may carry."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    TEST = "Test"


class DeliveryState(StrEnum):
    STANDBY = "standby"  # a fallback channel, used only if the channels before it fail
    QUEUED = "queued"  # waiting to be sent (next_attempt_at says when)
    SENDING = "sending"  # claimed by a sender: handed to the provider, outcome not yet recorded
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the provider confirmed delivery, or the recipient acknowledged
    FAILED = "failed"  # every attempt on this channel failed (the next channel takes over)


class RecipientKind(StrEnum):
    PERSON = "person"
    UNIT = "unit"


class NotifyGroup(Base):
    """A named recipient group of one facility, or of the organisation (facility_id NULL)."""

    __tablename__ = "notify_groups"
    __table_args__ = (UniqueConstraint("facility_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NotifyGroupMember(Base):
    """A person or a response unit in a group (exactly one of the two ids is set)."""

    __tablename__ = "notify_group_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("notify_groups.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("response_units.id", ondelete="CASCADE"))


class Alert(Base):
    """One alert: the text sent, its CAP 1.2 document, and who sent it."""

    __tablename__ = "notify_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(String(120), unique=True)  # CAP <identifier>
    template: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.ACTUAL, index=True)
    msg_type: Mapped[str] = mapped_column(String(20), default="Alert")  # CAP msgType
    severity: Mapped[str] = mapped_column(String(20), default="Severe")
    urgency: Mapped[str] = mapped_column(String(20), default="Immediate")
    certainty: Mapped[str] = mapped_column(String(20), default="Observed")
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    sender: Mapped[str] = mapped_column(String(160))
    headline: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)  # the message as sent (before per-person variables)
    instruction: Mapped[str] = mapped_column(Text, default="")
    cap_xml: Mapped[str] = mapped_column(Text)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class AlertFacility(Base):
    """The facilities an alert is for (its scope and its CAP areas)."""

    __tablename__ = "notify_alert_facilities"

    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("notify_alerts.id", ondelete="CASCADE"), primary_key=True
    )
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Delivery(Base):
    """One recipient on one channel. ``key`` is the idempotency key of this (alert, recipient,
    channel): it is the e-mail Message-ID / provider idempotency key on every attempt."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "recipient_kind", "recipient_id", "rank"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("notify_alerts.id", ondelete="CASCADE"), index=True
    )
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    recipient_kind: Mapped[str] = mapped_column(String(10))  # person | unit
    recipient_id: Mapped[int] = mapped_column(Integer)
    recipient_name: Mapped[str] = mapped_column(String(220))
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | slack | ... | console
    rank: Mapped[int] = mapped_column(Integer, default=0)  # 0 = first choice, then fallbacks
    address: Mapped[str] = mapped_column(String(400))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    state: Mapped[str] = mapped_column(String(20), default=DeliveryState.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_how: Mapped[str | None] = mapped_column(String(20))  # link | sms | console
    acknowledged_by: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime]
