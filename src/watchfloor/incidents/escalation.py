"""Escalation policies, persisted escalation timers, and the engine that fires them.

How an escalation runs
----------------------
A policy (per priority, optionally overridden per facility) is an ordered list of steps, each
"after N seconds unacknowledged, notify TARGET", and a repeat count. When an incident opens, the
policy for its priority is *snapshotted* into ``incident.escalation`` (editing a policy later never
changes a running escalation) and the chain is flattened: the steps, then the steps again
``repeat`` times, each repetition ``cycle_seconds`` after the previous one. ``cycle_seconds`` is the
last step's offset plus the chain's final gap (the gap between its last two steps; 60 s for a
one-step chain), so P1's default (0 s, 30 s, 60 s, repeat 2) fires at 0, 30, 60, 90, 120, 150,
180, 210 and 240 s.

Only the *next* step of an incident has an ``EscalationTimer`` row. ``EscalationEngine.tick(now)``
fires due timers: for each it writes a ``NotificationRequest``, an outbox ``notify.request``
message and a timeline entry, then creates the timer of the following step. An incident that is no
longer ``new`` (acknowledged, or further along) fires nothing: its timer is cancelled instead.
Timers are rows, so a restarted engine simply continues; steps that fell due while the server was
down fire at once, in order, none skipped.

Contract with the incidents service (``fold_alarm``)
----------------------------------------------------
* When an incident opens: ``await start_escalation(db, clock, incident)`` after the incident has
  been flushed (it needs ``incident.id``). ``start_escalation`` takes the snapshot itself when
  ``incident.escalation`` is empty or was taken for another priority, so the caller need not call
  ``snapshot_policy``; a caller that sets ``incident.escalation = await snapshot_policy(...)``
  first gets the same result.
* When a more urgent alarm folds in and raises ``incident.priority``: call ``start_escalation``
  again. The pending timer is cancelled and the higher priority's chain starts from its first step
  now. (The chain only fires while ``incident.status == "new"``: to re-escalate an acknowledged
  incident, put it back to ``new`` first.)
* On acknowledge (or close): ``await stop_escalation(db, clock, incident)``. Not strictly needed
  (the engine cancels timers of incidents that are no longer new) but it keeps the table tidy.
Everything here flushes; the caller commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal
from watchfloor.clock import Clock, as_utc
from watchfloor.config import Settings
from watchfloor.incidents.models import (
    EscalationPolicy,
    EscalationTimer,
    Incident,
    IncidentStatus,
    NotificationRequest,
    SchedulerBeat,
    TimelineEntry,
)
from watchfloor.problems import Conflict, NotFound
from watchfloor.sites.models import Facility

log = logging.getLogger("watchfloor.escalation")

NOTIFY_SUBJECT = "notify.request"
ENGINE_BEAT = "escalation"
TICK_SECONDS = 1.0
MAX_FIRES_PER_TICK = 1000
HEARTBEAT_TIMEOUT_SECONDS = 3.0
HEARTBEAT_EVERY = timedelta(seconds=10)  # external monitors want a steady pulse, not one a second

TARGETS: dict[str, str] = {
    "watch_floor": "the watch floor",
    "supervisor": "the watch-floor supervisor",
    "facility_manager": "the facility security manager",
    "programme_manager": "the programme manager",
    "guard": "the facility's guards",
}

# Built-in defaults; `ensure_default_policies` writes them as the organisation's policies.
DEFAULT_POLICIES: dict[int, dict[str, Any]] = {
    1: {
        "name": "P1 life safety",
        "steps": [
            {"after_seconds": 0, "target": "watch_floor"},
            {"after_seconds": 30, "target": "supervisor"},
            {"after_seconds": 60, "target": "facility_manager"},
        ],
        "repeat": 2,
    },
    2: {
        "name": "P2 intrusion",
        "steps": [
            {"after_seconds": 0, "target": "watch_floor"},
            {"after_seconds": 120, "target": "supervisor"},
            {"after_seconds": 300, "target": "facility_manager"},
        ],
        "repeat": 1,
    },
    3: {
        "name": "P3 trouble",
        "steps": [{"after_seconds": 0, "target": "watch_floor"}],
        "repeat": 0,
    },
    4: {
        "name": "P4 information",
        "steps": [{"after_seconds": 0, "target": "watch_floor"}],
        "repeat": 0,
    },
}


def _process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- policies -----------------------------------------------------------------------------------


ORG_POLICY_LOCK = 0x5746_4553_4341  # pg advisory lock key: "WFESCA"


async def _lock_org_policies(db: AsyncSession) -> None:
    """Serialise writers of organisation policies (facility_id NULL): the unique constraint on
    (facility_id, priority) does not stop two NULL rows on PostgreSQL. SQLite has one writer."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ORG_POLICY_LOCK})


