"""API models of the training domain."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from watchfloor.schemas import CleanStr

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"


class CourseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    description: str
    refresh_months: int = Field(description="How many months a completion stays valid.")
    active: bool
    updated_at: datetime
    updated_by: str


class CourseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: CleanStr = Field(pattern=CODE_PATTERN, description="Short code, e.g. FIRSTAID.")
    name: CleanStr = Field(min_length=1, max_length=200)
    description: CleanStr = Field(default="", max_length=2000)
    refresh_months: int = Field(ge=1, le=120, description="Months a completion stays valid.")


class CourseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: CleanStr | None = Field(default=None, min_length=1, max_length=200)
    description: CleanStr | None = Field(default=None, max_length=2000)
    refresh_months: int | None = Field(default=None, ge=1, le=120)
    active: bool | None = None


class RequirementOut(BaseModel):
    role: str
    course_code: str
    course_name: str


class RequirementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: CleanStr = Field(min_length=1, max_length=40, description="A Person.role value.")
    course_code: CleanStr = Field(pattern=CODE_PATTERN)


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    employee_id: CleanStr = Field(min_length=1, max_length=40)
    course_code: CleanStr = Field(pattern=CODE_PATTERN)
    completed_on: date = Field(description="The day the course was completed (not in the future).")
    note: CleanStr = Field(default="", max_length=300)


class CompletionOut(BaseModel):
    id: int
    employee_id: str
    person_name: str
    facility_code: str
    course_code: str
    course_name: str
    completed_on: date
    expires_on: date
    source: str
    import_id: int | None
    recorded_by: str
    recorded_at: datetime
    note: str


class CompletionPage(BaseModel):
    items: list[CompletionOut]
    total: int


class StatusOut(BaseModel):
    employee_id: str
    person_name: str
    role: str
    facility_code: str
    facility_name: str
    course_code: str
    course_name: str
    status: str = Field(description="overdue | never | due_soon | current")
    expires_on: date | None
    days_overdue: int | None
    vetting_status: str
    vetting_expires_on: date | None
    vetting_expired: bool


class StatusPage(BaseModel):
    as_of: datetime
    items: list[StatusOut]
    total: int


class Counts(BaseModel):
    overdue: int
    never: int
    due_soon: int
    current: int
    total: int


class FacilitySummary(BaseModel):
    facility_code: str
    facility_name: str
    region_code: str
    counts: Counts
    vetting_expired: int


class CourseSummary(BaseModel):
    course_code: str
    course_name: str
    counts: Counts


class OverviewOut(BaseModel):
    as_of: datetime
    totals: Counts
    people: int
    vetting_expired: int
    by_course: list[CourseSummary]
    facilities: list[FacilitySummary]


class PersonCourseOut(BaseModel):
    course_code: str
    course_name: str
    required: bool
    status: str | None
    expires_on: date | None
    completions: list[CompletionOut]


class PersonTrainingOut(BaseModel):
    employee_id: str
    person_name: str
    role: str
    facility_code: str
    vetting_status: str
    vetting_expires_on: date | None
    vetting_expired: bool
    courses: list[PersonCourseOut]


class ImportOut(BaseModel):
    id: int
    filename: str
    sha256: str
    imported_at: datetime
    imported_by: str
    rows: int
    added: int
    skipped: int
    facility_count: int


class ReminderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility_code: CleanStr | None = Field(
        default=None,
        max_length=40,
        description="One facility; omitted = every facility in your training:manage scope "
        "with staff behind.",
    )


class ReminderResult(BaseModel):
    facility_code: str
    facility_name: str
    sent: bool
    why: str
    overdue: int
    due_soon: int
    recipients: int


class ReminderOut(BaseModel):
    facility_code: str
    day: date
    sent_at: datetime
    sent_by: str
    trigger: str
    overdue: int
    due_soon: int
    recipients: int
    alert_id: int | None
