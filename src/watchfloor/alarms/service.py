"""Alarm rules (CRUD, audited), turning an event into alarms, and the active alarm queue.

`handle_event` is the core of the pipeline's alarm stage (handlers.py calls it for each
`event.*` bus message): device status bookkeeping, rule evaluation, alarm rows, correlation into
incidents, and one `alarm.<facility>.p<N>` outbox message per alarm — all in the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms import rules as evaluation
from watchfloor.alarms.defaults import (
    CLEARED_BY_RESTORE,
    DEFAULT_RULE_KEYS,
    LIFE_SAFETY_CONDITIONS,
    LIFE_SAFETY_KEYS,
)
from watchfloor.alarms.models import Alarm, AlarmRule, AlarmState, Priority
from watchfloor.alarms.schemas import AlarmOut, RuleCreate, RuleOut, RuleUpdate
from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.bus import outbox, subject_token
from watchfloor.clock import Clock, as_utc
from watchfloor.incidents import service as incidents
from watchfloor.incidents.models import Incident, TimelineEntry
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.sites import service as sites
from watchfloor.sites.models import Device, DeviceStatus, Facility, Zone

# used when the events catalogue cannot be imported
_LOCAL_EVENT_TYPES = frozenset(
    {
        "panic.pressed", "duress.code", "door.forced", "door.held_open", "door.tamper",
        "motion.detected", "glass.break", "weapon.detected", "person.detected",
        "reader.access_denied", "device.heartbeat", "device.trouble", "device.restored",
        "device.offline", "test.signal",
    }
)  # fmt: skip


def known_event_types() -> frozenset[str]:
    try:
        from watchfloor.events.catalogue import CATALOGUE
    except ImportError:  # pragma: no cover - the catalogue ships with the events domain
        return _LOCAL_EVENT_TYPES
    return frozenset(CATALOGUE) | _LOCAL_EVENT_TYPES


# -- rules --------------------------------------------------------------------------------------


def _check_event_type(event_type: str) -> None:
    if event_type not in known_event_types():
        raise InvalidInput(
            f"Unknown event type '{event_type}'. Known types: "
            + ", ".join(sorted(known_event_types()))
        )


def _check_life_safety(key: str, priority: int, enabled: bool, conditions: dict[str, Any]) -> None:
    """Panic, duress and weapon rules can never be switched off, demoted or narrowed."""
    if key not in LIFE_SAFETY_KEYS:
        return
    if not enabled or priority != Priority.P1:
        raise InvalidInput(
            f"'{key}' is a life-safety rule: it stays enabled and P1 at every facility."
        )
    extra = sorted(set(conditions) - LIFE_SAFETY_CONDITIONS)
    if extra:
        raise InvalidInput(
            f"'{key}' is a life-safety rule: only attribute conditions are allowed, not "
            + ", ".join(extra)
            + "."
        )


def rule_out(rule: AlarmRule, facility: Facility | None) -> RuleOut:
    return RuleOut(
        id=rule.id,
        key=rule.key,
        name=rule.name,
        facility_code=facility.code if facility else None,
        event_type=rule.event_type,
        alarm_type=rule.alarm_type,
        priority=rule.priority,
        conditions=rule.conditions or {},
        enabled=rule.enabled,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _facility_scope(scope: Scope) -> Any:
    return sites.scope_filter(scope)


async def list_rules(
    db: AsyncSession, scope: Scope, *, facility_id: int | None = None
) -> list[RuleOut]:
    """Organisation rules, and the facility overrides within scope (only that facility's with
    `facility_id`)."""
    stmt = (
        select(AlarmRule, Facility)
        .outerjoin(Facility, Facility.id == AlarmRule.facility_id)
        .where(or_(AlarmRule.facility_id.is_(None), _facility_scope(scope)))
    )
    if facility_id is not None:
        stmt = stmt.where(
            or_(AlarmRule.facility_id.is_(None), AlarmRule.facility_id == facility_id)
        )
    rows = (await db.execute(stmt.order_by(AlarmRule.priority, AlarmRule.key, AlarmRule.id))).all()
    return [rule_out(r, f) for r, f in rows]


async def get_rule(db: AsyncSession, rule_id: int) -> tuple[AlarmRule, Facility | None]:
    rule = await db.get(AlarmRule, rule_id)
    if rule is None:
        raise NotFound(f"There is no alarm rule {rule_id}.")
    facility = await db.get(Facility, rule.facility_id) if rule.facility_id else None
    return rule, facility


async def create_rule(
    db: AsyncSession, clock: Clock, actor: Principal, data: RuleCreate, facility: Facility | None
) -> AlarmRule:
    _check_event_type(data.event_type)
    _check_life_safety(data.key, data.priority, data.enabled, data.conditions.to_db())
    fid = facility.id if facility else None
    clash = await db.scalar(
        select(AlarmRule.id).where(
            AlarmRule.key == data.key,
            AlarmRule.facility_id == fid if fid is not None else AlarmRule.facility_id.is_(None),
        )
    )
    if clash is not None:
        where = f"at {facility.code}" if facility else "for the organisation"
        raise Conflict(f"A rule with key '{data.key}' already exists {where} (id {clash}).")
    now = clock.now()
    rule = AlarmRule(
        facility_id=fid,
        key=data.key,
        name=data.name,
        event_type=data.event_type,
        conditions=data.conditions.to_db(),
        alarm_type=data.alarm_type,
        priority=data.priority,
        enabled=data.enabled,
        created_at=now,
        updated_at=now,
    )
    db.add(rule)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise Conflict(f"A rule with key '{data.key}' already exists there.") from None
    await audit.record(
        db,
        clock,
        actor,
        "alarm_rule.create",
        target_type="alarm_rule",
        target_id=rule.id,
        facility_id=fid,
        details=data.model_dump(mode="json"),
    )
    return rule


async def update_rule(
    db: AsyncSession, clock: Clock, actor: Principal, rule: AlarmRule, data: RuleUpdate
) -> AlarmRule:
    values = data.model_dump(exclude_unset=True)
    if "event_type" in values:
        _check_event_type(values["event_type"])
    if data.conditions is not None:
        values["conditions"] = data.conditions.to_db()
    _check_life_safety(
        rule.key,
        values.get("priority", rule.priority),
        values.get("enabled", rule.enabled),
        values.get("conditions", rule.conditions or {}),
    )
    changes: dict[str, list[Any]] = {}
    for name, value in values.items():
        old = getattr(rule, name)
        if old != value:
            changes[name] = [old, value]
            setattr(rule, name, value)
    if changes:
        rule.updated_at = clock.now()
        await db.flush()
        await audit.record(
            db,
            clock,
            actor,
            "alarm_rule.update",
            target_type="alarm_rule",
            target_id=rule.id,
            facility_id=rule.facility_id,
            details={"key": rule.key, "changes": changes},
        )
    return rule


async def delete_rule(db: AsyncSession, clock: Clock, actor: Principal, rule: AlarmRule) -> None:
    if rule.facility_id is None and rule.key in DEFAULT_RULE_KEYS:
        raise Conflict(
            f"'{rule.key}' is a default rule: disable it (enabled: false) or override it at a "
            "facility instead of deleting it."
        )
    await audit.record(
        db,
        clock,
        actor,
        "alarm_rule.delete",
        target_type="alarm_rule",
        target_id=rule.id,
        facility_id=rule.facility_id,
        details={"key": rule.key, "event_type": rule.event_type, "priority": rule.priority},
    )
    await db.delete(rule)
    await db.flush()


# -- events → alarms ----------------------------------------------------------------------------


def _parse_time(value: Any, default: datetime) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return default
    return default


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def alarm_summary(
    alarm: Alarm,
    facility: Facility,
    zone: Zone | None,
    device: Device | None,
    incident: Incident | None,
) -> dict[str, Any]:
    """The body of an `alarm.<facility>.p<N>` message (what the live console shows)."""
    return {
        "alarm_id": alarm.id,
        "incident_id": alarm.incident_id,
        "facility_id": facility.id,
        "facility_code": facility.code,
        "facility_name": facility.name,
        "zone": zone.name if zone else None,
        "zone_code": zone.code if zone else None,
        "device": device.name if device else None,
        "device_code": device.code if device else None,
        "type": alarm.type,
        "rule_key": alarm.rule_key,
        "title": alarm.title,
        "priority": alarm.priority,
        "raised_at": as_utc(alarm.raised_at).isoformat(),
        "state": alarm.state,
        "event_id": alarm.event_id,
        "incident_status": incident.status if incident else None,
        "incident_priority": incident.priority if incident else None,
    }


def _title(rule: AlarmRule, zone: Zone | None, device: Device | None) -> str:
    where = [x for x in ((device.name if device else None), (zone.name if zone else None)) if x]
    return (rule.name + (" — " + ", ".join(dict.fromkeys(where)) if where else ""))[:300]


#: event types whose handling changes the device's status (offline, trouble, back to normal)
DEVICE_STATUS_TYPES = frozenset({"device.offline", "device.trouble", "device.restored"})


async def _touch_device(
    db: AsyncSession, clock: Clock, device: Device, event_type: str, occurred_at: datetime
) -> bool:
    """Keep the device's last-seen and status current. Returns True when an offline device was
    heard again (its offline alarms are then cleared)."""
    if event_type == "device.offline":
        device.status = DeviceStatus.OFFLINE.value
        return False
    last = as_utc(device.last_seen_at) if device.last_seen_at else None
    if last is None or occurred_at > last:
        device.last_seen_at = occurred_at
    back = device.status == DeviceStatus.OFFLINE
    if event_type == "device.trouble":
        device.status = DeviceStatus.TROUBLE.value
    elif event_type == "device.restored" or device.status in (
        DeviceStatus.UNKNOWN,
        DeviceStatus.OFFLINE,
    ):
        device.status = DeviceStatus.ONLINE.value
    device.updated_at = clock.now()
    return back


async def _clear(
    db: AsyncSession, clock: Clock, condition: Any, text: str, data: dict[str, Any]
) -> list[Alarm]:
    """Clear the active alarms matching `condition`; each incident touched gets a timeline
    entry ("<text>: N alarm(s) cleared") and an update message."""
    alarms = (
        await db.scalars(select(Alarm).where(Alarm.state == AlarmState.ACTIVE, condition))
    ).all()
    now = clock.now()
    touched: dict[int, list[int]] = {}
    for alarm in alarms:
        alarm.state = AlarmState.CLEARED.value
        alarm.cleared_at = now
        if alarm.incident_id is not None:
            touched.setdefault(alarm.incident_id, []).append(alarm.id)
    for incident_id, ids in touched.items():
        incident = await db.get(Incident, incident_id)
        if incident is None:
            continue
        db.add(
            TimelineEntry(
                incident_id=incident_id,
                at=now,
                kind="alarm",
                actor="system",
                text=f"{text}: {len(ids)} alarm(s) cleared",
                data={"alarm_ids": ids, **data},
            )
        )
        await incidents.publish_update(db, incident, "alarms_cleared")
    await db.flush()
    return list(alarms)


async def clear_device_alarms(
    db: AsyncSession, clock: Clock, device: Device, alarm_types: Sequence[str], reason: str
) -> list[Alarm]:
    """Clear the device's active alarms of these types (the condition ended)."""
    condition = and_(Alarm.device_id == device.id, Alarm.type.in_(list(alarm_types)))
    text = f"{device.name} ({device.code}) {reason}"
    return await _clear(db, clock, condition, text, {"device": device.code})


