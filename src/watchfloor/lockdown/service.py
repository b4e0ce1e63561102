"""Lockdown: lock every door of a facility, a zone, or every facility of a region in one action.

A lockdown is one row per facility (a region request makes one per facility, grouped by
`request_id`) and one row per door it commands. Starting one writes the rows, the audit record,
the incident timeline entry (when it belongs to an incident) and the `lockdown.<facility>.started`
bus message in the caller's transaction; after the commit the engine (`engine.LockdownEngine`,
run by the runtime) commands every door at once through the door driver, records each
confirmation, retries the doors that did not confirm with backoff, and flags a door still failing
after the last attempt with a P1 `door.lock_failed` alarm.

States: locking → locked (every door confirmed) or partial (some flagged as failed) → lifting →
lifted. A facility has at most one active lockdown (a unique column holds the facility's id while
it is active). Lifting needs `lockdown:lift` and, when `lockdown_lift_requires_approval` is on, a
second, different person's approval; it commands every door back to its normal schedule. Drills
(`exercise=True`) run the same path, marked EXERCISE in every message, event and page.

Services flush; the caller commits, then hands the lockdown ids to the engine (`ensure`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.bus import outbox, subject_token
from watchfloor.clock import Clock, as_utc
from watchfloor.incidents import service as incidents
from watchfloor.incidents.models import Incident
from watchfloor.lockdown.models import (
    ACTIVE_STATES,
    DoorState,
    Lockdown,
    LockdownDoor,
    LockdownState,
    LockdownTrigger,
)
from watchfloor.problems import Conflict, Forbidden, InvalidInput, NotFound
from watchfloor.sites.models import Device, DeviceKind, DeviceStatus, Facility, Region, Zone

Actor = Principal | str
DOOR_TABLE = cast(Table, LockdownDoor.__table__)
EXERCISE = "EXERCISE"
TRIGGER_SCOPES = ("zone", "facility")


def label(actor: Actor) -> str:
    return actor.label if isinstance(actor, Principal) else actor


def actor_key(actor: Actor) -> str:
    """Who exactly (kind and id): two accounts with the same display name are two people."""
    return f"{actor.kind}:{actor.id}" if isinstance(actor, Principal) else f"system:{actor}"


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def controller_of(address: str) -> str:
    """The controller part of a door's address: "osdp://controller-3/12" → "osdp://controller-3"."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        return address.rsplit("/", 1)[0] if "/" in address else address
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}"


def facility_token(facility: Facility) -> str:
    return subject_token(facility.code)


# -- the bus message --------------------------------------------------------------------------


def message_data(lockdown: Lockdown, facility: Facility) -> dict[str, Any]:
    """The body of `lockdown.<facility>.started` / `.lifted` (contracts §2)."""
    data: dict[str, Any] = {
        "lockdown_id": lockdown.id,
        "facility_id": facility.id,
        "facility_code": facility.code,
        "facility_name": facility.name,
        "zone_id": lockdown.zone_id,
        "zone_name": lockdown.zone_name,
        "exercise": bool(lockdown.exercise),
        "reason": lockdown.reason,
        "started_by": lockdown.started_by,
        "started_at": _iso(lockdown.started_at),
        "incident_id": lockdown.incident_id,
        "door_count": lockdown.door_count,
    }
    if lockdown.lifted_at is not None:
        data["lifted_by"] = lockdown.lifted_by
        data["lifted_at"] = _iso(lockdown.lifted_at)
    return data


def progress_message(db: AsyncSession, clock: Clock, lockdown: Lockdown, token: str) -> None:
    """`lockdown.<facility>.progress`: something about this lockdown changed (the live console
    re-reads it). Not part of the contract with other domains; nobody else needs to handle it."""
    outbox.add(
        db,
        f"lockdown.{token}.progress",
        {"lockdown_id": lockdown.id, "facility_id": lockdown.facility_id, "state": lockdown.state},
        clock=clock,
    )


