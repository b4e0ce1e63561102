"""API models of the drills domain."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watchfloor.drills.models import DrillKind
from watchfloor.schemas import CleanStr

KindField = Literal[
    "active_shooter",
    "lockdown",
    "evacuation",
    "shelter_in_place",
    "joint_exercise",
    "tabletop",
    "community_meeting",
]
assert set(KindField.__args__) == {k.value for k in DrillKind}  # type: ignore[attr-defined]

Agencies = list[CleanStr]


class RequirementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_months: int = Field(
        ge=1, le=60, description="Every facility must hold this kind at least this often."
    )
    active: bool = True
    note: CleanStr = Field(default="", max_length=300)


class RequirementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    interval_months: int
    active: bool
    note: str
    updated_at: datetime
    updated_by: str


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility_code: CleanStr = Field(min_length=1, max_length=40)
    kind: KindField
    title: CleanStr = Field(default="", max_length=200)
    rrule: CleanStr = Field(
        min_length=1,
        max_length=300,
        description="An RFC 5545 RRULE, e.g. 'FREQ=MONTHLY;INTERVAL=3' (quarterly). At most "
        "daily; it must have an occurrence after now.",
    )
    anchor_local: CleanStr = Field(
        min_length=1,
        max_length=16,
        description="The first occurrence on the facility's wall clock, 'YYYY-MM-DDTHH:MM'.",
    )
    partner_agencies: Agencies = Field(default_factory=list, max_length=20)


class ScheduleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: bool


class ScheduleOut(BaseModel):
    id: int
    facility_code: str
    kind: str
    title: str
    rrule: str
    anchor_local: str
    timezone: str
    partner_agencies: list[str]
    paused: bool
    next_occurrences: list[datetime] = Field(description="The next few occurrences, UTC.")
    created_by: str
    created_at: datetime


class DrillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility_code: CleanStr = Field(min_length=1, max_length=40)
    kind: KindField
    planned_at: datetime = Field(description="When it is planned (UTC; an offset is converted).")
    title: CleanStr = Field(default="", max_length=200)
    schedule_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    partner_agencies: Agencies = Field(default_factory=list, max_length=20)


class TimingsIn(BaseModel):
    """Timings typed in for a drill that does not run through the lockdown."""

    model_config = ConfigDict(extra="forbid")

    seconds_to_evacuated: int | None = Field(default=None, ge=0, le=86_400)
    seconds_to_accounted: int | None = Field(default=None, ge=0, le=86_400)
    safe_count: int | None = Field(default=None, ge=0, le=1_000_000)
    need_help_count: int | None = Field(default=None, ge=0, le=1_000_000)
    no_answer_count: int | None = Field(default=None, ge=0, le=1_000_000)


class EndIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: CleanStr = Field(default="", max_length=5000)
    timings: TimingsIn | None = None


class ParticipantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["manual", "external"] = Field(
        description="'manual': a person added by hand; 'external': an outside agency's people."
    )
    name: CleanStr = Field(min_length=1, max_length=210)
    agency: CleanStr = Field(default="", max_length=200)
    count: int = Field(default=1, ge=1, le=10_000)


class ParticipantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    name: str
    agency: str
    count: int
    answer: str
    added_by: str
    added_at: datetime


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worked: CleanStr = Field(default="", max_length=10_000)
    gaps: CleanStr = Field(default="", max_length=10_000)


class ReportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    worked: str
    gaps: str
    written_by: str
    written_at: datetime
    updated_at: datetime


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: CleanStr = Field(min_length=1, max_length=500)
    owner: CleanStr = Field(min_length=1, max_length=160)
    due_on: str = Field(
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Due date 'YYYY-MM-DD' (the facility's local date), not before the drill.",
    )


class ActionMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Literal["open", "in_progress", "done"]


class ActionOut(BaseModel):
    id: int
    drill_id: int
    facility_code: str
    facility_name: str
    description: str
    owner: str
    due_on: date
    state: str
    overdue: bool
    created_by: str
    updated_by: str
    updated_at: datetime
    done_at: datetime | None
    done_by: str | None


class DrillOut(BaseModel):
    id: int
    facility_code: str
    facility_name: str
    kind: str
    title: str
    state: str
    schedule_id: int | None
    planned_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    run_by: str
    partner_agencies: list[str]
    uses_lockdown: bool
    lockdown_id: int | None
    lockdown_active: bool
    roll_call_id: int | None
    seconds_to_locked: int | None
    doors_total: int | None
    doors_failed: int | None
    seconds_to_accounted: int | None
    accounted_share: float | None
    safe_count: int | None
    need_help_count: int | None
    no_answer_count: int | None
    seconds_to_lifted: int | None
    seconds_to_evacuated: int | None
    timings_source: str
    notes: str


class DrillDetail(DrillOut):
    participants: list[ParticipantOut]
    report: ReportOut | None
    actions: list[ActionOut]


class ComplianceRow(BaseModel):
    facility_code: str
    facility_name: str
    region_code: str
    kind: str
    interval_months: int
    last_completed_at: datetime | None
    next_due_at: datetime | None
    status: Literal["overdue", "due_soon", "compliant", "never"]


class RegionCounts(BaseModel):
    region_code: str
    region_name: str
    overdue: int
    never: int
    due_soon: int
    compliant: int


class ComplianceOut(BaseModel):
    as_of: datetime
    counts: dict[str, int]
    regions: list[RegionCounts]
    rows: list[ComplianceRow]
    overdue_actions: list[ActionOut]