async def clear_facility_alarms(
    db: AsyncSession, clock: Clock, facility_id: int, rule_keys: Sequence[str], reason: str
) -> list[Alarm]:
    """Clear a facility's active alarms raised by these rules (a facility-wide condition ended,
    e.g. a test signal got through again)."""
    condition = and_(Alarm.facility_id == facility_id, Alarm.rule_key.in_(list(rule_keys)))
    return await _clear(db, clock, condition, reason, {})


async def _sender_cancelled(db: AsyncSession, event_id: int | None) -> bool:
    if event_id is None:
        return False
    from watchfloor.panic.models import PanicPress

    found = await db.scalar(
        select(PanicPress.id).where(
            PanicPress.event_id == event_id, PanicPress.cancelled_at.is_not(None)
        )
    )
    return found is not None


async def handle_event(
    db: AsyncSession,
    clock: Clock,
    data: Mapping[str, Any],
    *,
    correlation_window_seconds: float | None = None,
) -> list[Alarm]:
    """Turn one stored event (the `event.*` message body) into alarms; fold each into an
    incident and write its `alarm.<facility>.p<N>` message to the outbox. Idempotent per event:
    an alarm already raised for (event, rule) is not raised again. Flushes; the caller commits.
    """
    facility_id = _int(data.get("facility_id"))
    facility = await db.get(Facility, facility_id) if facility_id is not None else None
    if facility is None:
        return []
    event_type = str(data.get("type") or "")
    now = clock.now()
    occurred_at = _parse_time(data.get("occurred_at"), now)
    event_id = _int(data.get("event_id"))
    device_id = _int(data.get("device_id"))
    device = await db.get(Device, device_id) if device_id is not None else None
    if device is not None and device.facility_id != facility.id:
        device = None
    zone_id = _int(data.get("zone_id"))
    if zone_id is None and device is not None:
        zone_id = device.zone_id
    zone = await db.get(Zone, zone_id) if zone_id is not None else None
    if zone is not None and zone.facility_id != facility.id:
        zone = None
    attributes = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
    assert isinstance(attributes, dict)

    # Ingest keeps last_seen_at and online/offline current for every event (and writes the
    # device.restored of a device heard again); the statuses these types carry are set here.
    if device is not None and event_type in DEVICE_STATUS_TYPES:
        heard_again = await _touch_device(db, clock, device, event_type, occurred_at)
        if event_type == "device.restored":
            await clear_device_alarms(db, clock, device, sorted(CLEARED_BY_RESTORE), "restored")
            return []
        if heard_again:
            await clear_device_alarms(db, clock, device, ["device_offline"], "heard again")

    done: set[str] | None = None  # rules that already raised an alarm for this event
    raised: list[Alarm] = []
    # a staff panic cancelled before this message was handled: its alarm still shows, marked
    cancelled = event_type == "panic.pressed" and await _sender_cancelled(db, event_id)
    for rule in await evaluation.effective_rules(db, facility.id, event_type):
        if done is None:  # looked up once a rule applies to this type at all
            done = set()
            if event_id is not None:
                done = set(
                    (
                        await db.scalars(select(Alarm.rule_key).where(Alarm.event_id == event_id))
                    ).all()
                )
        if rule.key in done:
            continue
        cond = rule.conditions or {}
        if not evaluation.zone_matches(
            cond, zone.code if zone else None, zone.kind if zone else None
        ):
            continue
        if not evaluation.schedule_matches(
            cond, facility.operating_hours, facility.timezone, occurred_at
        ):
            continue
        if not evaluation.attributes_match(cond, attributes):
            continue
        if evaluation.uses_count(rule) and not await evaluation.count_reached(
            db,
            rule,
            facility_id=facility.id,
            device_id=device.id if device else None,
            event_id=event_id,
            occurred_at=occurred_at,
        ):
            continue
        alarm_attrs = dict(attributes)
        if data.get("source"):
            alarm_attrs.setdefault("source", data.get("source"))
        alarm = Alarm(
            facility_id=facility.id,
            zone_id=zone.id if zone else None,
            device_id=device.id if device else None,
            event_id=event_id,
            rule_key=rule.key,
            type=rule.alarm_type,
            priority=rule.priority,
            title=_title(rule, zone, device),
            state=(AlarmState.CANCELLED_BY_SENDER if cancelled else AlarmState.ACTIVE).value,
            raised_at=now,
            attributes=alarm_attrs,
        )
        db.add(alarm)
        await db.flush()
        incident = await incidents.fold_alarm(
            db, clock, alarm, window_seconds=correlation_window_seconds
        )
        await outbox.add(
            db,
            f"alarm.{subject_token(facility.code)}.p{alarm.priority}",
            alarm_summary(alarm, facility, zone, device, incident),
            msg_id=f"alarm-{alarm.id}",
        )
        raised.append(alarm)
    await db.flush()
    return raised