async def _timeline(
    db: AsyncSession,
    clock: Clock,
    lockdown: Lockdown,
    text: str,
    actor: str,
    data: dict[str, Any] | None = None,
) -> None:
    if lockdown.incident_id is None:
        return
    prefix = f"{EXERCISE}: " if lockdown.exercise else ""
    await incidents.record_on_timeline(
        db,
        clock,
        lockdown.incident_id,
        "lockdown",
        prefix + text,
        actor=actor,
        data={"lockdown_id": lockdown.id, "exercise": bool(lockdown.exercise), **(data or {})},
    )


async def _audit(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    action: str,
    lockdown: Lockdown,
    details: dict[str, Any] | None = None,
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        action,
        target_type="lockdown",
        target_id=lockdown.id,
        facility_id=lockdown.facility_id,
        details={"exercise": bool(lockdown.exercise), **(details or {})},
    )


# -- starting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One facility to lock down, optionally only one of its zones."""

    facility: Facility
    zone: Zone | None = None


@dataclass
class StartResult:
    lockdowns: list[Lockdown] = field(default_factory=list)
    # facilities of a region request left out because they are already locked down
    skipped: list[dict[str, Any]] = field(default_factory=list)


async def active_lockdown(
    db: AsyncSession, facility_id: int, *, lock: bool = False
) -> Lockdown | None:
    stmt = select(Lockdown).where(Lockdown.active_facility_id == facility_id)
    if lock:
        stmt = stmt.execution_options(populate_existing=True)
    return (await db.execute(stmt)).scalar_one_or_none()


async def _doors_of(
    db: AsyncSession, facility_ids: Sequence[int], zone: Zone | None = None
) -> dict[int, list[dict[str, Any]]]:
    """Every door in service of these facilities (or of one zone), as door-row values, per
    facility id (one query)."""
    stmt = (
        select(
            Device.id,
            Device.facility_id,
            Device.code,
            Device.name,
            Device.address,
            Zone.name.label("zone_name"),
        )
        .outerjoin(Zone, Zone.id == Device.zone_id)
        .where(
            Device.facility_id.in_(list(facility_ids)),
            Device.kind == DeviceKind.DOOR.value,
            Device.status != DeviceStatus.DISABLED.value,
        )
        .order_by(Device.facility_id, Device.code)
    )
    if zone is not None:
        stmt = stmt.where(Device.zone_id == zone.id)
    out: dict[int, list[dict[str, Any]]] = {fid: [] for fid in facility_ids}
    for r in (await db.execute(stmt)).all():
        out[r.facility_id].append(
            {
                "device_id": r.id,
                "door_code": r.code,
                "door_name": r.name,
                "zone_name": r.zone_name or "",
                "address": r.address or "",
                "controller_address": controller_of(r.address or ""),
            }
        )
    return out


async def _doors(db: AsyncSession, facility: Facility, zone: Zone | None) -> list[dict[str, Any]]:
    return (await _doors_of(db, [facility.id], zone))[facility.id]


async def door_count(db: AsyncSession, facility: Facility, zone: Zone | None = None) -> int:
    return len(await _doors(db, facility, zone))


async def _check_incident(
    db: AsyncSession, incident_id: int | None, facility_ids: set[int]
) -> Incident | None:
    if incident_id is None:
        return None
    incident = await db.get(Incident, incident_id) if 0 < incident_id < 2**62 else None
    if incident is None or incident.facility_id not in facility_ids:
        raise InvalidInput(
            f"There is no incident {incident_id} at the facility being locked down; "
            "start the lockdown from that facility's incident."
        )
    return incident


