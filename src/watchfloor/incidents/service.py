"""Incidents: correlation of alarms, the lifecycle, the timeline, dispatch and response times.

Correlation: an alarm folds into its facility's open incident when that incident's last alarm is
within the correlation window (default 600 s, `correlation_window_seconds`); otherwise it opens a
new incident. The incident's priority is its most urgent alarm's.

Life safety is never silenced: every alarm keeps its own row, timeline entry and bus message, and
an alarm that is **P1, or more urgent than the incident**, folding into an incident that a person
has already acknowledged *re-opens it for attention*: the status goes back to `new`, the
escalation chain starts again (for the new priority), `attention_at` is set, and the next
acknowledgement is measured from there. Acknowledging a re-opened incident returns it to the
furthest stage it had reached (dispatched, on scene) — units already sent stay sent.

Lifecycle: new → acknowledged → dispatched → on scene → contained → closed. Forward steps may be
skipped (a guard who contains an incident has evidently seen it: any action on a `new` incident
acknowledges it first, timestamped and attributed); nothing moves backwards, and a closed incident
only takes notes. Closing needs a disposition; `false_alarm` also needs a cause.

Every change by a person is audited in the same transaction and published as
`incident.<facility>.updated` through the outbox (the live console listens). Services flush; the
caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.alarms.models import Alarm, AlarmState, Priority
from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.bus import outbox, subject_token
from watchfloor.clock import Clock, as_utc
from watchfloor.incidents import escalation
from watchfloor.incidents.models import (
    Disposition,
    Incident,
    IncidentStatus,
    NotificationRequest,
    TimelineEntry,
    UnitDispatch,
)
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.sites.models import Device, Facility, ResponseUnit, Zone

DEFAULT_CORRELATION_WINDOW_SECONDS = 600
STATUS_ORDER = [s.value for s in IncidentStatus]
OPEN_STATUSES = [s.value for s in IncidentStatus if s is not IncidentStatus.CLOSED]
CANCELLED_BY_SENDER_CAUSE = "cancelled by sender"

Actor = Principal | str


def _label(actor: Actor) -> str:
    return actor.label if isinstance(actor, Principal) else actor


def _rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else 0


def _advance(incident: Incident, status: IncidentStatus) -> None:
    """Move forward to `status` (never backwards)."""
    if _rank(status) > _rank(incident.status):
        incident.status = status.value


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (as_utc(end) - as_utc(start)).total_seconds())


def correlation_window(window_seconds: float | None = None) -> timedelta:
    if window_seconds is None:
        from watchfloor.config import get_settings

        window_seconds = getattr(
            get_settings(), "correlation_window_seconds", DEFAULT_CORRELATION_WINDOW_SECONDS
        )
    return timedelta(seconds=float(window_seconds))


def _timeline(
    db: AsyncSession,
    incident: Incident,
    at: datetime,
    kind: str,
    text: str,
    actor: str = "system",
    data: dict[str, Any] | None = None,
) -> None:
    db.add(
        TimelineEntry(
            incident_id=incident.id, at=at, kind=kind, actor=actor, text=text, data=data or {}
        )
    )


async def _lock_facility(db: AsyncSession, facility_id: int) -> Facility | None:
    """Serialise correlation per facility across processes (PostgreSQL: FOR NO KEY UPDATE, which
    does not block the foreign-key checks of concurrent event inserts; SQLite has one writer)."""
    stmt = select(Facility).where(Facility.id == facility_id)
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(key_share=True)
    return (await db.execute(stmt)).scalar_one_or_none()


async def get_incident(db: AsyncSession, incident_id: int, *, lock: bool = False) -> Incident:
    stmt = select(Incident).where(Incident.id == incident_id)
    if lock and db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(key_share=True)
    if lock:
        stmt = stmt.execution_options(populate_existing=True)
    incident = (await db.execute(stmt)).scalar_one_or_none()
    if incident is None:
        raise NotFound(f"There is no incident {incident_id}.")
    return incident


# -- the bus summary ----------------------------------------------------------------------------


def incident_summary(incident: Incident, facility: Facility | None) -> dict[str, Any]:
    return {
        "incident_id": incident.id,
        "facility_id": incident.facility_id,
        "facility_code": facility.code if facility else None,
        "facility_name": facility.name if facility else None,
        "title": incident.title,
        "priority": incident.priority,
        "status": incident.status,
        "opened_at": _iso(incident.opened_at),
        "last_alarm_at": _iso(incident.last_alarm_at),
        "alarm_count": incident.alarm_count,
        "acknowledged_at": _iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "disposition": incident.disposition,
        "closed_at": _iso(incident.closed_at),
    }


async def publish_update(db: AsyncSession, incident: Incident, change: str) -> None:
    """Write `incident.<facility>.updated` to the outbox (same transaction as the change)."""
    facility = await db.get(Facility, incident.facility_id)
    token = subject_token(facility.code if facility else str(incident.facility_id))
    data = incident_summary(incident, facility)
    data["change"] = change
    await outbox.add(db, f"incident.{token}.updated", data)


# -- correlation --------------------------------------------------------------------------------


async def fold_alarm(
    db: AsyncSession, clock: Clock, alarm: Alarm, *, window_seconds: float | None = None
) -> Incident:
    """Put a new (flushed) alarm into its facility's open incident within the correlation
    window, or open a new incident (snapshotting its escalation policy and starting it)."""
    now = clock.now()
    await _lock_facility(db, alarm.facility_id)
    since = now - correlation_window(window_seconds)
    incident = (
        await db.execute(
            select(Incident)
            .where(
                Incident.facility_id == alarm.facility_id,
                Incident.status.in_(OPEN_STATUSES),
                Incident.last_alarm_at >= since,
            )
            .order_by(Incident.last_alarm_at.desc(), Incident.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    alarm_data = {"alarm_id": alarm.id, "priority": alarm.priority, "type": alarm.type}
    if incident is None:
        incident = Incident(
            facility_id=alarm.facility_id,
            title=alarm.title,
            priority=alarm.priority,
            status=IncidentStatus.NEW.value,
            opened_at=now,
            last_alarm_at=now,
            attention_at=now,
            priority_at=now,
            alarm_count=1,
            exercise=bool((alarm.attributes or {}).get("exercise", False)),
            escalation={},
        )
        db.add(incident)
        await db.flush()
        alarm.incident_id = incident.id
        _timeline(
            db,
            incident,
            now,
            "alarm",
            f"Incident opened: P{alarm.priority} {alarm.title}",
            data=alarm_data,
        )
        await escalation.start_escalation(db, clock, incident)
        return incident

    alarm.incident_id = incident.id
    incident.alarm_count += 1
    incident.last_alarm_at = now
    _timeline(db, incident, now, "alarm", f"P{alarm.priority} {alarm.title}", data=alarm_data)
    raised = alarm.priority < incident.priority
    if raised:
        _timeline(
            db,
            incident,
            now,
            "system",
            f"Priority raised from P{incident.priority} to P{alarm.priority}",
            data={"from": incident.priority, "to": alarm.priority, "alarm_id": alarm.id},
        )
        incident.priority = alarm.priority
        incident.priority_at = now
        incident.title = alarm.title
    needs_attention = raised or alarm.priority == Priority.P1
    if needs_attention and incident.status != IncidentStatus.NEW:
        _timeline(
            db,
            incident,
            now,
            "status",
            f"Re-opened for acknowledgement by a P{alarm.priority} alarm "
            f"(was {incident.status.replace('_', ' ')})",
            data={"from": incident.status, "to": IncidentStatus.NEW.value, "alarm_id": alarm.id},
        )
        incident.status = IncidentStatus.NEW.value
        incident.acknowledged_at = None
        incident.acknowledged_by = None
        incident.contained_at = None
        incident.attention_at = now
        await escalation.start_escalation(db, clock, incident)
    elif raised:
        await escalation.start_escalation(db, clock, incident)
    await db.flush()
    return incident


# -- lifecycle ----------------------------------------------------------------------------------


def _require_open(incident: Incident) -> None:
    if incident.status == IncidentStatus.CLOSED:
        raise Conflict(f"Incident {incident.id} is closed.")


def _resume_status(incident: Incident) -> IncidentStatus:
    """The furthest stage the incident has reached, for an acknowledgement."""
    if incident.contained_at is not None:
        return IncidentStatus.CONTAINED
    if incident.on_scene_at is not None:
        return IncidentStatus.ON_SCENE
    if incident.dispatched_at is not None:
        return IncidentStatus.DISPATCHED
    return IncidentStatus.ACKNOWLEDGED


async def _acknowledge(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident, via: str | None
) -> None:
    now = clock.now()
    incident.acknowledged_at = now
    incident.acknowledged_by = _label(actor)
    incident.status = _resume_status(incident).value
    await escalation.stop_escalation(db, clock, incident)
    text = "Acknowledged" if via is None else f"Acknowledged ({via})"
    _timeline(
        db, incident, now, "status", text, _label(actor), {"to": IncidentStatus.ACKNOWLEDGED.value}
    )


async def _implicit_ack(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident, via: str
) -> None:
    if incident.status == IncidentStatus.NEW:
        await _acknowledge(db, clock, actor, incident, via)


async def _audit(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    action: str,
    incident: Incident,
    details: dict[str, Any] | None = None,
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        action,
        target_type="incident",
        target_id=incident.id,
        facility_id=incident.facility_id,
        details=details or {},
    )


async def acknowledge(db: AsyncSession, clock: Clock, actor: Actor, incident: Incident) -> Incident:
    _require_open(incident)
    if incident.status != IncidentStatus.NEW:
        raise Conflict(
            f"Incident {incident.id} is already acknowledged (by {incident.acknowledged_by})."
        )
    await _acknowledge(db, clock, actor, incident, None)
    await _audit(db, clock, actor, "incident.acknowledge", incident)
    await publish_update(db, incident, "acknowledged")
    await db.flush()
    return incident


async def _units_by_code(
    db: AsyncSession, incident: Incident, codes: Sequence[str]
) -> list[ResponseUnit]:
    rows = (
        await db.scalars(
            select(ResponseUnit).where(
                ResponseUnit.facility_id == incident.facility_id, ResponseUnit.code.in_(codes)
            )
        )
    ).all()
    found = {u.code: u for u in rows}
    missing = [c for c in codes if c not in found]
    if missing:
        raise InvalidInput(
            "No response unit at this incident's facility with code " + ", ".join(missing) + "."
        )
    return [found[c] for c in codes]


async def dispatch(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident, unit_codes: Sequence[str]
) -> list[UnitDispatch]:
    """Dispatch units (codes of the incident's facility's response units): each gets a
    UnitDispatch (notified now) and a notification request through the outbox."""
    _require_open(incident)
    codes = list(dict.fromkeys(unit_codes))
    units = await _units_by_code(db, incident, codes)
    already = set(
        (
            await db.scalars(
                select(UnitDispatch.response_unit_id).where(UnitDispatch.incident_id == incident.id)
            )
        ).all()
    )
    again = [u.code for u in units if u.id in already]
    if again:
        raise Conflict("Already dispatched to this incident: " + ", ".join(again) + ".")
    now = clock.now()
    await _implicit_ack(db, clock, actor, incident, "by dispatching")
    facility = await db.get(Facility, incident.facility_id)
    fcode = facility.code if facility else str(incident.facility_id)
    made: list[UnitDispatch] = []
    for unit in units:
        row = UnitDispatch(
            incident_id=incident.id,
            response_unit_id=unit.id,
            notified_at=now,
            dispatched_by=_label(actor),
        )
        db.add(row)
        made.append(row)
        message = (
            f"Dispatch to P{incident.priority} incident #{incident.id} at {fcode}: {incident.title}"
        )
        request = NotificationRequest(
            incident_id=incident.id,
            step_index=None,
            target=f"unit:{unit.code}",
            message=message,
            status="requested",
            created_at=now,
        )
        db.add(request)
        await db.flush()
        await outbox.add(
            db,
            escalation.NOTIFY_SUBJECT,
            {
                "request_id": request.id,
                "incident_id": incident.id,
                "facility_id": incident.facility_id,
                "facility_code": fcode,
                "priority": incident.priority,
                "target": request.target,
                "unit_code": unit.code,
                "message": message,
                "requested_at": now.isoformat(),
            },
            msg_id=f"notify-{request.id}",
        )
        _timeline(
            db,
            incident,
            now,
            "dispatch",
            f"Dispatched {unit.name} ({unit.code})",
            _label(actor),
            {"unit": unit.code, "notification_request_id": request.id},
        )
    if incident.dispatched_at is None:
        incident.dispatched_at = now
    _advance(incident, IncidentStatus.DISPATCHED)
    await _audit(db, clock, actor, "incident.dispatch", incident, {"units": codes})
    await publish_update(db, incident, "dispatched")
    await db.flush()
    return made


async def _dispatch_of(
    db: AsyncSession, incident: Incident, unit_code: str
) -> tuple[UnitDispatch, ResponseUnit]:
    row = (
        await db.execute(
            select(UnitDispatch, ResponseUnit)
            .join(ResponseUnit, ResponseUnit.id == UnitDispatch.response_unit_id)
            .where(UnitDispatch.incident_id == incident.id, ResponseUnit.code == unit_code)
        )
    ).first()
    if row is None:
        raise NotFound(f"Unit {unit_code} has not been dispatched to incident {incident.id}.")
    return row[0], row[1]


async def unit_en_route(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident, unit_code: str
) -> UnitDispatch:
    _require_open(incident)
    dispatch_row, unit = await _dispatch_of(db, incident, unit_code)
    if dispatch_row.en_route_at is not None or dispatch_row.on_scene_at is not None:
        raise Conflict(f"Unit {unit_code} is already en route or on scene.")
    now = clock.now()
    dispatch_row.en_route_at = now
    _timeline(
        db,
        incident,
        now,
        "dispatch",
        f"{unit.name} ({unit.code}) en route",
        _label(actor),
        {"unit": unit.code},
    )
    await _audit(db, clock, actor, "incident.unit_en_route", incident, {"unit": unit.code})
    await publish_update(db, incident, "unit_en_route")
    await db.flush()
    return dispatch_row


async def unit_on_scene(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident, unit_code: str
) -> UnitDispatch:
    _require_open(incident)
    dispatch_row, unit = await _dispatch_of(db, incident, unit_code)
    if dispatch_row.on_scene_at is not None:
        raise Conflict(f"Unit {unit_code} is already on scene.")
    now = clock.now()
    dispatch_row.on_scene_at = now
    await _implicit_ack(db, clock, actor, incident, "by a unit on scene")
    if incident.on_scene_at is None:
        incident.on_scene_at = now
    _advance(incident, IncidentStatus.ON_SCENE)
    _timeline(
        db,
        incident,
        now,
        "dispatch",
        f"{unit.name} ({unit.code}) on scene",
        _label(actor),
        {"unit": unit.code},
    )
    await _audit(db, clock, actor, "incident.unit_on_scene", incident, {"unit": unit.code})
    await publish_update(db, incident, "unit_on_scene")
    await db.flush()
    return dispatch_row


async def contain(db: AsyncSession, clock: Clock, actor: Actor, incident: Incident) -> Incident:
    _require_open(incident)
    if incident.status == IncidentStatus.CONTAINED:
        raise Conflict(f"Incident {incident.id} is already contained.")
    await _implicit_ack(db, clock, actor, incident, "by containing")
    now = clock.now()
    incident.contained_at = now
    _advance(incident, IncidentStatus.CONTAINED)
    _timeline(
        db,
        incident,
        now,
        "status",
        "Contained",
        _label(actor),
        {"to": IncidentStatus.CONTAINED.value},
    )
    await _audit(db, clock, actor, "incident.contain", incident)
    await publish_update(db, incident, "contained")
    await db.flush()
    return incident


async def close(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    incident: Incident,
    disposition: str,
    cause: str | None = None,
) -> Incident:
    """Close with a disposition (real, false_alarm with a cause, drill, test). The incident's
    alarms are resolved, its units cleared and its escalation stopped."""
    _require_open(incident)
    if disposition not in {d.value for d in Disposition}:
        raise InvalidInput(f"Unknown disposition '{disposition}'.")
    cause = (cause or "").strip() or None
    if disposition == Disposition.FALSE_ALARM and not cause:
        raise InvalidInput("A false alarm needs a cause (what set it off).")
    await _implicit_ack(db, clock, actor, incident, "by closing")
    now = clock.now()
    incident.status = IncidentStatus.CLOSED.value
    incident.closed_at = now
    incident.closed_by = _label(actor)
    incident.disposition = disposition
    incident.disposition_cause = cause
    await escalation.stop_escalation(db, clock, incident)
    for alarm in (
        await db.scalars(
            select(Alarm).where(
                Alarm.incident_id == incident.id,
                Alarm.state.in_([AlarmState.ACTIVE, AlarmState.CANCELLED_BY_SENDER]),
            )
        )
    ).all():
        alarm.state = AlarmState.RESOLVED.value
        alarm.cleared_at = alarm.cleared_at or now
    for row in (
        await db.scalars(
            select(UnitDispatch).where(
                UnitDispatch.incident_id == incident.id, UnitDispatch.cleared_at.is_(None)
            )
        )
    ).all():
        row.cleared_at = now
    text = f"Closed: {disposition.replace('_', ' ')}" + (f" ({cause})" if cause else "")
    _timeline(
        db,
        incident,
        now,
        "status",
        text,
        _label(actor),
        {"to": IncidentStatus.CLOSED.value, "disposition": disposition, "cause": cause},
    )
    await _audit(
        db, clock, actor, "incident.close", incident, {"disposition": disposition, "cause": cause}
    )
    await publish_update(db, incident, "closed")
    await db.flush()
    return incident


async def add_note(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident, text: str
) -> TimelineEntry:
    """A note on the timeline (closed incidents take notes too: after-action remarks)."""
    now = clock.now()
    entry = TimelineEntry(
        incident_id=incident.id, at=now, kind="note", actor=_label(actor), text=text, data={}
    )
    db.add(entry)
    await _audit(db, clock, actor, "incident.note", incident, {"length": len(text)})
    await publish_update(db, incident, "note")
    await db.flush()
    return entry


async def record_on_timeline(
    db: AsyncSession,
    clock: Clock,
    incident_id: int,
    kind: str,
    text: str,
    *,
    actor: str = "system",
    data: dict[str, Any] | None = None,
) -> TimelineEntry | None:
    """An entry written by another domain (lockdown, notify, roll call) on an incident's
    timeline, in the caller's transaction; the console hears of it. None if no such incident."""
    incident = await db.get(Incident, incident_id)
    if incident is None:
        return None
    entry = TimelineEntry(
        incident_id=incident.id,
        at=clock.now(),
        kind=kind[:20],
        actor=actor[:160],
        text=text,
        data=data or {},
    )
    db.add(entry)
    await publish_update(db, incident, kind[:20])
    await db.flush()
    return entry