async def cancel_by_sender(
    db: AsyncSession, clock: Clock, actor: Principal | str, *, event_id: int
) -> list[Alarm]:
    """Mark the alarms of an event "cancelled by sender" (a staff panic cancelled with the
    person's own code). They stay in the queue for an operator to confirm (`confirm_cancel`)."""
    alarms = (
        await db.scalars(
            select(Alarm).where(Alarm.event_id == event_id, Alarm.state == AlarmState.ACTIVE)
        )
    ).all()
    now = clock.now()
    for alarm in alarms:
        alarm.state = AlarmState.CANCELLED_BY_SENDER.value
        if alarm.incident_id is None:
            continue
        incident = await db.get(Incident, alarm.incident_id)
        if incident is None:
            continue
        db.add(
            TimelineEntry(
                incident_id=incident.id,
                at=now,
                kind="alarm",
                actor=actor.label if isinstance(actor, Principal) else actor,
                text=f"Cancelled by sender: {alarm.title} (an operator must confirm)",
                data={"alarm_id": alarm.id},
            )
        )
        await incidents.publish_update(db, incident, "cancelled_by_sender")
    await db.flush()
    return list(alarms)


# -- the active queue ---------------------------------------------------------------------------


QUEUE_STATES = (AlarmState.ACTIVE.value, AlarmState.CANCELLED_BY_SENDER.value)