async def start(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    targets: Sequence[Target],
    *,
    exercise: bool = False,
    reason: str = "",
    incident_id: int | None = None,
    region: Region | None = None,
    source: str = "api",
) -> StartResult:
    """Start a lockdown of each target (one facility, or one zone of it); for a region request
    (`region` given) facilities already locked down are skipped, otherwise that is a 409."""
    if not targets:
        raise InvalidInput("There is no facility to lock down.")
    if len({t.facility.id for t in targets}) != len(targets):
        raise InvalidInput("Each facility can be named once.")
    now = clock.now()
    request_id = uuid.uuid4().hex
    incident = await _check_incident(db, incident_id, {t.facility.id for t in targets})
    result = StartResult()
    existing = {
        ld.facility_id: ld
        for ld in (
            await db.scalars(
                select(Lockdown).where(
                    Lockdown.active_facility_id.in_([t.facility.id for t in targets])
                )
            )
        ).all()
    }
    chosen: list[Target] = []
    for target in targets:
        found = existing.get(target.facility.id)
        if found is None:
            chosen.append(target)
            continue
        what = f"zone {found.zone_name}" if found.zone_id else "the whole facility"
        if region is None:
            raise Conflict(
                f"{target.facility.name} is already locked down ({what}, lockdown {found.id}, "
                f"{found.state}). Lift it before starting another.",
                slug="already-locked-down",
            )
        result.skipped.append(
            {
                "facility_code": target.facility.code,
                "lockdown_id": found.id,
                "reason": f"already locked down ({what})",
            }
        )
    if not chosen:
        raise Conflict(
            "Every facility of the region is already locked down.", slug="already-locked-down"
        )
    if len(chosen) > 1 and any(t.zone is not None for t in chosen):
        raise InvalidInput("A zone lockdown names one facility.")
    zone = chosen[0].zone if len(chosen) == 1 else None
    doors_by_facility = await _doors_of(db, [t.facility.id for t in chosen], zone)
    for target in chosen:
        facility, zone = target.facility, target.zone
        doors = doors_by_facility[facility.id]
        lockdown = Lockdown(
            facility_id=facility.id,
            active_facility_id=facility.id,
            zone_id=zone.id if zone else None,
            zone_name=zone.name if zone else None,
            region_id=region.id if region else None,
            request_id=request_id,
            exercise=exercise,
            reason=reason,
            source=source,
            state=LockdownState.LOCKING.value if doors else LockdownState.LOCKED.value,
            incident_id=incident.id if incident and incident.facility_id == facility.id else None,
            door_count=len(doors),
            started_by=label(actor),
            started_at=now,
            locked_at=None if doors else now,
            updated_at=now,
        )
        db.add(lockdown)
        result.lockdowns.append(lockdown)
    await db.flush()  # one multi-row INSERT for every lockdown of the request
    door_rows = [
        {
            **d,
            "lockdown_id": lockdown.id,
            "state": DoorState.COMMANDED.value,
            "commanded_at": now,
            "attempts": 0,
            "last_error": "",
            "alarm_raised": False,
            "unlock_attempts": 0,
        }
        for target, lockdown in zip(chosen, result.lockdowns, strict=True)
        for d in doors_by_facility[target.facility.id]
    ]
    if door_rows:  # Core executemany: no ORM bookkeeping for thousands of rows
        await db.execute(insert(DOOR_TABLE), door_rows)
    if region is not None and len(chosen) > 1:
        # a region request: one audit record naming every lockdown it started (one record per
        # facility would hold the audit chain's lock 200 times in the request's transaction)
        await audit.record(
            db,
            clock,
            actor,
            "lockdown.start_region",
            target_type="lockdown_request",
            target_id=request_id,
            details={
                "region": region.code,
                "exercise": exercise,
                "reason": reason,
                "incident_id": incident.id if incident else None,
                "source": source,
                "lockdowns": [
                    {"id": ld.id, "facility": t.facility.code, "door_count": ld.door_count}
                    for t, ld in zip(chosen, result.lockdowns, strict=True)
                ],
            },
        )
    for target, lockdown in zip(chosen, result.lockdowns, strict=True):
        facility, zone = target.facility, target.zone
        where = f"zone {zone.name} of {facility.name}" if zone else facility.name
        if region is None or len(chosen) == 1:
            await _audit(
                db,
                clock,
                actor,
                "lockdown.start",
                lockdown,
                {
                    "facility": facility.code,
                    "zone": zone.code if zone else None,
                    "region": region.code if region else None,
                    "reason": reason,
                    "door_count": lockdown.door_count,
                    "incident_id": lockdown.incident_id,
                    "source": source,
                    "request_id": request_id,
                },
            )
        await _timeline(
            db,
            clock,
            lockdown,
            f"Lockdown of {where} started by {label(actor)}: {lockdown.door_count} doors "
            "commanded" + (f" ({reason})" if reason else ""),
            label(actor),
            {"door_count": lockdown.door_count},
        )
        outbox.add(
            db,
            f"lockdown.{facility_token(facility)}.started",
            message_data(lockdown, facility),
            msg_id=f"lockdown-{lockdown.id}-started",
            clock=clock,
        )
    await db.flush()
    return result