async def ensure_default_policies(db: AsyncSession, clock: Clock) -> int:
    """Write the built-in organisation-wide policy of every priority that has none. Idempotent
    (an edited default is left alone), also when several processes start at once. Returns how
    many were created. Flushes; caller commits."""
    await _lock_org_policies(db)
    existing = set(
        (
            await db.execute(
                select(EscalationPolicy.priority).where(EscalationPolicy.facility_id.is_(None))
            )
        )
        .scalars()
        .all()
    )
    created = 0
    for priority, spec in DEFAULT_POLICIES.items():
        if priority in existing:
            continue
        db.add(
            EscalationPolicy(
                facility_id=None,
                priority=priority,
                name=spec["name"],
                steps=[dict(s) for s in spec["steps"]],
                repeat=spec["repeat"],
                updated_at=clock.now(),
            )
        )
        created += 1
    if created:
        await db.flush()
    return created


async def effective_policy(
    db: AsyncSession, facility_id: int | None, priority: int
) -> EscalationPolicy | None:
    """The facility's override for this priority, else the organisation's policy, else None."""
    rows = (
        (
            await db.execute(
                select(EscalationPolicy).where(
                    EscalationPolicy.priority == priority,
                    (EscalationPolicy.facility_id == facility_id)
                    | EscalationPolicy.facility_id.is_(None),
                )
            )
        )
        .scalars()
        .all()
    )
    override = [p for p in rows if p.facility_id is not None and p.facility_id == facility_id]
    if override:
        return override[0]
    default = [p for p in rows if p.facility_id is None]
    return default[0] if default else None


def cycle_seconds(steps: Sequence[dict[str, Any]]) -> int:
    """How long one run of the chain lasts before a repeat starts (see the module docstring)."""
    offsets = [int(s["after_seconds"]) for s in steps]
    if not offsets:
        return 60
    gap = offsets[-1] - offsets[-2] if len(offsets) >= 2 else 60
    return offsets[-1] + max(gap, 1)


async def snapshot_policy(
    db: AsyncSession, facility_id: int | None, priority: int
) -> dict[str, Any]:
    """The escalation policy in force for (facility, priority), frozen as a plain dict to store
    in ``incident.escalation``:
    ``{"policy_id", "facility_id", "priority", "name", "steps": [{"after_seconds", "target"}],
    "repeat", "cycle_seconds"}``. Falls back to the built-in defaults when no policy rows exist.
    """
    policy = await effective_policy(db, facility_id, priority)
    if policy is not None:
        steps = [
            {"after_seconds": int(s["after_seconds"]), "target": str(s["target"])}
            for s in policy.steps
        ]
        snap: dict[str, Any] = {
            "policy_id": policy.id,
            "facility_id": policy.facility_id,
            "priority": priority,
            "name": policy.name,
            "steps": steps,
            "repeat": int(policy.repeat),
        }
    else:
        spec = DEFAULT_POLICIES.get(priority, DEFAULT_POLICIES[4])
        snap = {
            "policy_id": None,
            "facility_id": None,
            "priority": priority,
            "name": spec["name"],
            "steps": [dict(s) for s in spec["steps"]],
            "repeat": spec["repeat"],
        }
    snap["cycle_seconds"] = cycle_seconds(snap["steps"])
    return snap


