"""API schemas of alarm rules and alarms, and the shape of a rule's conditions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from watchfloor.schemas import CleanStr, OutModel, StrictModel
from watchfloor.sites.models import ZoneKind
from watchfloor.sites.schemas import CODE_PATTERN

RULE_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,79}$"
ALARM_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,59}$"
ATTRIBUTE_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"

RuleKey = Annotated[str, Field(pattern=RULE_KEY_PATTERN, max_length=80, examples=["door_forced"])]
AlarmType = Annotated[str, Field(pattern=ALARM_TYPE_PATTERN, max_length=60, examples=["intrusion"])]
EventTypeName = Annotated[str, Field(min_length=3, max_length=60, examples=["door.forced"])]
ZoneCode = Annotated[str, Field(pattern=CODE_PATTERN, max_length=40)]
PriorityValue = Annotated[int, Field(ge=1, le=4, description="1 life safety … 4 information.")]
Threshold = StrictBool | Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
AttributeValue = Threshold | Annotated[CleanStr, Field(max_length=200)]


class RuleConditions(StrictModel):
    """All optional; every condition given must hold for the rule to raise an alarm.

    - zones / zone_kinds: the event's zone (its code, or its kind) is one of these;
    - schedule: "outside_hours" / "inside_hours" of the facility's operating hours, in its own
      time zone (a facility without operating hours is treated as open around the clock);
    - count + window_seconds: raise only when `count` events of this type came from the same
      device (the same facility for events without a device) within `window_seconds`, and not
      again while an alarm of this rule for it is younger than the window. **Ignored for P1
      rules: a life-safety event always raises its own alarm.**
    - attributes: `name_min` / `name_max` compare a numeric attribute (>= / <=); any other name
      must equal the event's attribute.
    """

    zones: list[ZoneCode] | None = Field(default=None, max_length=100)
    zone_kinds: list[ZoneKind] | None = Field(default=None, max_length=20)
    schedule: Literal["always", "outside_hours", "inside_hours"] = "always"
    count: int | None = Field(default=None, ge=1, le=10_000)
    window_seconds: int | None = Field(default=None, ge=1, le=86_400)
    attributes: dict[Annotated[str, Field(pattern=ATTRIBUTE_KEY_PATTERN)], AttributeValue] = Field(
        default_factory=dict, max_length=20
    )

    @model_validator(mode="after")
    def _count_needs_window(self) -> RuleConditions:
        if (self.count is None) != (self.window_seconds is None):
            raise ValueError("count and window_seconds go together: give both or neither")
        return self

    @field_validator("attributes")
    @classmethod
    def _thresholds_numeric(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, threshold in value.items():
            if key.endswith(("_min", "_max")) and (
                isinstance(threshold, bool) or not isinstance(threshold, int | float)
            ):
                raise ValueError(f"'{key}' is a threshold: give a number")
        return value

    def to_db(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


class RuleCreate(StrictModel):
    key: RuleKey
    name: Annotated[CleanStr, Field(min_length=1, max_length=200)]
    event_type: EventTypeName
    alarm_type: AlarmType
    priority: PriorityValue
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    enabled: bool = True
    facility_code: str | None = Field(
        default=None,
        pattern=CODE_PATTERN,
        max_length=40,
        description="Make this a facility override (replaces the organisation rule with the "
        "same key at that facility). Leave out for an organisation-wide rule.",
    )


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null; leave the field out to keep its value")
    return value


class RuleUpdate(StrictModel):
    name: Annotated[CleanStr, Field(min_length=1, max_length=200)] | None = None
    event_type: EventTypeName | None = None
    alarm_type: AlarmType | None = None
    priority: PriorityValue | None = None
    conditions: RuleConditions | None = None
    enabled: bool | None = None

    _nn = field_validator(
        "name", "event_type", "alarm_type", "priority", "conditions", "enabled", mode="before"
    )(_not_null)


class RuleOut(OutModel):
    id: int
    key: str
    name: str
    facility_code: str | None = Field(description="Null for an organisation-wide rule.")
    event_type: str
    alarm_type: str
    priority: int
    conditions: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AlarmOut(OutModel):
    id: int
    incident_id: int | None
    facility_code: str
    facility_name: str
    zone: str | None
    device: str | None
    rule_key: str
    type: str
    priority: int
    title: str
    state: str
    raised_at: datetime
    cleared_at: datetime | None
    event_id: int | None
    attributes: dict[str, Any]
