"""API schemas of the notify domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from watchfloor.schemas import CleanStr, StrictModel
from watchfloor.sites.schemas import CODE_PATTERN

Code = Annotated[str, Field(pattern=CODE_PATTERN, max_length=40)]
# rollcall_ask is left out: the roll call domain sends it, with each person's own answer link
TemplateName = Literal["lockdown", "lockdown_lifted", "escalation", "test", "custom"]
CapStatus = Literal["Actual", "Exercise", "Test"]
RoleName = Literal[
    "admin",
    "programme_manager",
    "operator",
    "facility_manager",
    "guard",
    "staff",
    "responder",
    "threat_assessor",
]
IdemKey = Annotated[str, Field(min_length=8, max_length=120, pattern=r"^[\w.:-]+$")]
UnitRef = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}/[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
]
Phone = Annotated[str, Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 ()-]+$")]
ContextKey = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,39}$")]
ContextValue = Annotated[CleanStr, Field(max_length=1000)]


class AudienceIn(StrictModel):
    people: list[Code] = Field(
        default_factory=list, max_length=5000, description="Employee ids of people."
    )
    roles: list[RoleName] = Field(
        default_factory=list, max_length=8, description="Everyone with these roles."
    )
    units: list[Code] = Field(
        default_factory=list,
        max_length=200,
        description="Response unit codes (of the alert's facilities).",
    )
    groups: list[Annotated[int, Field(ge=1, le=2_147_483_647)]] = Field(
        default_factory=list, max_length=200, description="Notify group ids."
    )
    everyone: bool = Field(default=False, description="Every active person of the facilities.")


class AlertCreate(StrictModel):
    template: TemplateName
    facilities: list[Code] = Field(min_length=1, max_length=500)
    audience: AudienceIn
    status: CapStatus = "Actual"
    context: dict[ContextKey, ContextValue] = Field(default_factory=dict, max_length=20)
    incident_id: Annotated[int, Field(ge=1, le=9_223_372_036_854_775_807)] | None = None
    idempotency_key: IdemKey | None = None


class AlertPreviewIn(StrictModel):
    template: TemplateName
    facilities: list[Code] = Field(min_length=1, max_length=500)
    status: CapStatus = "Actual"
    context: dict[ContextKey, ContextValue] = Field(default_factory=dict, max_length=20)


class AlertPreview(BaseModel):
    headline: str
    body: str
    instruction: str
    status: str
    cap_event: str
    cap_urgency: str
    cap_severity: str
    cap_certainty: str


class DeliveryCounts(BaseModel):
    standby: int
    queued: int
    sending: int
    sent: int
    delivered: int
    failed: int
    recipients: int
    acknowledged: int


class AlertSummary(BaseModel):
    alert_id: int
    identifier: str
    template: str
    status: str
    headline: str
    sender: str
    created_at: datetime
    incident_id: int | None
    facilities: list[str]
    recipient_count: int
    counts: DeliveryCounts


class AlertPage(BaseModel):
    items: list[AlertSummary]
    total: int


class DeliveryOut(BaseModel):
    delivery_id: int
    recipient_kind: str
    recipient_id: int
    recipient_name: str
    channel: str
    rank: int
    address: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_how: str | None
    acknowledged_by: str | None


class AlertDetail(AlertSummary):
    text: str
    instruction: str
    cap_url: str
    deliveries: list[DeliveryOut]
    unacknowledged: list[str]


class AckOut(BaseModel):
    alert_id: int
    delivery_id: int
    acknowledged: bool
    acknowledged_at: datetime | None
    status: str


class SmsReplyIn(StrictModel):
    sender: Phone = Field(alias="from")
    text: Annotated[CleanStr, Field(max_length=1600)]


class SmsReplyOut(BaseModel):
    acknowledged: bool
    alert_id: int | None = None
    detail: str


class GroupIn(StrictModel):
    name: Annotated[CleanStr, Field(min_length=1, max_length=120)]
    facility: Code | None = Field(default=None, description="Unset = an organisation-wide group.")
    description: Annotated[CleanStr, Field(max_length=2000)] = ""
    people: list[Code] = Field(default_factory=list, max_length=5000)
    units: list[UnitRef] = Field(
        default_factory=list, max_length=500, description="FACILITY/UNIT codes."
    )


class GroupUpdate(StrictModel):
    name: Annotated[CleanStr, Field(min_length=1, max_length=120)] | None = None
    description: Annotated[CleanStr, Field(max_length=2000)] | None = None
    people: list[Code] | None = Field(default=None, max_length=5000)
    units: list[UnitRef] | None = Field(default=None, max_length=500)


class GroupOut(BaseModel):
    group_id: int
    name: str
    facility: str | None
    description: str
    people: list[str]
    units: list[str]
    created_at: datetime
    updated_at: datetime