@dataclass(frozen=True)
class ChainStep:
    index: int  # position in the flattened chain
    offset_seconds: int  # since the escalation started
    target: str
    after_seconds: int  # the step's own "after N seconds" (shown in the timeline)
    round: int  # 0 for the first run, 1.. for repeats


def flatten(snapshot: dict[str, Any]) -> list[ChainStep]:
    """The snapshot's chain including its repeats, in firing order."""
    steps = snapshot.get("steps") or []
    repeat = max(0, int(snapshot.get("repeat", 0)))
    cycle = int(snapshot.get("cycle_seconds") or cycle_seconds(steps))
    chain: list[ChainStep] = []
    for rnd in range(repeat + 1):
        for step in steps:
            after = int(step["after_seconds"])
            chain.append(
                ChainStep(len(chain), rnd * cycle + after, str(step["target"]), after, rnd)
            )
    return chain


async def list_policies(
    db: AsyncSession, *, facility_ids: Iterable[int] | None
) -> list[EscalationPolicy]:
    """Organisation policies and the overrides of the given facilities (None: every facility),
    ordered by facility (organisation first) then priority."""
    stmt = select(EscalationPolicy)
    if facility_ids is not None:
        ids = list(facility_ids)
        stmt = stmt.where(
            EscalationPolicy.facility_id.is_(None) | EscalationPolicy.facility_id.in_(ids)
        )
    rows = (await db.execute(stmt)).scalars().all()
    return sorted(rows, key=lambda p: (p.facility_id is not None, p.facility_id or 0, p.priority))


async def set_policy(
    db: AsyncSession,
    clock: Clock,
    actor: Principal,
    *,
    facility: Facility | None,
    priority: int,
    name: str,
    steps: list[dict[str, Any]],
    repeat: int,
) -> EscalationPolicy:
    """Create or replace the organisation's policy (facility None) or a facility's override for
    one priority, and audit it. Running incidents keep their snapshot. Flushes; caller commits."""
    facility_id = facility.id if facility is not None else None
    if facility_id is None:
        await _lock_org_policies(db)
    policy = (
        await db.execute(
            select(EscalationPolicy).where(
                EscalationPolicy.priority == priority,
                EscalationPolicy.facility_id == facility_id
                if facility_id is not None
                else EscalationPolicy.facility_id.is_(None),
            )
        )
    ).scalar_one_or_none()
    before = None
    if policy is None:
        policy = EscalationPolicy(facility_id=facility_id, priority=priority)
        db.add(policy)
    else:
        before = {"name": policy.name, "steps": policy.steps, "repeat": policy.repeat}
    policy.name = name or DEFAULT_POLICIES[priority]["name"]
    policy.steps = [dict(s) for s in steps]
    policy.repeat = repeat
    policy.updated_at = clock.now()
    try:
        await db.flush()
    except IntegrityError:
        raise Conflict(
            f"The P{priority} policy was changed by someone else at the same moment; try again."
        ) from None
    await audit.record(
        db,
        clock,
        actor,
        "escalation_policy.set",
        target_type="escalation_policy",
        target_id=policy.id,
        facility_id=facility_id,
        details={
            "priority": priority,
            "facility": facility.code if facility is not None else None,
            "name": policy.name,
            "steps": policy.steps,
            "repeat": repeat,
            "before": before,
        },
    )
    return policy


