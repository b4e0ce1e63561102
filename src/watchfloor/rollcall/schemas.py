"""API bodies and answers of the rollcall domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from watchfloor.schemas import CleanStr, OutModel, StrictModel
from watchfloor.sites.schemas import CODE_PATTERN


class StartIn(StrictModel):
    facility_code: str = Field(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
    reason: CleanStr = Field(default="", max_length=300, description="Why (shown to operators).")
    exercise: bool = Field(default=False, description="A drill: everything marked EXERCISE.")
    incident_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="The incident this roll call is part of."
    )


class AnswerIn(StrictModel):
    answer: Literal["safe", "need_help"]
    zone_code: str | None = Field(
        default=None,
        pattern=CODE_PATTERN,
        max_length=40,
        description="Where the person is (their last known zone), if the operator knows.",
    )
    note: CleanStr = Field(default="", max_length=500, description="e.g. 'called on radio'.")


class SmsReplyIn(StrictModel):
    """What the SMS gateway received: the sender's number and the text they sent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    from_: CleanStr = Field(alias="from", min_length=3, max_length=40, description="E.164 sender.")
    text: CleanStr = Field(max_length=480, description="The reply: SAFE or HELP.")


class SmsReplyOut(OutModel):
    roll_call_id: int
    answer: str
    reply: str  # a text the gateway may send back to the person


class TallyOut(OutModel):
    safe: int
    need_help: int
    no_answer: int
    total: int


class EntryOut(OutModel):
    id: int
    kind: str
    name: str
    employee_id: str
    answer: str
    answered_at: datetime | None
    channel: str | None
    answered_by: str | None
    zone_name: str
    note: str


class AnswerHistoryOut(OutModel):
    entry_id: int
    answer: str
    channel: str
    answered_by: str | None
    at: datetime
    note: str


class RollCallOut(OutModel):
    id: int
    facility_code: str
    facility_name: str
    state: str
    exercise: bool
    reason: str
    trigger: str
    lockdown_id: int | None
    incident_id: int | None
    started_by: str
    started_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    asked: bool  # everyone was sent the question through notify
    ask_note: str
    version: int
    tally: TallyOut


class RollCallDetail(RollCallOut):
    entries: list[EntryOut]  # need help first, then no answer, then safe
    history: list[AnswerHistoryOut]


class RollCallPage(OutModel):
    items: list[RollCallOut]
    total: int


class AnswerOut(OutModel):
    entry: EntryOut
    tally: TallyOut
    changed: bool
    alarm_event_id: int | None