def raced() -> Conflict:
    """Two requests locked the same facility down at the same moment: the database's unique
    active-lockdown column let one through; this is the other's answer."""
    return Conflict(
        "The facility was locked down by someone else a moment ago. Open the lockdown list.",
        slug="already-locked-down",
    )


# -- lifting ----------------------------------------------------------------------------------


def _require_liftable(lockdown: Lockdown) -> None:
    if lockdown.state == LockdownState.LIFTED:
        raise Conflict(f"Lockdown {lockdown.id} is already lifted.", slug="lockdown-lifted")
    if lockdown.state == LockdownState.LIFTING:
        raise Conflict(f"Lockdown {lockdown.id} is being lifted.", slug="lockdown-lifting")


async def get_lockdown(db: AsyncSession, lockdown_id: int, *, lock: bool = False) -> Lockdown:
    stmt = select(Lockdown).where(Lockdown.id == lockdown_id)
    if lock:
        if db.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        stmt = stmt.execution_options(populate_existing=True)
    found = (await db.execute(stmt)).scalar_one_or_none() if 0 < lockdown_id < 2**62 else None
    if found is None:
        raise NotFound(f"There is no lockdown {lockdown_id}.")
    return found


async def _begin_lift(
    db: AsyncSession, clock: Clock, actor: Actor, lockdown: Lockdown, approved_by: Actor | None
) -> None:
    now = clock.now()
    lockdown.state = LockdownState.LIFTING.value
    lockdown.lifted_by = label(actor) if approved_by is None else lockdown.lift_requested_by
    lockdown.lifted_at = now
    lockdown.updated_at = now
    if approved_by is not None:
        lockdown.lift_approved_by = label(approved_by)
        lockdown.lift_approved_at = now
    facility = await db.get(Facility, lockdown.facility_id)
    assert facility is not None
    token = facility_token(facility)
    await _audit(
        db,
        clock,
        approved_by or actor,
        "lockdown.lift",
        lockdown,
        {
            "lifted_by": lockdown.lifted_by,
            "approved_by": lockdown.lift_approved_by,
            "reason": lockdown.lift_reason,
        },
    )
    approval = f", approved by {lockdown.lift_approved_by}" if approved_by is not None else ""
    await _timeline(
        db,
        clock,
        lockdown,
        f"Lockdown lifted by {lockdown.lifted_by}{approval}: doors back to their normal schedule",
        label(approved_by or actor),
    )
    outbox.add(
        db,
        f"lockdown.{token}.lifted",
        message_data(lockdown, facility),
        msg_id=f"lockdown-{lockdown.id}-lifted",
        clock=clock,
    )
    progress_message(db, clock, lockdown, token)
    await db.flush()


