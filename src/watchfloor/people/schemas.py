"""Request and response bodies of the people domain (staff records)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import EmailStr, Field, field_validator

from watchfloor.auth.roles import Role
from watchfloor.people.models import VettingStatus
from watchfloor.schemas import CleanStr, OutModel, StrictModel

EMPLOYEE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
PHONE_PATTERN = r"^[0-9+()./ -]*(?:(?:x|ext\.?) ?[0-9]+)?$"
# Vetting expiry dates outside this window are typing mistakes, not real clearances.
EARLIEST_VETTING_DATE = date(1950, 1, 1)
LATEST_VETTING_DATE = date(2199, 12, 31)

EmployeeId = Annotated[str, Field(pattern=EMPLOYEE_ID_PATTERN, examples=["E-10442"])]
Name = Annotated[CleanStr, Field(min_length=1, max_length=100)]
JobTitle = Annotated[CleanStr, Field(max_length=120)]
Phone = Annotated[str, Field(max_length=40, pattern=PHONE_PATTERN, examples=["+1 214 555 0100"])]


class ContactKind(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    RADIO = "radio"
    PAGER = "pager"
    WEBHOOK = "webhook"


class ContactChannel(StrictModel):
    """One way to reach a person, in order of preference."""

    channel: ContactKind
    value: Annotated[CleanStr, Field(min_length=1, max_length=200)]


def _check_vetting_date(value: date | None) -> date | None:
    if value is not None and not EARLIEST_VETTING_DATE <= value <= LATEST_VETTING_DATE:
        raise ValueError(
            f"a vetting expiry date must lie between {EARLIEST_VETTING_DATE} and "
            f"{LATEST_VETTING_DATE}"
        )
    return value


class PersonCreate(StrictModel):
    employee_id: EmployeeId
    given_name: Name
    family_name: Name
    job_title: JobTitle = ""
    role: Role = Role.STAFF
    email: EmailStr | None = None
    phone: Phone = ""
    contacts: list[ContactChannel] = Field(default_factory=list, max_length=10)
    vetting_status: VettingStatus = VettingStatus.PENDING
    vetting_expires_on: date | None = None
    active: bool = True

    _vetting_date = field_validator("vetting_expires_on")(_check_vetting_date)


class PersonUpdate(StrictModel):
    """Only the fields sent are changed; send null to clear an email or a vetting expiry."""

    given_name: Name | None = None
    family_name: Name | None = None
    job_title: JobTitle | None = None
    role: Role | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    contacts: list[ContactChannel] | None = Field(default=None, max_length=10)
    vetting_status: VettingStatus | None = None
    vetting_expires_on: date | None = None
    active: bool | None = None
    facility_code: Annotated[CleanStr, Field(min_length=1, max_length=40)] | None = Field(
        default=None, description="Move the person to another facility (needs write on both)."
    )

    _vetting_date = field_validator("vetting_expires_on")(_check_vetting_date)

    @field_validator(
        "given_name",
        "family_name",
        "job_title",
        "role",
        "phone",
        "contacts",
        "vetting_status",
        "active",
        "facility_code",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out but not set to null")
        return value


class PersonOut(OutModel):
    id: int
    employee_id: str
    facility_code: str
    given_name: str
    family_name: str
    job_title: str
    role: str
    email: str
    phone: str
    contacts: list[dict[str, str]]
    vetting_status: str
    vetting_expires_on: date | None
    vetting_current: bool = Field(
        description="Cleared and not past the expiry date (as of the request)."
    )
    active: bool
    created_at: datetime
    updated_at: datetime