async def list_active_alarms(
    db: AsyncSession,
    scope: Scope,
    *,
    facility_id: int | None = None,
    priority: int | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[list[AlarmOut], int]:
    """Active (and cancelled-by-sender, awaiting confirmation) alarms, P1 first, oldest first."""
    stmt = (
        select(Alarm, Facility, Zone, Device)
        .join(Facility, Facility.id == Alarm.facility_id)
        .outerjoin(Zone, Zone.id == Alarm.zone_id)
        .outerjoin(Device, Device.id == Alarm.device_id)
        .where(Alarm.state.in_(QUEUE_STATES), _facility_scope(scope))
    )
    if facility_id is not None:
        stmt = stmt.where(Alarm.facility_id == facility_id)
    if priority is not None:
        stmt = stmt.where(Alarm.priority == priority)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = (
        await db.execute(
            stmt.order_by(Alarm.priority, Alarm.raised_at, Alarm.id).limit(limit).offset(offset)
        )
    ).all()
    return [
        AlarmOut(
            id=a.id,
            incident_id=a.incident_id,
            facility_code=f.code,
            facility_name=f.name,
            zone=z.name if z else None,
            device=d.name if d else None,
            rule_key=a.rule_key,
            type=a.type,
            priority=a.priority,
            title=a.title,
            state=a.state,
            raised_at=a.raised_at,
            cleared_at=a.cleared_at,
            event_id=a.event_id,
            attributes=a.attributes or {},
        )
        for a, f, z, d in rows
    ], int(total)


__all__ = ["Priority", "handle_event", "cancel_by_sender", "list_active_alarms"]
