"""The catalogue of event types Watchfloor accepts, and the attributes each one takes.

An event type not listed here is refused (dead-lettered with the reason). Types whose attributes
matter to rules or to the operator have a pydantic model: unknown attributes are refused there
too, so a typo in a device's integration is noticed at once instead of silently ignored. Types
without a model accept any small JSON object of attributes. docs/events.md documents the same
catalogue for integrators; `catalogue_table()` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from watchfloor.schemas import CleanStr, StrictModel

MAX_ATTRIBUTES_JSON = 4096  # bytes of JSON an event's attributes may take


class NoAttributes(StrictModel):
    """Attributes are not expected (none are defined)."""


class PanicAttrs(StrictModel):
    button: CleanStr | None = Field(default=None, max_length=80, description="Which button.")
    silent: bool = Field(default=True, description="Silent (no local siren) press.")


class DuressAttrs(StrictModel):
    reader: CleanStr | None = Field(default=None, max_length=80)
    credential: CleanStr | None = Field(
        default=None, max_length=80, description="Credential number that entered the code."
    )


class DoorAttrs(StrictModel):
    door: CleanStr | None = Field(default=None, max_length=80, description="Door name or number.")
    held_seconds: float | None = Field(
        default=None, ge=0, le=86_400, description="door.held_open: how long it was held."
    )


class MotionAttrs(StrictModel):
    sensor: CleanStr | None = Field(default=None, max_length=80)
    count: int | None = Field(default=None, ge=0, le=100_000, description="Detections merged.")


class WeaponAttrs(StrictModel):
    confidence: float = Field(ge=0, le=1, description="Detector confidence, 0..1.")
    camera_zone: CleanStr | None = Field(default=None, max_length=80)
    label: CleanStr | None = Field(default=None, max_length=40, description="e.g. handgun.")
    snapshot_url: CleanStr | None = Field(default=None, max_length=500)


class PersonAttrs(StrictModel):
    confidence: float | None = Field(default=None, ge=0, le=1)
    camera_zone: CleanStr | None = Field(default=None, max_length=80)
    count: int | None = Field(default=None, ge=0, le=10_000, description="People in view.")


class AccessDeniedAttrs(StrictModel):
    credential: CleanStr | None = Field(default=None, max_length=80)
    reason: CleanStr | None = Field(
        default=None, max_length=80, description="e.g. expired, unknown, schedule, pin."
    )


class HeartbeatAttrs(StrictModel):
    firmware: CleanStr | None = Field(default=None, max_length=60)
    battery_percent: float | None = Field(default=None, ge=0, le=100)
    uptime_seconds: int | None = Field(default=None, ge=0)


class TroubleAttrs(StrictModel):
    condition: CleanStr = Field(
        default="unspecified",
        max_length=80,
        description="e.g. low_battery, power_loss, comms, tamper_switch, camera_obscured.",
    )
    detail: CleanStr | None = Field(default=None, max_length=500)


class OfflineAttrs(StrictModel):
    last_seen_at: CleanStr | None = Field(default=None, max_length=40)
    interval_seconds: int | None = Field(default=None, ge=0)
    silent_seconds: float | None = Field(default=None, ge=0)


class RestoredAttrs(StrictModel):
    previous_status: CleanStr | None = Field(default=None, max_length=20)


class TestSignalAttrs(StrictModel):
    schedule: CleanStr | None = Field(default=None, max_length=80)
    sequence: int | None = Field(default=None, ge=0)


class TestSignalMissingAttrs(StrictModel):
    signal_id: int | None = Field(default=None, ge=0, description="The test signal not processed.")
    sent_at: CleanStr | None = Field(default=None, max_length=40)
    grace_seconds: int | None = Field(default=None, ge=0)


class NeedsHelpAttrs(StrictModel):
    person: CleanStr | None = Field(default=None, max_length=200, description="Who needs help.")
    employee_id: CleanStr | None = Field(default=None, max_length=40)
    last_known_zone: CleanStr | None = Field(default=None, max_length=120)
    roll_call_id: int | None = Field(default=None, ge=0, description="The roll call answered.")
    channel: CleanStr | None = Field(default=None, max_length=20, description="link, sms, console.")


class LockFailedAttrs(StrictModel):
    door: CleanStr | None = Field(default=None, max_length=80, description="Door name or number.")
    lockdown_id: int | None = Field(default=None, ge=0, description="The lockdown it failed in.")
    attempts: int | None = Field(default=None, ge=0, le=1000)
    reason: CleanStr | None = Field(default=None, max_length=200)
    exercise: bool = Field(default=False, description="Failed during a drill (EXERCISE).")


@dataclass(frozen=True)
class EventType:
    name: str
    category: str  # life_safety | intrusion | trouble | information
    description: str
    attributes: type[StrictModel] | None  # None: any small JSON object
    system_only: bool = False  # made by Watchfloor itself; devices may not send it


CATALOGUE: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(
            "panic.pressed",
            "life_safety",
            "A panic button (hardware, web or phone) was pressed.",
            PanicAttrs,
        ),
        EventType(
            "duress.code",
            "life_safety",
            "A duress PIN or code was entered at a reader or keypad.",
            DuressAttrs,
        ),
        EventType(
            "weapon.detected",
            "life_safety",
            "A camera analytic or screening device detected a weapon.",
            WeaponAttrs,
        ),
        EventType(
            "person.needs_help",
            "life_safety",
            'A person answered a roll call "need help" (or an operator recorded it for them).',
            NeedsHelpAttrs,
            system_only=True,
        ),
        EventType(
            "door.lock_failed",
            "trouble",
            "A door did not confirm locked during a lockdown after every retry.",
            LockFailedAttrs,
            system_only=True,
        ),
        EventType("door.forced", "intrusion", "A door opened without a valid access.", DoorAttrs),
        EventType(
            "door.held_open",
            "intrusion",
            "A door stayed open past its allowed time after a valid access.",
            DoorAttrs,
        ),
        EventType("door.tamper", "trouble", "A door contact or lock reported tamper.", DoorAttrs),
        EventType(
            "motion.detected", "intrusion", "A motion sensor detected movement.", MotionAttrs
        ),
        EventType("glass.break", "intrusion", "A glass-break sensor triggered.", MotionAttrs),
        EventType(
            "person.detected",
            "information",
            "A camera analytic detected a person (e.g. in a closed area).",
            PersonAttrs,
        ),
        EventType(
            "reader.access_denied",
            "information",
            "A card reader refused a credential.",
            AccessDeniedAttrs,
        ),
        EventType(
            "device.heartbeat",
            "information",
            "A device says it is alive (supervision counts every event, not only these).",
            HeartbeatAttrs,
        ),
        EventType(
            "device.trouble",
            "trouble",
            "A device reports a fault: low battery, power or communication loss, obstruction.",
            TroubleAttrs,
        ),
        EventType(
            "device.restored",
            "trouble",
            "A device is back to normal (after trouble, or heard again after being offline).",
            RestoredAttrs,
        ),
        EventType(
            "device.offline",
            "trouble",
            "Watchfloor has not heard from a device within its supervision interval.",
            OfflineAttrs,
            system_only=True,
        ),
        EventType(
            "test.signal",
            "information",
            "A scheduled end-to-end test signal that proves a site's path works.",
            TestSignalAttrs,
        ),
        EventType(
            "test.signal_missing",
            "trouble",
            "A facility's latest test signal was not processed within its grace period.",
            TestSignalMissingAttrs,
            system_only=True,
        ),
    )
}


class AttributesInvalid(ValueError):
    """The attributes do not fit the event type; the message says how."""


def lookup(name: str) -> EventType | None:
    return CATALOGUE.get(name)


def validate_attributes(event_type: EventType, attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes, checked against the type's model and given back as plain JSON."""
    if event_type.attributes is None:
        return attributes
    try:
        model = event_type.attributes.model_validate(attributes)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ())) or "attributes"
            parts.append(f"{loc}: {err.get('msg', '')}")
        raise AttributesInvalid(
            f"attributes do not fit '{event_type.name}': " + "; ".join(parts)
        ) from None
    return model.model_dump(mode="json", exclude_none=True)


def catalogue_table() -> list[dict[str, Any]]:
    """The catalogue as data: type, category, description, attributes with their meaning."""
    rows = []
    for t in CATALOGUE.values():
        attrs: dict[str, str] = {}
        if t.attributes is not None:
            for name, field in t.attributes.model_fields.items():
                attrs[name] = field.description or ""
        rows.append(
            {
                "type": t.name,
                "category": t.category,
                "description": t.description,
                "attributes": attrs,
                "system_only": t.system_only,
            }
        )
    return rows
