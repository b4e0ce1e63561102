"""The facility registry: organisation → regions → facilities → zones → devices; response units."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from watchfloor.db import Base


class FacilityKind(StrEnum):
    FIELD_OFFICE = "field_office"
    DETENTION = "detention"
    HOLDING = "holding"
    COURTHOUSE = "courthouse"
    CLINIC = "clinic"
    SCHOOL = "school"
    OTHER = "other"


class ZoneKind(StrEnum):
    LOBBY = "lobby"
    SCREENING = "screening"
    SECURE_AREA = "secure_area"
    PERIMETER = "perimeter"
    OFFICE = "office"
    HOLDING = "holding"
    COURTROOM = "courtroom"
    PARKING = "parking"
    OTHER = "other"


class DeviceKind(StrEnum):
    DOOR = "door"
    READER = "reader"
    PANIC_BUTTON = "panic_button"
    SENSOR = "sensor"
    CAMERA = "camera"
    CONTROLLER = "controller"


class DeviceStatus(StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"
    TROUBLE = "trouble"
    DISABLED = "disabled"


class UnitKind(StrEnum):
    ONSITE_SECURITY = "onsite_security"
    POLICE = "police"
    EMS = "ems"
    FIRE = "fire"


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    regions: Mapped[list[Region]] = relationship(back_populates="organisation")


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    organisation: Mapped[Organisation] = relationship(back_populates="regions")
    facilities: Mapped[list[Facility]] = relationship(back_populates="region")


class Facility(Base):
    __tablename__ = "facilities"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20), default=FacilityKind.FIELD_OFFICE)
    address: Mapped[str] = mapped_column(String(300), default="")
    city: Mapped[str] = mapped_column(String(120), default="")
    state: Mapped[str] = mapped_column(String(60), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    population: Mapped[int] = mapped_column(Integer, default=0)
    floor_area_sqft: Mapped[int] = mapped_column(Integer, default=0)
    # {"mon": ["08:00", "18:00"], ..., "sun": null}: local times in the facility's time zone
    operating_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    region: Mapped[Region] = relationship(back_populates="facilities")
    zones: Mapped[list[Zone]] = relationship(
        back_populates="facility", cascade="all, delete-orphan", order_by="Zone.code"
    )
    devices: Mapped[list[Device]] = relationship(
        back_populates="facility", cascade="all, delete-orphan", order_by="Device.code"
    )
    response_units: Mapped[list[ResponseUnit]] = relationship(
        back_populates="facility", cascade="all, delete-orphan", order_by="ResponseUnit.code"
    )


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("facility_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default=ZoneKind.OTHER)
    floor: Mapped[str] = mapped_column(String(20), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    facility: Mapped[Facility] = relationship(back_populates="zones")


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("facility_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    zone_id: Mapped[int | None] = mapped_column(
        ForeignKey("zones.id", ondelete="SET NULL"), index=True
    )
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    protocol: Mapped[str] = mapped_column(String(20), default="http")
    address: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default=DeviceStatus.UNKNOWN)
    supervision_seconds: Mapped[int | None] = mapped_column(Integer)
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    facility: Mapped[Facility] = relationship(back_populates="devices")
    zone: Mapped[Zone | None] = relationship()


class ResponseUnit(Base):
    __tablename__ = "response_units"
    __table_args__ = (UniqueConstraint("facility_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    # [{"channel": "phone" | "email" | "sms" | "radio" | "webhook", "value": "..."}]
    contacts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    facility: Mapped[Facility] = relationship(back_populates="response_units")
