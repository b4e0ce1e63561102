"""API and message schemas of the events domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from watchfloor.schemas import CleanStr, OutModel, StrictModel

MAX_BATCH = 1000
DEVICE_REF_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,39}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,59}$"


class EventIn(StrictModel):
    """One event as a device or integration sends it."""

    device: CleanStr = Field(
        pattern=DEVICE_REF_PATTERN,
        max_length=101,
        description="The device code within the token's facility, or 'FACILITY/DEVICE'.",
        examples=["DOOR-1", "DAL-FO/PANIC-2"],
    )
    type: CleanStr = Field(
        max_length=60, description="An event type of the catalogue.", examples=["panic.pressed"]
    )
    occurred_at: AwareDatetime = Field(
        description="When it happened: ISO 8601 with a UTC offset (e.g. 2026-01-05T12:00:00Z)."
    )
    idempotency_key: CleanStr | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="Sending the same key again (for the same facility) stores the event once.",
    )
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Type-specific details; see the catalogue."
    )


class MqttEventIn(StrictModel):
    """An MQTT payload: the facility and the device come from the topic."""

    type: CleanStr = Field(max_length=60)
    occurred_at: AwareDatetime
    idempotency_key: CleanStr | None = Field(default=None, min_length=1, max_length=120)
    attributes: dict[str, Any] = Field(default_factory=dict)


class BatchIn(StrictModel):
    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"Up to {MAX_BATCH} events, each shaped like the single-event body.",
    )


class EventAccepted(OutModel):
    event_id: int
    duplicate: bool = Field(description="True when the idempotency key was already stored.")


class BatchItemResult(OutModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: int | None = None
    error: str | None = None
    dead_letter_id: int | None = None


class BatchResult(OutModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemResult]


class DeadLetterOut(OutModel):
    id: int
    received_at: datetime
    source: str
    facility_id: int | None
    facility_code: str | None = None
    channel: str
    sender: str
    raw: str
    reason: str
    resolved_at: datetime | None
    resolved_by: str | None


class SupervisionOut(OutModel):
    default_seconds: int
    kinds: dict[str, int]


Seconds = Annotated[int, Field(ge=10, le=604_800)]


class SupervisionUpdate(StrictModel):
    kinds: dict[
        Literal["door", "reader", "panic_button", "sensor", "camera", "controller"],
        Seconds | None,
    ] = Field(
        description="Seconds per device kind (10 s to 7 days); null returns a kind to the default."
    )
