"""Event validation, dead letters and supervision settings (no HTTP here).

Validation is shared by every way an event arrives (HTTP, MQTT, the simulator): `check_event`
turns a parsed payload plus a resolved facility/device into a `ValidatedEvent`, or raises
`InvalidEvent` with a reason a person can act on. What cannot be accepted is kept as a
`DeadLetter` (raw payload, reason, sender, channel) by `record_dead_letter`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.clock import Clock, as_utc
from watchfloor.events import catalogue
from watchfloor.events.ingest import DeviceRef, FacilityRef, ValidatedEvent
from watchfloor.events.models import DeadLetter, SupervisionSetting
from watchfloor.events.schemas import DeadLetterOut, EventIn, MqttEventIn
from watchfloor.problems import Conflict, NotFound
from watchfloor.sites.models import Facility

MAX_SKEW = timedelta(minutes=5)  # occurred_at may be at most this far in the future
MAX_AGE = timedelta(days=30)  # older events are refused (a device clock gone wrong)
MAX_RAW_CHARS = 65_536  # raw payload kept in a dead letter
DEFAULT_SUPERVISION_SECONDS = 200


class InvalidEvent(ValueError):
    """The event cannot be accepted; str(exc) is the reason, for the sender and the dead letter."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes | str) -> Any:
    """Strict JSON: NaN and Infinity (which Python would accept) are refused."""
    return json.loads(raw, parse_constant=_no_constants)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', '')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_event(obj: Any) -> EventIn:
    """A decoded JSON value as an HTTP event body."""
    if not isinstance(obj, dict):
        raise InvalidEvent("an event must be a JSON object")
    try:
        return EventIn.model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None