async def delete_override(
    db: AsyncSession, clock: Clock, actor: Principal, *, facility: Facility, priority: int
) -> None:
    """Remove a facility's override: the organisation's policy applies there again."""
    policy = (
        await db.execute(
            select(EscalationPolicy).where(
                EscalationPolicy.priority == priority,
                EscalationPolicy.facility_id == facility.id,
            )
        )
    ).scalar_one_or_none()
    if policy is None:
        raise NotFound(f"Facility '{facility.code}' has no P{priority} escalation override.")
    await audit.record(
        db,
        clock,
        actor,
        "escalation_policy.delete",
        target_type="escalation_policy",
        target_id=policy.id,
        facility_id=facility.id,
        details={"priority": priority, "facility": facility.code, "steps": policy.steps},
    )
    await db.delete(policy)
    await db.flush()


# -- starting and stopping an incident's escalation ---------------------------------------------


def _started_at(incident: Incident) -> datetime:
    raw = (incident.escalation or {}).get("started_at")
    if raw:
        return as_utc(datetime.fromisoformat(raw))
    return incident.opened_at


async def _cancel_pending(db: AsyncSession, incident_id: int, now: datetime) -> int:
    result = await db.execute(
        update(EscalationTimer)
        .where(
            EscalationTimer.incident_id == incident_id,
            EscalationTimer.fired_at.is_(None),
            EscalationTimer.cancelled_at.is_(None),
        )
        .values(cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def start_escalation(
    db: AsyncSession, clock: Clock, incident: Incident
) -> EscalationTimer | None:
    """(Re)start the incident's escalation chain now: snapshot the policy for the incident's
    current priority into ``incident.escalation`` when it is empty or for another priority, cancel
    any pending timer, and create the timer of the first step (due now + its after_seconds).
    Returns that timer, or None for a chain with no steps. The incident must have an id (flushed).
    Flushes; the caller commits."""
    if incident.id is None:
        await db.flush()
    now = clock.now()
    snap = dict(incident.escalation or {})
    if not snap.get("steps") or snap.get("priority") != incident.priority:
        snap = await snapshot_policy(db, incident.facility_id, incident.priority)
    snap["started_at"] = now.isoformat()
    incident.escalation = snap  # a new dict, so the JSON column is seen as changed
    await _cancel_pending(db, incident.id, now)
    chain = flatten(snap)
    if not chain:
        await db.flush()
        return None
    timer = EscalationTimer(
        incident_id=incident.id,
        step_index=0,
        due_at=now + timedelta(seconds=chain[0].offset_seconds),
    )
    db.add(timer)
    await db.flush()
    return timer


async def stop_escalation(db: AsyncSession, clock: Clock, incident: Incident) -> int:
    """Cancel the incident's pending timers (on acknowledge or close). Returns how many."""
    return await _cancel_pending(db, incident.id, clock.now())


async def pending_timers(db: AsyncSession, incident_id: int) -> list[EscalationTimer]:
    return list(
        (
            await db.execute(
                select(EscalationTimer)
                .where(
                    EscalationTimer.incident_id == incident_id,
                    EscalationTimer.fired_at.is_(None),
                    EscalationTimer.cancelled_at.is_(None),
                )
                .order_by(EscalationTimer.due_at)
            )
        )
        .scalars()
        .all()
    )


# -- scheduler beats ----------------------------------------------------------------------------


async def record_beat(db: AsyncSession, name: str, now: datetime, process: str = "") -> None:
    """Upsert the named loop's SchedulerBeat (any loop may use this). Flushes; caller commits."""
    process = process or _process_name()
    values: dict[str, Any] = {"name": name, "last_beat_at": now, "process": process}
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(SchedulerBeat).values(values)
        await db.execute(
            stmt.on_conflict_do_update(
                index_elements=[SchedulerBeat.name],
                set_={"last_beat_at": stmt.excluded.last_beat_at, "process": stmt.excluded.process},
            )
        )
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sstmt = sqlite_insert(SchedulerBeat).values(values)
        await db.execute(
            sstmt.on_conflict_do_update(
                index_elements=[SchedulerBeat.name],
                set_={
                    "last_beat_at": sstmt.excluded.last_beat_at,
                    "process": sstmt.excluded.process,
                },
            )
        )
    else:  # pragma: no cover - other databases are not supported
        beat = await db.get(SchedulerBeat, name)
        if beat is None:
            db.add(SchedulerBeat(**values))
        else:
            beat.last_beat_at, beat.process = now, process
    await db.flush()


# -- the engine ---------------------------------------------------------------------------------


def _describe(step: ChainStep) -> str:
    """The timeline line: "Escalated to the watch-floor supervisor: not acknowledged after 30 s"."""
    who = TARGETS.get(step.target, step.target.replace("_", " "))
    again = f" (repeat {step.round})" if step.round else ""
    if step.offset_seconds == 0:
        return f"Notified {who}"
    return f"Escalated to {who}{again}: not acknowledged after {step.offset_seconds} s"


class EscalationEngine:
    """Fires due escalation timers. Safe to run in several processes at once: on PostgreSQL a
    timer is claimed with SELECT ... FOR UPDATE SKIP LOCKED, and on every database the claim is a
    conditional UPDATE (fired_at IS NULL), so a step fires once however many engines see it.

    ``relay_kick`` (optional) is called after a commit that wrote outbox rows, so the relay
    publishes them at once instead of at its next poll."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        relay_kick: Callable[[], None] | None = None,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.settings = settings
        self.relay_kick = relay_kick
        self.process = _process_name()
        self._http = http
        self._stopping = asyncio.Event()
        self.last_error: str | None = None
        self._last_ping: datetime | None = None

    # one tick -----------------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> int:
        """Fire every timer due at `now` (default: the clock's now), then record the beat.
        Returns how many steps fired (cancelled timers of acknowledged incidents do not count)."""
        now = now or self.clock.now()
        fired = 0
        for _ in range(MAX_FIRES_PER_TICK):
            outcome = await self._fire_one(now)
            if outcome is None:
                break
            fired += outcome
        async with self.sessionmaker() as db:
            await record_beat(db, ENGINE_BEAT, now, self.process)
            await db.commit()
        return fired

    async def _fire_one(self, now: datetime) -> int | None:
        """Claim and handle one due timer in its own transaction: 1 fired, 0 cancelled, None when
        nothing is due."""
        async with self.sessionmaker() as db:
            stmt = (
                select(EscalationTimer)
                .where(
                    EscalationTimer.fired_at.is_(None),
                    EscalationTimer.cancelled_at.is_(None),
                    EscalationTimer.due_at <= now,
                )
                .order_by(EscalationTimer.due_at, EscalationTimer.id)
                .limit(1)
            )
            if db.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            timer = (await db.execute(stmt)).scalar_one_or_none()
            if timer is None:
                return None
            incident = await db.get(Incident, timer.incident_id)
            still_new = incident is not None and incident.status == IncidentStatus.NEW
            claim = await db.execute(
                update(EscalationTimer)
                .where(
                    EscalationTimer.id == timer.id,
                    EscalationTimer.fired_at.is_(None),
                    EscalationTimer.cancelled_at.is_(None),
                )
                .values(**({"fired_at": now} if still_new else {"cancelled_at": now}))
                .execution_options(synchronize_session=False)
            )
            if int(getattr(claim, "rowcount", 0) or 0) != 1:
                await db.rollback()  # another engine took it between our read and our claim
                return 0
            if not still_new or incident is None:
                await db.commit()
                return 0
            await self._fire(db, incident, timer, now)
            await db.commit()
        if self.relay_kick is not None:
            self.relay_kick()
        return 1

    async def _fire(
        self, db: AsyncSession, incident: Incident, timer: EscalationTimer, now: datetime
    ) -> None:
        from watchfloor.bus import outbox

        chain = flatten(incident.escalation or {})
        if timer.step_index >= len(chain):
            return
        step = chain[timer.step_index]
        facility = await db.get(Facility, incident.facility_id)
        fcode = facility.code if facility is not None else str(incident.facility_id)
        text = _describe(step)
        message = f"P{incident.priority} incident #{incident.id} at {fcode}: {incident.title}"
        if step.offset_seconds:
            message += f" (not acknowledged after {step.offset_seconds} s)"
        request = NotificationRequest(
            incident_id=incident.id,
            step_index=step.index,
            target=step.target,
            message=message,
            status="requested",
            created_at=now,
        )
        db.add(request)
        await db.flush()
        outbox.add(
            db,
            NOTIFY_SUBJECT,
            {
                "request_id": request.id,
                "incident_id": incident.id,
                "facility_id": incident.facility_id,
                "facility_code": fcode,
                "priority": incident.priority,
                "step_index": step.index,
                "round": step.round,
                "target": step.target,
                "message": message,
                "due_at": as_utc(timer.due_at).isoformat(),
                "requested_at": now.isoformat(),
            },
            msg_id=f"notify-{request.id}",
            clock=self.clock,
        )
        db.add(
            TimelineEntry(
                incident_id=incident.id,
                at=now,
                kind="escalation",
                actor="system",
                text=text,
                data={
                    "step_index": step.index,
                    "target": step.target,
                    "round": step.round,
                    "due_at": as_utc(timer.due_at).isoformat(),
                    "notification_request_id": request.id,
                },
            )
        )
        if step.index + 1 < len(chain):
            nxt = chain[step.index + 1]
            db.add(
                EscalationTimer(
                    incident_id=incident.id,
                    step_index=nxt.index,
                    due_at=_started_at(incident) + timedelta(seconds=nxt.offset_seconds),
                )
            )
        await db.flush()

    # the loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every second until `stop()`; an exception is logged and the loop goes on (the
        beat then stops advancing, which the health check reports). The heartbeat URL is pinged
        only after a tick that succeeded while the system was healthy."""
        while not self._stopping.is_set():
            ok = False
            try:
                await self.tick(self.clock.now())
                ok = True
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                self.last_error = repr(exc)
                log.exception("escalation tick failed")
            if ok:
                await self.maybe_ping(self.clock.now())
            await self._pause()

    async def _pause(self) -> None:
        """Wait for the next tick (returns early when stopped)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=TICK_SECONDS)

    def stop(self) -> None:
        self._stopping.set()

    async def maybe_ping(self, now: datetime) -> bool:
        """Ping the heartbeat URL if one is set and the last ping is HEARTBEAT_EVERY old."""
        if not self.settings.heartbeat_url:
            return False
        if self._last_ping is not None and now - self._last_ping < HEARTBEAT_EVERY:
            return False
        pinged = await self.ping_heartbeat()
        if pinged:
            self._last_ping = now
        return pinged

    async def ping_heartbeat(self) -> bool:
        """GET settings.heartbeat_url when the system is healthy; True when pinged successfully."""
        from watchfloor.incidents.health import system_health

        url = self.settings.heartbeat_url
        if not url:
            return False
        try:
            async with self.sessionmaker() as db:
                problems = await system_health(db, self.clock)
            if problems:
                log.warning("not pinging the heartbeat URL: %s", problems[0].message)
                return False
            if self._http is not None:
                resp = await self._http.get(url, timeout=HEARTBEAT_TIMEOUT_SECONDS)
            else:
                async with httpx.AsyncClient(timeout=HEARTBEAT_TIMEOUT_SECONDS) as http:
                    resp = await http.get(url)
            return resp.status_code < 400
        except Exception:  # noqa: BLE001 - a monitoring hiccup must not stop escalation
            log.warning("heartbeat ping to %s failed", url, exc_info=True)
            return False


async def count_fired(db: AsyncSession, incident_id: int) -> int:
    return int(
        (
            await db.execute(
                select(func.count())
                .select_from(EscalationTimer)
                .where(
                    EscalationTimer.incident_id == incident_id,
                    EscalationTimer.fired_at.is_not(None),
                )
            )
        ).scalar_one()
    )