async def request_lift(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    lockdown: Lockdown,
    *,
    reason: str = "",
    requires_approval: bool = True,
) -> bool:
    """Lift the lockdown, or — when a second person's approval is needed — record the request.
    Returns True when lifting has begun, False when it now awaits approval."""
    _require_liftable(lockdown)
    if not requires_approval:
        lockdown.lift_reason = reason or lockdown.lift_reason
        await _begin_lift(db, clock, actor, lockdown, None)
        return True
    if lockdown.lift_requested_key is not None:
        if lockdown.lift_requested_key == actor_key(actor):
            raise Conflict(
                f"You asked to lift lockdown {lockdown.id}; it stays in force until a second, "
                "different person with the lockdown:lift permission approves.",
                slug="lift-needs-approval",
            )
        raise Conflict(
            f"{lockdown.lift_requested_by} has already asked to lift lockdown {lockdown.id}: "
            "approve their request instead.",
            slug="lift-already-requested",
        )
    now = clock.now()
    lockdown.lift_requested_by = label(actor)
    lockdown.lift_requested_key = actor_key(actor)
    lockdown.lift_requested_at = now
    lockdown.lift_reason = reason
    lockdown.updated_at = now
    await _audit(db, clock, actor, "lockdown.lift_requested", lockdown, {"reason": reason})
    await _timeline(
        db,
        clock,
        lockdown,
        f"{label(actor)} asked to lift the lockdown; waiting for a second person's approval",
        label(actor),
    )
    facility = await db.get(Facility, lockdown.facility_id)
    assert facility is not None
    progress_message(db, clock, lockdown, facility_token(facility))
    await db.flush()
    return False


async def approve_lift(db: AsyncSession, clock: Clock, actor: Actor, lockdown: Lockdown) -> None:
    """A second, different person approves a pending lift request: lifting begins."""
    _require_liftable(lockdown)
    if lockdown.lift_requested_key is None:
        raise Conflict(
            f"Nobody has asked to lift lockdown {lockdown.id}; there is nothing to approve.",
            slug="no-lift-request",
        )
    if lockdown.lift_requested_key == actor_key(actor):
        raise Forbidden(
            "The person who asked to lift a lockdown cannot also approve it: a second, "
            "different person must approve."
        )
    await _begin_lift(db, clock, lockdown.lift_requested_by or "", lockdown, actor)


async def cancel_lift_request(
    db: AsyncSession, clock: Clock, actor: Actor, lockdown: Lockdown
) -> None:
    _require_liftable(lockdown)
    if lockdown.lift_requested_key is None:
        raise Conflict(f"Nobody has asked to lift lockdown {lockdown.id}.", slug="no-lift-request")
    await _audit(
        db,
        clock,
        actor,
        "lockdown.lift_cancelled",
        lockdown,
        {"requested_by": lockdown.lift_requested_by},
    )
    lockdown.lift_requested_by = None
    lockdown.lift_requested_key = None
    lockdown.lift_requested_at = None
    lockdown.updated_at = clock.now()
    facility = await db.get(Facility, lockdown.facility_id)
    assert facility is not None
    progress_message(db, clock, lockdown, facility_token(facility))
    await db.flush()


async def retry_failed(db: AsyncSession, clock: Clock, actor: Actor, lockdown: Lockdown) -> int:
    """Command the doors flagged as failed again (a fresh round of attempts). Returns how many."""
    if lockdown.state not in (LockdownState.PARTIAL, LockdownState.LOCKED, LockdownState.LOCKING):
        raise Conflict(
            f"Lockdown {lockdown.id} is {lockdown.state}: only an active lockdown's doors can "
            "be retried.",
            slug="lockdown-not-active",
        )
    doors = (
        await db.scalars(
            select(LockdownDoor).where(
                LockdownDoor.lockdown_id == lockdown.id,
                LockdownDoor.state == DoorState.FAILED.value,
            )
        )
    ).all()
    if not doors:
        raise Conflict(f"Lockdown {lockdown.id} has no failed doors to retry.", slug="no-failed")
    now = clock.now()
    for door in doors:
        door.state = DoorState.COMMANDED.value
        door.attempts = 0
        door.alarm_raised = False
        door.commanded_at = now
    lockdown.state = LockdownState.LOCKING.value
    lockdown.updated_at = now
    codes = [d.door_code for d in doors]
    await _audit(db, clock, actor, "lockdown.retry", lockdown, {"doors": codes})
    await _timeline(
        db,
        clock,
        lockdown,
        f"{label(actor)} retried {len(doors)} failed door(s): {', '.join(codes[:20])}",
        label(actor),
    )
    facility = await db.get(Facility, lockdown.facility_id)
    assert facility is not None
    progress_message(db, clock, lockdown, facility_token(facility))
    await db.flush()
    return len(doors)