def parse_mqtt_payload(payload: bytes) -> MqttEventIn:
    """An MQTT message payload (UTF-8 JSON object) as an event."""
    try:
        obj = loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidEvent("the payload is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("the payload must be a JSON object")
    try:
        return MqttEventIn.model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None


def split_device_ref(ref: str) -> tuple[str | None, str]:
    """'FACILITY/DEVICE' → (facility, device); 'DEVICE' → (None, device)."""
    facility, sep, device = ref.partition("/")
    return (facility, device) if sep else (None, ref)


def check_event(
    clock: Clock,
    *,
    facility: FacilityRef,
    device: DeviceRef | None,
    type_: str,
    occurred_at: datetime,
    attributes: dict[str, Any],
    idempotency_key: str | None,
    source: str,
    sender: str,
    allow_system: bool = False,
) -> ValidatedEvent:
    """Check the parts of an event that need the catalogue and the clock."""
    etype = catalogue.lookup(type_)
    if etype is None:
        raise InvalidEvent(
            f"unknown event type '{type_[:60]}'; see the event catalogue (docs/events.md)"
        )
    if etype.system_only and not allow_system:
        raise InvalidEvent(f"'{type_}' is made by Watchfloor itself and cannot be sent")
    now = clock.now()
    try:
        when = as_utc(occurred_at)
        if when > now + MAX_SKEW:
            raise InvalidEvent(
                "occurred_at is more than 5 minutes in the future: check the device's clock"
            )
        if when < now - MAX_AGE:
            raise InvalidEvent("occurred_at is more than 30 days in the past")
    except OverflowError:
        raise InvalidEvent("occurred_at is out of range") from None
    try:
        size = len(json.dumps(attributes, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise InvalidEvent("attributes must be plain JSON") from None
    if size > catalogue.MAX_ATTRIBUTES_JSON:
        raise InvalidEvent(
            f"attributes take {size} bytes of JSON; at most {catalogue.MAX_ATTRIBUTES_JSON}"
        )
    try:
        attrs = catalogue.validate_attributes(etype, attributes)
    except catalogue.AttributesInvalid as exc:
        raise InvalidEvent(str(exc)) from None
    return ValidatedEvent(
        facility_id=facility.id,
        facility_code=facility.code,
        type=etype.name,
        occurred_at=when,
        device_id=device.id if device else None,
        device_code=device.code if device else None,
        zone_id=device.zone_id if device else None,
        attributes=attrs,
        idempotency_key=idempotency_key,
        source=source,
        sender=sender,
    )


# --------------------------------------------------------------------------- dead letters


def storable_text(raw: str | bytes) -> str:
    """Raw payload as text any database stores: lossy UTF-8, no NULs, bounded length."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = text.replace("\x00", "\ufffd")
    if len(text) > MAX_RAW_CHARS:
        text = text[:MAX_RAW_CHARS] + f"… [{len(text) - MAX_RAW_CHARS} more characters cut]"
    return text


def record_dead_letter(
    db: AsyncSession,
    clock: Clock,
    *,
    source: str,
    raw: str | bytes,
    reason: str,
    sender: str = "",
    channel: str = "",
    facility_id: int | None = None,
) -> DeadLetter:
    """Add a dead letter to the session (the caller flushes/commits)."""
    letter = DeadLetter(
        received_at=clock.now(),
        source=source[:20],
        facility_id=facility_id,
        channel=storable_text(channel)[:300],
        sender=storable_text(sender)[:160],
        raw=storable_text(raw),
        reason=storable_text(reason)[:2000],
    )
    db.add(letter)
    return letter


def _dead_letter_scope(scope: Scope) -> ColumnElement[bool]:
    """Dead letters inside a scope; those with no facility only for the whole organisation."""
    if scope.everything:
        return DeadLetter.id.is_not(None)
    conds: list[ColumnElement[bool]] = []
    if scope.facility_ids:
        conds.append(DeadLetter.facility_id.in_(scope.facility_ids))
    if scope.region_ids:
        conds.append(
            DeadLetter.facility_id.in_(
                select(Facility.id).where(Facility.region_id.in_(scope.region_ids))
            )
        )
    return or_(*conds) if conds else false()


async def list_dead_letters(
    db: AsyncSession,
    scope: Scope,
    *,
    resolved: bool | None = False,
    source: str | None = None,
    facility_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DeadLetterOut], int]:
    """Newest first, within the scope. `resolved=None` lists both."""
    cond = [_dead_letter_scope(scope)]
    if resolved is True:
        cond.append(DeadLetter.resolved_at.is_not(None))
    elif resolved is False:
        cond.append(DeadLetter.resolved_at.is_(None))
    if source:
        cond.append(DeadLetter.source == source)
    if facility_id is not None:
        cond.append(DeadLetter.facility_id == facility_id)
    total = (await db.execute(select(func.count(DeadLetter.id)).where(*cond))).scalar_one()
    rows = await db.execute(
        select(DeadLetter, Facility.code)
        .outerjoin(Facility, Facility.id == DeadLetter.facility_id)
        .where(*cond)
        .order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
        .limit(limit)
        .offset(offset)
    )
    items = []
    for letter, code in rows.all():
        out = DeadLetterOut.model_validate(letter)
        out.facility_code = code
        items.append(out)
    return items, int(total)


async def get_dead_letter(db: AsyncSession, letter_id: int) -> DeadLetter:
    letter = await db.get(DeadLetter, letter_id)
    if letter is None:
        raise NotFound(f"There is no dead letter {letter_id}.")
    return letter


async def dead_letter_region(db: AsyncSession, letter: DeadLetter) -> int | None:
    if letter.facility_id is None:
        return None
    return (
        await db.execute(select(Facility.region_id).where(Facility.id == letter.facility_id))
    ).scalar_one_or_none()


async def resolve_dead_letter(
    db: AsyncSession, clock: Clock, actor: Principal, letter: DeadLetter, note: str = ""
) -> DeadLetter:
    """Mark a dead letter dealt with (audited). Resolving twice is a conflict."""
    if letter.resolved_at is not None:
        raise Conflict(f"Dead letter {letter.id} was already resolved by {letter.resolved_by}.")
    letter.resolved_at = clock.now()
    letter.resolved_by = actor.label[:160]
    await audit.record(
        db,
        clock,
        actor,
        "dead_letter.resolve",
        target_type="dead_letter",
        target_id=letter.id,
        facility_id=letter.facility_id,
        details={"note": note} if note else None,
    )
    await db.flush()
    return letter


# --------------------------------------------------------------------------- supervision settings


async def supervision_settings(db: AsyncSession) -> dict[str, int]:
    rows = await db.execute(select(SupervisionSetting.kind, SupervisionSetting.seconds))
    return {kind: seconds for kind, seconds in rows.all()}


async def update_supervision_settings(
    db: AsyncSession, clock: Clock, actor: Principal, kinds: dict[str, int | None]
) -> dict[str, int]:
    current = await supervision_settings(db)
    changes: dict[str, list[int | None]] = {}
    for kind, seconds in sorted(kinds.items()):
        before = current.get(kind)
        if before == seconds:
            continue
        changes[kind] = [before, seconds]
        if seconds is None:
            await db.execute(delete(SupervisionSetting).where(SupervisionSetting.kind == kind))
        elif before is None:
            db.add(SupervisionSetting(kind=kind, seconds=seconds))
        else:
            setting = await db.get(SupervisionSetting, kind)
            assert setting is not None
            setting.seconds = seconds
    if changes:
        await audit.record(
            db,
            clock,
            actor,
            "supervision.update",
            target_type="supervision",
            target_id="kinds",
            details={"changes": changes},
        )
    await db.flush()
    return await supervision_settings(db)


def interval_for(device_seconds: int | None, kind: str, kinds: dict[str, int], default: int) -> int:
    """A device's supervision interval: its own, else its kind's, else the default."""
    if device_seconds:
        return device_seconds
    return kinds.get(kind, default)


__all__: Sequence[str] = (
    "InvalidEvent",
    "check_event",
    "interval_for",
    "list_dead_letters",
    "parse_event",
    "parse_mqtt_payload",
    "record_dead_letter",
    "resolve_dead_letter",
    "split_device_ref",
    "supervision_settings",
    "update_supervision_settings",
)
