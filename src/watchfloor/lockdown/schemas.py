"""API schemas of the lockdown domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from watchfloor.schemas import CleanStr, StrictModel
from watchfloor.sites.schemas import CODE_PATTERN

Code = Annotated[str, Field(pattern=CODE_PATTERN, max_length=40)]
AlarmType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", max_length=40)]


class LockdownStart(StrictModel):
    """What to lock down: one facility (optionally one of its zones), or every facility of a
    region. Exactly one of `facility` and `region`."""

    facility: Code | None = Field(default=None, description="Facility code.")
    zone: Code | None = Field(default=None, description="Zone code (with `facility`).")
    region: Code | None = Field(default=None, description="Region code: every facility in it.")
    exercise: bool = Field(default=False, description="A drill: same path, marked EXERCISE.")
    reason: Annotated[CleanStr, Field(max_length=500)] = Field(
        default="", description="Why, in a few words (shown to operators and in messages)."
    )
    incident_id: int | None = Field(
        default=None, ge=1, le=2**62, description="The incident this lockdown answers."
    )

    @model_validator(mode="after")
    def _one_target(self) -> LockdownStart:
        if bool(self.facility) == bool(self.region):
            raise ValueError("give exactly one of 'facility' or 'region'")
        if self.zone and not self.facility:
            raise ValueError("'zone' needs 'facility'")
        return self


class LiftRequest(StrictModel):
    reason: Annotated[CleanStr, Field(max_length=500)] = Field(
        default="", description="Why it is safe to lift."
    )


class DoorCounts(BaseModel):
    locked: int
    pending: int
    failed: int
    unlocked: int


class LockdownSummary(BaseModel):
    id: int
    facility_id: int
    facility_code: str | None
    facility_name: str | None
    zone_id: int | None
    zone_name: str | None
    request_id: str
    exercise: bool
    banner: Literal["EXERCISE"] | None = Field(description="EXERCISE for a drill.")
    reason: str
    source: str
    state: str = Field(description="locking, locked, partial, lifting or lifted.")
    active: bool
    incident_id: int | None
    door_count: int
    counts: DoorCounts
    started_by: str
    started_at: datetime
    locked_at: datetime | None
    lift_requested_by: str | None
    lift_requested_at: datetime | None
    lift_reason: str | None
    lift_approved_by: str | None
    lift_approved_at: datetime | None
    lifted_by: str | None
    lifted_at: datetime | None
    ended_at: datetime | None


class DoorOut(BaseModel):
    device_id: int
    code: str
    name: str
    zone: str
    address: str
    controller: str
    state: str = Field(description="commanded, locked, failed or unlocked.")
    commanded_at: datetime | None
    confirmed_at: datetime | None
    attempts: int
    last_error: str
    alarm_raised: bool
    unlock_attempts: int
    unlocked_at: datetime | None


class LockdownDetail(LockdownSummary):
    doors: list[DoorOut]


class SkippedFacility(BaseModel):
    facility_code: str
    lockdown_id: int
    reason: str


class StartResponse(BaseModel):
    items: list[LockdownSummary]
    skipped: list[SkippedFacility]


class LockdownPage(BaseModel):
    items: list[LockdownSummary]
    total: int


class LiftResponse(BaseModel):
    lifting: bool = Field(description="False: the lift awaits a second person's approval.")
    message: str
    lockdown: LockdownSummary


class RetryResponse(BaseModel):
    retried: int
    lockdown: LockdownSummary


class TriggerIn(StrictModel):
    facility: Code | None = Field(
        default=None, description="Facility code; omit for the organisation-wide default."
    )
    alarm_type: AlarmType = Field(description="The alarm type, e.g. 'weapon'.")
    scope: Literal["zone", "facility"] = Field(
        default="zone", description="Lock down the alarm's zone, or the whole facility."
    )
    enabled: bool = True


class TriggerOut(BaseModel):
    id: int
    facility_code: str | None
    alarm_type: str
    scope: str
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
