"""API (and import) schemas of the facility registry.

The `*Create` models describe one record completely; the importer validates every row of a YAML or
CSV file with these same models, so the API and the import accept exactly the same values.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from watchfloor.schemas import OutModel, StrictModel
from watchfloor.sites.models import DeviceKind, DeviceStatus, FacilityKind, UnitKind, ZoneKind

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
CODE_RE = re.compile(CODE_PATTERN)
MAX_INT = 2_147_483_647  # a PostgreSQL INTEGER
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Code = Annotated[
    str,
    Field(
        pattern=CODE_PATTERN,
        max_length=40,
        description="Letters, digits, '.', '_' or '-'; starts with a letter or digit; ≤ 40.",
        examples=["DAL-FO"],
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
HHMM = Annotated[str, Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", examples=["08:00"])]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: str) -> str:
    if value in _zones() or value == "UTC":
        return value
    raise ValueError(
        f"'{value}' is not an IANA time zone; use a name like 'America/Chicago' or 'UTC'"
    )


class SitesModel(StrictModel):
    """StrictModel that also refuses NUL characters (PostgreSQL cannot store them)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null; leave the field out to keep its value")
    return value


class Contact(SitesModel):
    channel: Literal["phone", "email", "sms", "radio", "webhook"]
    value: str = Field(min_length=1, max_length=300)


class OperatingHours(SitesModel):
    """Opening and closing time (24-hour HH:MM, local time) per weekday; null when closed."""

    mon: tuple[HHMM, HHMM] | None = None
    tue: tuple[HHMM, HHMM] | None = None
    wed: tuple[HHMM, HHMM] | None = None
    thu: tuple[HHMM, HHMM] | None = None
    fri: tuple[HHMM, HHMM] | None = None
    sat: tuple[HHMM, HHMM] | None = None
    sun: tuple[HHMM, HHMM] | None = None

    @field_validator(*WEEKDAYS, mode="after")
    @classmethod
    def _open_before_close(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        if value is not None and value[0] == value[1]:
            raise ValueError("opening and closing times are the same; use null when closed")
        return value


def hours_to_db(hours: OperatingHours | None) -> dict[str, Any]:
    return {} if hours is None else hours.model_dump(mode="json")


# -- organisation and regions -----------------------------------------------------------------


class OrganisationOut(OutModel):
    code: str
    name: str
    created_at: datetime
    updated_at: datetime


class OrganisationUpdate(SitesModel):
    code: Code | None = None
    name: Name | None = None

    _nn = field_validator("code", "name", mode="before")(_not_null)


class RegionCreate(SitesModel):
    code: Code
    name: Name


class RegionUpdate(SitesModel):
    name: Name | None = None

    _nn = field_validator("name", mode="before")(_not_null)


class RegionOut(OutModel):
    code: str
    name: str
    facility_count: int = 0
    created_at: datetime
    updated_at: datetime


# -- facilities ---------------------------------------------------------------------------------


class FacilityCreate(SitesModel):
    code: Code
    name: Name
    region: Code = Field(description="The code of the region the facility belongs to.")
    kind: FacilityKind = FacilityKind.FIELD_OFFICE
    address: str = Field(default="", max_length=300)
    city: str = Field(default="", max_length=120)
    state: str = Field(default="", max_length=60)
    postal_code: str = Field(default="", max_length=20)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone name.")
    population: Count = 0
    floor_area_sqft: Count = 0
    operating_hours: OperatingHours | None = None

    _tz = field_validator("timezone", mode="after")(check_timezone)


class FacilityUpdate(SitesModel):
    name: Name | None = None
    region: Code | None = None
    kind: FacilityKind | None = None
    address: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=120)
    state: str | None = Field(default=None, max_length=60)
    postal_code: str | None = Field(default=None, max_length=20)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    timezone: str | None = Field(default=None, max_length=64)
    population: Count | None = None
    floor_area_sqft: Count | None = None
    operating_hours: OperatingHours | None = None

    _nn = field_validator(
        "name",
        "region",
        "kind",
        "address",
        "city",
        "state",
        "postal_code",
        "timezone",
        "population",
        "floor_area_sqft",
        mode="before",
    )(_not_null)

    @field_validator("timezone", mode="after")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class FacilityOut(OutModel):
    code: str
    name: str
    region: str
    kind: str
    address: str
    city: str
    state: str
    postal_code: str
    latitude: float | None
    longitude: float | None
    timezone: str
    population: int
    floor_area_sqft: int
    operating_hours: dict[str, Any]
    created_at: datetime
    updated_at: datetime


# -- zones, devices, response units -------------------------------------------------------------


class ZoneCreate(SitesModel):
    code: Code
    name: Name
    kind: ZoneKind = ZoneKind.OTHER
    floor: str = Field(default="", max_length=20)


class ZoneUpdate(SitesModel):
    name: Name | None = None
    kind: ZoneKind | None = None
    floor: str | None = Field(default=None, max_length=20)

    _nn = field_validator("name", "kind", "floor", mode="before")(_not_null)


class ZoneOut(OutModel):
    code: str
    name: str
    kind: str
    floor: str
    created_at: datetime
    updated_at: datetime


Protocol = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9+.-]{0,19}$",
        description="How Watchfloor talks to the device: osdp, http, mqtt, onvif, ...",
        examples=["osdp"],
    ),
]


class DeviceCreate(SitesModel):
    code: Code
    name: Name
    kind: DeviceKind
    zone: Code | None = Field(default=None, description="Code of a zone of the same facility.")
    protocol: Protocol = "http"
    address: str = Field(default="", max_length=200, examples=["osdp://controller-1/3"])
    status: DeviceStatus = DeviceStatus.UNKNOWN
    supervision_seconds: int | None = Field(default=None, ge=1, le=604_800)


class DeviceUpdate(SitesModel):
    name: Name | None = None
    kind: DeviceKind | None = None
    zone: Code | None = None
    protocol: Protocol | None = None
    address: str | None = Field(default=None, max_length=200)
    status: DeviceStatus | None = None
    supervision_seconds: int | None = Field(default=None, ge=1, le=604_800)

    _nn = field_validator("name", "kind", "protocol", "address", "status", mode="before")(_not_null)


class DeviceOut(OutModel):
    code: str
    name: str
    kind: str
    zone: str | None
    protocol: str
    address: str
    status: str
    supervision_seconds: int | None
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ResponseUnitCreate(SitesModel):
    code: Code
    name: Name
    kind: UnitKind
    contacts: list[Contact] = Field(default_factory=list, max_length=20)
    notes: str = Field(default="", max_length=5000)


class ResponseUnitUpdate(SitesModel):
    name: Name | None = None
    kind: UnitKind | None = None
    contacts: list[Contact] | None = Field(default=None, max_length=20)
    notes: str | None = Field(default=None, max_length=5000)

    _nn = field_validator("name", "kind", "contacts", "notes", mode="before")(_not_null)


class ResponseUnitOut(OutModel):
    code: str
    name: str
    kind: str
    contacts: list[dict[str, str]]
    notes: str
    created_at: datetime
    updated_at: datetime