async def confirm_cancel(
    db: AsyncSession, clock: Clock, actor: Actor, incident: Incident
) -> Incident:
    """The operator confirms alarms their sender cancelled (panic cancel code). When they are the
    incident's only alarms, the incident closes as a false alarm, cause "cancelled by sender";
    otherwise those alarms are resolved and the incident stays open for the others."""
    _require_open(incident)
    alarms = (await db.scalars(select(Alarm).where(Alarm.incident_id == incident.id))).all()
    cancelled = [a for a in alarms if a.state == AlarmState.CANCELLED_BY_SENDER]
    if not cancelled:
        raise Conflict(f"Incident {incident.id} has no alarm cancelled by its sender.")
    now = clock.now()
    others = [a for a in alarms if a.state == AlarmState.ACTIVE]
    _timeline(
        db,
        incident,
        now,
        "status",
        f"Operator confirmed the sender's cancel of {len(cancelled)} alarm(s)",
        _label(actor),
        {"alarm_ids": [a.id for a in cancelled]},
    )
    if not others:
        await _audit(
            db,
            clock,
            actor,
            "incident.confirm_cancel",
            incident,
            {"alarm_ids": [a.id for a in cancelled], "closed": True},
        )
        return await close(
            db, clock, actor, incident, Disposition.FALSE_ALARM.value, CANCELLED_BY_SENDER_CAUSE
        )
    for alarm in cancelled:
        alarm.state = AlarmState.RESOLVED.value
        alarm.cleared_at = alarm.cleared_at or now
    await _audit(
        db,
        clock,
        actor,
        "incident.confirm_cancel",
        incident,
        {"alarm_ids": [a.id for a in cancelled], "closed": False},
    )
    await publish_update(db, incident, "cancel_confirmed")
    await db.flush()
    return incident