# -- reading ----------------------------------------------------------------------------------


def scope_condition(scope: Scope) -> Any:
    if scope.everything:
        return true()
    conds = []
    if scope.facility_ids:
        conds.append(Lockdown.facility_id.in_(scope.facility_ids))
    if scope.region_ids:
        conds.append(
            Lockdown.facility_id.in_(
                select(Facility.id).where(Facility.region_id.in_(scope.region_ids))
            )
        )
    return or_(*conds) if conds else Lockdown.id.is_(None)


async def list_lockdowns(
    db: AsyncSession,
    scope: Scope,
    *,
    active_only: bool = False,
    facility_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Lockdown], int]:
    """Lockdowns in scope: active ones first (most recent first), then the rest."""
    stmt = select(Lockdown).where(scope_condition(scope))
    if active_only:
        stmt = stmt.where(Lockdown.state.in_(ACTIVE_STATES))
    if facility_id is not None:
        stmt = stmt.where(Lockdown.facility_id == facility_id)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = (
        await db.scalars(
            stmt.order_by(
                Lockdown.active_facility_id.is_(None),
                Lockdown.started_at.desc(),
                Lockdown.id.desc(),
            )
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total)


async def door_counts(db: AsyncSession, lockdown_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per lockdown: how many doors are in each state."""
    out: dict[int, dict[str, int]] = {i: {s.value: 0 for s in DoorState} for i in lockdown_ids}
    if not lockdown_ids:
        return out
    rows = (
        await db.execute(
            select(LockdownDoor.lockdown_id, LockdownDoor.state, func.count())
            .where(LockdownDoor.lockdown_id.in_(list(lockdown_ids)))
            .group_by(LockdownDoor.lockdown_id, LockdownDoor.state)
        )
    ).all()
    for lockdown_id, state, count in rows:
        out[lockdown_id][state] = int(count)
    return out


DOOR_ORDER = {
    DoorState.FAILED.value: 0,
    DoorState.COMMANDED.value: 1,
    DoorState.LOCKED.value: 2,
    DoorState.UNLOCKED.value: 3,
}


async def doors_of(db: AsyncSession, lockdown_id: int) -> list[LockdownDoor]:
    """The lockdown's doors, failed first, then pending, then locked; by code within each."""
    rows = (
        await db.scalars(select(LockdownDoor).where(LockdownDoor.lockdown_id == lockdown_id))
    ).all()
    return sorted(rows, key=lambda d: (DOOR_ORDER.get(d.state, 9), not d.last_error, d.door_code))


def summary(
    lockdown: Lockdown, facility: Facility | None, counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": lockdown.id,
        "facility_id": lockdown.facility_id,
        "facility_code": facility.code if facility else None,
        "facility_name": facility.name if facility else None,
        "zone_id": lockdown.zone_id,
        "zone_name": lockdown.zone_name,
        "request_id": lockdown.request_id,
        "exercise": bool(lockdown.exercise),
        "banner": EXERCISE if lockdown.exercise else None,
        "reason": lockdown.reason,
        "source": lockdown.source,
        "state": lockdown.state,
        "active": lockdown.active_facility_id is not None,
        "incident_id": lockdown.incident_id,
        "door_count": lockdown.door_count,
        "counts": {
            "locked": counts.get(DoorState.LOCKED.value, 0),
            "pending": counts.get(DoorState.COMMANDED.value, 0),
            "failed": counts.get(DoorState.FAILED.value, 0),
            "unlocked": counts.get(DoorState.UNLOCKED.value, 0),
        },
        "started_by": lockdown.started_by,
        "started_at": lockdown.started_at,
        "locked_at": lockdown.locked_at,
        "lift_requested_by": lockdown.lift_requested_by,
        "lift_requested_at": lockdown.lift_requested_at,
        "lift_reason": lockdown.lift_reason,
        "lift_approved_by": lockdown.lift_approved_by,
        "lift_approved_at": lockdown.lift_approved_at,
        "lifted_by": lockdown.lifted_by,
        "lifted_at": lockdown.lifted_at,
        "ended_at": lockdown.ended_at,
    }


def door_view(door: LockdownDoor) -> dict[str, Any]:
    return {
        "device_id": door.device_id,
        "code": door.door_code,
        "name": door.door_name,
        "zone": door.zone_name,
        "address": door.address,
        "controller": door.controller_address,
        "state": door.state,
        "commanded_at": door.commanded_at,
        "confirmed_at": door.confirmed_at,
        "attempts": door.attempts,
        "last_error": door.last_error,
        "alarm_raised": door.alarm_raised,
        "unlock_attempts": door.unlock_attempts,
        "unlocked_at": door.unlocked_at,
    }


async def detail(db: AsyncSession, lockdown: Lockdown) -> dict[str, Any]:
    facility = await db.get(Facility, lockdown.facility_id)
    counts = (await door_counts(db, [lockdown.id]))[lockdown.id]
    data = summary(lockdown, facility, counts)
    data["doors"] = [door_view(d) for d in await doors_of(db, lockdown.id)]
    return data


# -- rule triggers ----------------------------------------------------------------------------


async def trigger_for(
    db: AsyncSession, facility_id: int, alarm_type: str
) -> LockdownTrigger | None:
    """The facility's own trigger for this alarm type, else the organisation-wide one."""
    rows = (
        await db.scalars(
            select(LockdownTrigger).where(
                LockdownTrigger.alarm_type == alarm_type,
                or_(
                    LockdownTrigger.facility_id == facility_id,
                    LockdownTrigger.facility_id.is_(None),
                ),
            )
        )
    ).all()
    own = [t for t in rows if t.facility_id == facility_id]
    return own[0] if own else (rows[0] if rows else None)


async def set_trigger(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    *,
    facility: Facility | None,
    alarm_type: str,
    scope: str,
    enabled: bool,
) -> LockdownTrigger:
    """Create or change the trigger for (facility or organisation, alarm type)."""
    if scope not in TRIGGER_SCOPES:
        raise InvalidInput("scope must be 'zone' or 'facility'.")
    facility_id = facility.id if facility else None
    stmt = select(LockdownTrigger).where(LockdownTrigger.alarm_type == alarm_type)
    stmt = stmt.where(
        LockdownTrigger.facility_id == facility_id
        if facility_id is not None
        else LockdownTrigger.facility_id.is_(None)
    )
    trigger = (await db.execute(stmt)).scalar_one_or_none()
    now = clock.now()
    if trigger is None:
        trigger = LockdownTrigger(
            facility_id=facility_id,
            alarm_type=alarm_type,
            scope=scope,
            enabled=enabled,
            created_by=label(actor),
            created_at=now,
            updated_at=now,
        )
        db.add(trigger)
    else:
        trigger.scope, trigger.enabled, trigger.updated_at = scope, enabled, now
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "lockdown.trigger_set",
        target_type="lockdown_trigger",
        target_id=trigger.id,
        facility_id=facility_id,
        details={"alarm_type": alarm_type, "scope": scope, "enabled": enabled},
    )
    return trigger


async def delete_trigger(
    db: AsyncSession, clock: Clock, actor: Actor, trigger: LockdownTrigger
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        "lockdown.trigger_delete",
        target_type="lockdown_trigger",
        target_id=trigger.id,
        facility_id=trigger.facility_id,
        details={"alarm_type": trigger.alarm_type, "scope": trigger.scope},
    )
    await db.delete(trigger)
    await db.flush()


def trigger_view(trigger: LockdownTrigger, facility: Facility | None) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "facility_code": facility.code if facility else None,
        "alarm_type": trigger.alarm_type,
        "scope": trigger.scope,
        "enabled": trigger.enabled,
        "created_by": trigger.created_by,
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
    }
