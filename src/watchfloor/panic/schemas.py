"""Request and response bodies of the staff panic API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from watchfloor.schemas import CleanStr, StrictModel
from watchfloor.sites.schemas import CODE_PATTERN

DIGITS = r"^[0-9]{4,8}$"


class PanicCodesIn(StrictModel):
    cancel_code: str = Field(pattern=DIGITS, description="4-8 digits: cancels a press by mistake.")
    duress_code: str = Field(
        pattern=DIGITS,
        description="4-8 digits, not the cancel code: looks like a cancel, raises a duress alarm.",
    )


class PanicCodesOut(BaseModel):
    updated_at: datetime


class PanicIn(StrictModel):
    facility_code: str | None = Field(
        default=None,
        pattern=CODE_PATTERN,
        max_length=40,
        description="Where you are; defaults to your staff record's facility or your one grant.",
    )
    zone_code: str | None = Field(default=None, pattern=CODE_PATTERN, max_length=40)


class PanicOut(BaseModel):
    """A discreet confirmation: nothing on screen says an alarm was raised."""

    press_id: int
    cancel_until: datetime


class CancelIn(StrictModel):
    # the format (4-8 digits) is checked after the press is found to be the caller's, so a
    # stranger learns nothing and a malformed code is a 422 that does not use up an attempt
    code: CleanStr = Field(max_length=20, description="Your cancel code (4-8 digits).")


class CancelOut(BaseModel):
    status: Literal["cancelled"]
