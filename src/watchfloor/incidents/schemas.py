"""API schemas of incidents, their actions, and the response-time report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from watchfloor.schemas import CleanStr, StrictModel
from watchfloor.sites.schemas import CODE_PATTERN

UnitCode = Annotated[str, Field(pattern=CODE_PATTERN, max_length=40)]


class DispatchRequest(StrictModel):
    units: list[UnitCode] = Field(
        min_length=1, max_length=50, description="Codes of the facility's response units."
    )


class CloseRequest(StrictModel):
    disposition: Literal["real", "false_alarm", "drill", "test"]
    cause: Annotated[CleanStr, Field(max_length=1000)] | None = Field(
        default=None, description="Required for false_alarm: what set it off."
    )


class NoteRequest(StrictModel):
    text: Annotated[CleanStr, Field(min_length=1, max_length=4000)]


class IncidentMetrics(BaseModel):
    acknowledge_seconds: float | None
    dispatch_seconds: float | None
    on_scene_seconds: float | None
    contained_seconds: float | None
    closed_seconds: float | None


class IncidentSummary(BaseModel):
    incident_id: int
    facility_id: int
    facility_code: str | None
    facility_name: str | None
    title: str
    priority: int
    status: str
    opened_at: datetime | None
    last_alarm_at: datetime | None
    alarm_count: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    disposition: str | None
    closed_at: datetime | None


class IncidentPage(BaseModel):
    items: list[IncidentSummary]
    total: int


class TimelineItem(BaseModel):
    at: datetime | None
    kind: str
    actor: str
    text: str
    data: dict[str, Any]


class IncidentAlarm(BaseModel):
    id: int
    rule_key: str
    type: str
    priority: int
    title: str
    state: str
    raised_at: datetime | None
    cleared_at: datetime | None
    zone: str | None
    zone_code: str | None
    device: str | None
    device_code: str | None
    event_id: int | None
    attributes: dict[str, Any]


class UnitMetrics(BaseModel):
    en_route_seconds: float | None
    on_scene_seconds: float | None
    on_scene_since_incident_seconds: float | None


class DispatchOut(BaseModel):
    unit_code: str
    unit_name: str
    unit_kind: str
    notified_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    cleared_at: datetime | None
    dispatched_by: str
    metrics: UnitMetrics


class IncidentDetail(IncidentSummary):
    id: int
    facility_timezone: str
    dispatched_at: datetime | None
    on_scene_at: datetime | None
    contained_at: datetime | None
    closed_by: str | None
    disposition_cause: str | None
    exercise: bool
    attention_at: datetime | None
    escalation: dict[str, Any]
    metrics: IncidentMetrics
    alarms: list[IncidentAlarm]
    timeline: list[TimelineItem]
    dispatches: list[DispatchOut]


class MeasureResult(BaseModel):
    priority: int
    measure: str
    target_seconds: int
    target_percent: int
    incidents: int = Field(description="Incidents measured (pending ones are left out).")
    met: int
    percent_met: float | None
    meets_target: bool | None = Field(description="Null when no incident was measured.")


class FacilityReport(BaseModel):
    facility_code: str
    facility_name: str
    measures: list[MeasureResult]


class ResponseTimeReport(BaseModel):
    since: datetime
    until: datetime
    facilities: list[FacilityReport]
    watch_floor: list[MeasureResult] = Field(description="Every facility in the report together.")