# -- reading ------------------------------------------------------------------------------------


def scope_condition(scope: Scope) -> Any:
    """Incidents (or anything with facility_id) within a permission scope."""
    if scope.everything:
        return true()
    conds = []
    if scope.facility_ids:
        conds.append(Incident.facility_id.in_(scope.facility_ids))
    if scope.region_ids:
        conds.append(
            Incident.facility_id.in_(
                select(Facility.id).where(Facility.region_id.in_(scope.region_ids))
            )
        )
    return or_(*conds) if conds else false()


def list_query(
    scope: Scope,
    *,
    status: Sequence[str] | None = None,
    open_only: bool = False,
    priority: int | None = None,
    facility_id: int | None = None,
) -> Select[Incident]:
    stmt = select(Incident).where(scope_condition(scope))
    if status:
        stmt = stmt.where(Incident.status.in_(list(status)))
    if open_only:
        stmt = stmt.where(Incident.status.in_(OPEN_STATUSES))
    if priority is not None:
        stmt = stmt.where(Incident.priority == priority)
    if facility_id is not None:
        stmt = stmt.where(Incident.facility_id == facility_id)
    return stmt


async def list_incidents(
    db: AsyncSession, scope: Scope, *, limit: int = 100, offset: int = 0, **filters: Any
) -> tuple[list[Incident], int]:
    """Incidents in scope, most urgent first, then oldest first (the queue's order)."""
    stmt = list_query(scope, **filters)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = (
        await db.scalars(
            stmt.order_by(Incident.priority, Incident.opened_at, Incident.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total)


def incident_metrics(incident: Incident) -> dict[str, float | None]:
    """Seconds to acknowledge (from when it last needed attention), to dispatch and to on scene
    (from when it reached its current priority), and open for."""
    base = incident.priority_at or incident.opened_at
    return {
        "acknowledge_seconds": _seconds(
            incident.attention_at or incident.opened_at, incident.acknowledged_at
        ),
        "dispatch_seconds": _seconds(base, incident.dispatched_at),
        "on_scene_seconds": _seconds(base, incident.on_scene_at),
        "contained_seconds": _seconds(incident.opened_at, incident.contained_at),
        "closed_seconds": _seconds(incident.opened_at, incident.closed_at),
    }


def unit_metrics(incident: Incident, row: UnitDispatch) -> dict[str, float | None]:
    base = incident.priority_at or incident.opened_at
    return {
        "en_route_seconds": _seconds(row.notified_at, row.en_route_at),
        "on_scene_seconds": _seconds(row.notified_at, row.on_scene_at),
        "on_scene_since_incident_seconds": _seconds(base, row.on_scene_at),
    }


async def incident_detail(db: AsyncSession, incident: Incident) -> dict[str, Any]:
    facility = await db.get(Facility, incident.facility_id)
    alarm_rows = (
        await db.execute(
            select(Alarm, Zone, Device)
            .outerjoin(Zone, Zone.id == Alarm.zone_id)
            .outerjoin(Device, Device.id == Alarm.device_id)
            .where(Alarm.incident_id == incident.id)
            .order_by(Alarm.raised_at, Alarm.id)
        )
    ).all()
    timeline = (
        await db.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident.id)
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
    ).all()
    dispatches = (
        await db.execute(
            select(UnitDispatch, ResponseUnit)
            .join(ResponseUnit, ResponseUnit.id == UnitDispatch.response_unit_id)
            .where(UnitDispatch.incident_id == incident.id)
            .order_by(UnitDispatch.notified_at, UnitDispatch.id)
        )
    ).all()
    out = incident_summary(incident, facility)
    out.update(
        {
            "id": incident.id,
            "facility_timezone": facility.timezone if facility else "UTC",
            "dispatched_at": _iso(incident.dispatched_at),
            "on_scene_at": _iso(incident.on_scene_at),
            "contained_at": _iso(incident.contained_at),
            "closed_by": incident.closed_by,
            "disposition_cause": incident.disposition_cause,
            "exercise": incident.exercise,
            "attention_at": _iso(incident.attention_at),
            "escalation": incident.escalation or {},
            "metrics": incident_metrics(incident),
            "alarms": [
                {
                    "id": a.id,
                    "rule_key": a.rule_key,
                    "type": a.type,
                    "priority": a.priority,
                    "title": a.title,
                    "state": a.state,
                    "raised_at": _iso(a.raised_at),
                    "cleared_at": _iso(a.cleared_at),
                    "zone": z.name if z else None,
                    "zone_code": z.code if z else None,
                    "device": d.name if d else None,
                    "device_code": d.code if d else None,
                    "event_id": a.event_id,
                    "attributes": a.attributes or {},
                }
                for a, z, d in alarm_rows
            ],
            "timeline": [
                {
                    "at": _iso(t.at),
                    "kind": t.kind,
                    "actor": t.actor,
                    "text": t.text,
                    "data": t.data or {},
                }
                for t in timeline
            ],
            "dispatches": [
                {
                    "unit_code": u.code,
                    "unit_name": u.name,
                    "unit_kind": u.kind,
                    "notified_at": _iso(r.notified_at),
                    "en_route_at": _iso(r.en_route_at),
                    "on_scene_at": _iso(r.on_scene_at),
                    "cleared_at": _iso(r.cleared_at),
                    "dispatched_by": r.dispatched_by,
                    "metrics": unit_metrics(incident, r),
                }
                for r, u in dispatches
            ],
        }
    )
    return out
