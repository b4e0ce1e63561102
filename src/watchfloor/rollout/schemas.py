"""API models of the rollout domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watchfloor.schemas import CleanStr


class CountermeasureOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    area: str
    description: str
    deadline: str
    review_days: int | None


class FacilitySelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["all", "region", "list"] = Field(
        description="'all' facilities (needs an organisation-wide grant), those of the named "
        "'region's, or the 'list' of facility codes."
    )
    regions: list[CleanStr] = Field(default_factory=list, max_length=500)
    facilities: list[CleanStr] = Field(default_factory=list, max_length=50_000)


class DirectiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: CleanStr = Field(min_length=1, max_length=200)
    description: CleanStr = Field(default="", max_length=5000)
    issued_at: datetime | None = Field(
        default=None,
        description="When the directive was issued (UTC; an offset is converted). Defaults to "
        "now; at most one day in the future. Deadlines run from it.",
    )
    measures: list[CleanStr] | None = Field(
        default=None,
        max_length=500,
        description="Countermeasure codes; omitted = every active measure of the catalogue.",
    )
    selection: FacilitySelection


class DirectivePreview(BaseModel):
    facility_count: int
    measure_count: int
    task_count: int
    measures: list[str]
    last_due_at: datetime | None


class DirectiveOut(BaseModel):
    id: int
    title: str
    description: str
    issued_at: datetime
    issued_by: str
    measures: list[str]
    selection_kind: str
    facility_count: int = Field(description="Facilities of the directive in your scope.")
    task_count: int = Field(description="Its tasks in your scope.")
    last_due_at: datetime | None


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Literal["planned", "in_progress", "done"]
    note: CleanStr = Field(default="", max_length=500)
    version: int | None = Field(
        default=None, ge=0, description="The task's version you saw; a stale one is refused."
    )


class WaiverRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: CleanStr = Field(min_length=3, max_length=500)


class WaiverDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: CleanStr = Field(default="", max_length=500)


class TaskEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    from_state: str
    to_state: str
    note: str


class TaskOut(BaseModel):
    id: int
    directive_id: int
    facility_code: str
    facility_name: str
    region_code: str
    measure_code: str
    measure_name: str
    deadline: str
    state: str
    status: str
    due_at: datetime | None
    due_local: str
    review_days: int | None
    closed_at: datetime | None
    updated_at: datetime
    updated_by: str
    note: str
    waiver_reason: str
    waiver_requested_by: str | None
    waiver_approved_by: str | None
    version: int


class TaskDetail(TaskOut):
    history: list[TaskEventOut]


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int


class Counts(BaseModel):
    late: int = 0
    due_soon: int = 0
    on_track: int = 0
    done: int = 0
    waived: int = 0
    total: int = 0


class BoardRow(BaseModel):
    key: str
    name: str
    counts: Counts


class BurnPoint(BaseModel):
    day: str
    ideal: int
    actual: int | None


class BoardOut(BaseModel):
    as_of: datetime
    directive_id: int | None
    totals: Counts
    by_region: list[BoardRow]
    by_measure: list[BoardRow]
    by_facility: list[BoardRow]
    facility_rows: int = Field(description="Facilities with tasks (by_facility is the worst N).")
    burndown: list[BurnPoint]


class ReasonOut(BaseModel):
    text: str
    link: str


class ComponentOut(BaseModel):
    key: str
    label: str
    status: str
    priority: str
    reasons: list[ReasonOut]


class FacilityScorecardOut(BaseModel):
    facility_code: str
    facility_name: str
    region_code: str
    components: list[ComponentOut]


class RollupCell(BaseModel):
    in_place: int = 0
    under_review: int = 0
    gap: int = 0
    not_tracked: int = 0


class RollupRow(BaseModel):
    key: str
    name: str
    components: dict[str, RollupCell]


class ScorecardOut(BaseModel):
    as_of: datetime
    components: list[str]
    organisation: RollupRow
    regions: list[RollupRow]
