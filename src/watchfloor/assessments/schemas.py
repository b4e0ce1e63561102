"""Request and answer bodies of the assessments API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from watchfloor.assessments.models import (
    Answer,
    Area,
    AssessmentKind,
    AssessmentStatus,
    FindingStatus,
    Severity,
)
from watchfloor.sites.schemas import CODE_PATTERN

MAX_PEOPLE = 10_000_000
MAX_SQFT = 1_000_000_000
FactorScores = dict[str, int | None]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if isinstance(value, BaseModel):
        return any(_has_nul(v) for v in value.__dict__.values())
    return False


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No text may carry a NUL character (PostgreSQL cannot store one)."""
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


class AnswerIn(_In):
    answer: Answer
    note: str = Field(default="", max_length=2000)


class FSLInput(_In):
    """FSL inputs; derived factors (population, size) come from population / floor area."""

    population: int | None = Field(default=None, ge=0, le=MAX_PEOPLE)
    floor_area_sqft: int | None = Field(default=None, ge=0, le=MAX_SQFT)
    factors: dict[str, int | None] | None = Field(
        default=None, description="factor key -> score (1..4 in the default standard)"
    )
    intangible_adjustment: int | None = Field(default=None, ge=-3, le=3)
    agency_level: bool | None = Field(
        default=None, description="true: the agency sets the top level (FSL V)"
    )
    justification: str | None = Field(default=None, max_length=4000)


class AssessmentCreate(FSLInput):
    facility: str = Field(pattern=CODE_PATTERN, max_length=40)
    template: str = Field(default="default", pattern=CODE_PATTERN, max_length=40)
    kind: AssessmentKind = AssessmentKind.RECURRING
    directive_ref: str = Field(default="", max_length=120)
    scheduled_for: AwareDatetime | None = None
    assessor: str = Field(default="", max_length=200)


class AssessmentUpdate(FSLInput):
    status: AssessmentStatus | None = None
    scheduled_for: AwareDatetime | None = None
    assessor: str | None = Field(default=None, max_length=200)
    directive_ref: str | None = Field(default=None, max_length=120)
    answers: dict[str, AnswerIn] | None = Field(default=None, max_length=500)


class FSLOut(BaseModel):
    standard: str
    scores: dict[str, int]
    total: int
    computed_level: str
    adjustment: int
    level: str
    clamped: bool
    agency_set: bool


class FindingCreate(_In):
    area: Area
    severity: Severity
    description: str = Field(min_length=1, max_length=4000)
    owner: str = Field(default="", max_length=200)
    due_on: date | None = None


class FindingUpdate(_In):
    severity: Severity | None = None
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    owner: str | None = Field(default=None, max_length=200)
    due_on: date | None = None
    status: FindingStatus | None = None
    closing_note: str | None = Field(default=None, max_length=4000)


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    created_at: datetime


class FindingOut(BaseModel):
    id: int
    assessment_id: int
    facility: str
    area: str
    severity: str
    description: str
    owner: str
    due_on: date | None
    status: str
    overdue: bool
    closing_note: str
    closed_at: datetime | None
    created_at: datetime
    attachments: list[AttachmentOut]


class FindingPage(BaseModel):
    items: list[FindingOut]
    total: int


class AssessmentOut(BaseModel):
    id: int
    facility: str
    facility_name: str
    template: str
    kind: str
    directive_ref: str
    status: str
    scheduled_for: datetime
    started_at: datetime | None
    completed_at: datetime | None
    assessor: str
    population: int | None
    floor_area_sqft: int | None
    factors: dict[str, Any]
    fsl: FSLOut | None
    intangible_adjustment: int
    agency_level: bool
    justification: str
    open_findings: int
    created_at: datetime
    updated_at: datetime


class AssessmentDetail(AssessmentOut):
    answers: dict[str, Any]
    checklist: list[dict[str, Any]]
    findings: list[FindingOut]


class AssessmentPage(BaseModel):
    items: list[AssessmentOut]
    total: int


class DueItem(BaseModel):
    facility: str
    facility_name: str
    level: str | None
    last_completed_at: datetime | None
    next_due: datetime | None
    status: str  # overdue | due_soon | scheduled | ok
    open_assessment_id: int | None
    open_assessment_scheduled_for: datetime | None


class StandardOut(BaseModel):
    source: str  # "default" or "loaded"
    loaded_at: datetime | None
    loaded_by: str | None
    standard: dict[str, Any]


class StandardIn(_In):
    yaml: str = Field(min_length=1, max_length=200_000, description="The standard as YAML.")
