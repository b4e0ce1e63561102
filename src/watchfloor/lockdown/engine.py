"""The lockdown engine: commands doors through the door driver, records every confirmation,
retries with backoff, flags doors that will not lock, and carries out lifts.

One task per active lockdown (in the process that started or resumed it). A task commands every
pending door at once (the driver keeps them all in flight), hands each result to the engine's
writer as it arrives, and when every door of the round has answered, waits the backoff and
commands the doors that did not confirm again, up to `lockdown_max_attempts`. A door still not
locked then is marked failed, and a `door.lock_failed` event (P1 alarm, folded into the
facility's incident) is submitted to the event batcher.

The writer is shared by every task: results that arrive while a write is in progress are
written together in the next transaction (one UPDATE per door, one statement per batch, one
`lockdown.<facility>.progress` outbox message per lockdown touched), so 10,000 doors across 200
facilities cost a handful of transactions, not 10,000.

After a restart `resume()` picks up every lockdown still locking or lifting: doors that never
confirmed are commanded again (attempts carry on where they were).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.audit import service as audit
from watchfloor.bus import outbox, subject_token
from watchfloor.clock import Clock
from watchfloor.db import urgent_writes
from watchfloor.lockdown import service
from watchfloor.lockdown.drivers.base import DoorCommand, DoorDriver, DoorResult, DoorTarget
from watchfloor.lockdown.models import DoorState, Lockdown, LockdownDoor, LockdownState
from watchfloor.sites.models import Device, Facility

log = logging.getLogger(__name__)
DOORS = service.DOOR_TABLE

SYSTEM_ACTOR = "system:lockdown"
RETRY_AFTER_ERROR_SECONDS = 1.0
WRITE_GATHER_SECONDS = 0.01  # how long the writer gathers results before a transaction
WRITE_BATCH_MAX = 2000  # ... unless this many are already waiting
PROGRESS_INTERVAL = 0.25  # seconds between two progress messages of one lockdown
Sleep = Callable[[float], Awaitable[None]]
SubmitEvents = Callable[[list[Any]], Awaitable[Any]]


@dataclass
class _Row:
    lockdown_id: int
    values: dict[str, Any]


@dataclass(eq=False)
class _Task:
    mode: str  # "lock" | "unlock"
    members: frozenset[int]  # the lockdowns this task carries out together
    task: asyncio.Task[None] = field(init=False)
    # lockdowns handed to the running task after it started (an operator's retry): taken up at
    # its next pass, and checked again before it ends, so none is left behind
    wake: set[int] = field(default_factory=set)

    def take(self, active: set[int]) -> set[int]:
        woken, self.wake = self.wake, set()
        return active | woken


MODES = {LockdownState.LOCKING.value: "lock", LockdownState.LIFTING.value: "unlock"}


class LockdownEngine:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        driver: DoorDriver,
        *,
        max_attempts: int = 4,
        retry_base_seconds: float = 0.5,
        retry_max_seconds: float = 5.0,
        submit_events: SubmitEvents | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.driver = driver
        self.max_attempts = max(1, max_attempts)
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.submit_events = submit_events
        self.sleep: Sleep = sleep or asyncio.sleep
        self._tasks: dict[int, _Task] = {}
        self._ensure_lock = asyncio.Lock()
        self._pending: list[tuple[_Row, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._tokens: dict[int, str] = {}  # lockdown id -> facility subject token
        self._progress_at: dict[int, float] = {}  # lockdown id -> monotonic time of last message
        self._progress_dirty: set[int] = set()
        self.closed = False
        self.transactions = 0  # write transactions of the writer (tests, benchmarks)

    @classmethod
    def from_settings(
        cls,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Any,
        driver: DoorDriver,
        **kwargs: Any,
    ) -> LockdownEngine:
        return cls(
            sessionmaker,
            clock,
            driver,
            max_attempts=settings.lockdown_max_attempts,
            retry_base_seconds=settings.lockdown_retry_base_seconds,
            retry_max_seconds=settings.lockdown_retry_max_seconds,
            **kwargs,
        )

    def backoff(self, round_no: int) -> float:
        """The wait before retry number `round_no` (1, 2, ...): base, 2×base, 4×base ... ≤ max."""
        return float(min(self.retry_max, self.retry_base * (2 ** max(0, round_no - 1))))

    # -- tasks ------------------------------------------------------------------------------------

    async def resume(self) -> list[int]:
        """Take up every lockdown still locking or lifting (after a restart)."""
        async with self.sessionmaker() as db:
            ids = list(
                (
                    await db.scalars(
                        select(Lockdown.id).where(
                            Lockdown.state.in_(
                                [LockdownState.LOCKING.value, LockdownState.LIFTING.value]
                            )
                        )
                    )
                ).all()
            )
        if ids:
            log.info("resuming lockdowns %s", ids)
            await self.ensure(ids)
        return ids

    async def ensure(self, lockdown_ids: Sequence[int]) -> None:
        """Make sure each lockdown has the task its state needs (call after committing a start,
        lift or retry): a lock task while locking, an unlock task while lifting, none after.
        Lockdowns ensured together (a region's) share one task: one command to every door."""
        if self.closed or not lockdown_ids:
            return
        async with self._ensure_lock:
            groups: dict[str, list[int]] = {"lock": [], "unlock": []}
            todo = set(lockdown_ids)
            while todo:
                async with self.sessionmaker() as db:
                    rows = (
                        await db.execute(
                            select(Lockdown.id, Lockdown.state, Facility.code)
                            .join(Facility, Facility.id == Lockdown.facility_id)
                            .where(Lockdown.id.in_(sorted(todo)))
                        )
                    ).all()
                todo = set()
                for lockdown_id, state, code in rows:
                    self._tokens[lockdown_id] = subject_token(code)
                    mode = MODES.get(state)
                    current = self._tasks.get(lockdown_id)
                    if current is not None and not current.task.done():
                        if current.mode == mode:
                            current.wake.add(lockdown_id)
                            continue
                        # its group's task stops; the other members get a task of their own
                        current.task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await current.task
                        for other in current.members - {lockdown_id}:
                            if self._tasks.get(other) is current:
                                del self._tasks[other]
                                todo.add(other)
                    self._tasks.pop(lockdown_id, None)
                    if mode is not None:
                        groups[mode].append(lockdown_id)
            for mode, ids in groups.items():
                if not ids:
                    continue
                entry = _Task(mode, frozenset(ids))
                entry.task = asyncio.create_task(
                    self._run(entry), name=f"lockdown:{mode}:{','.join(map(str, ids[:5]))}"
                )
                for lockdown_id in ids:
                    self._tasks[lockdown_id] = entry

    def kick(self, lockdown_ids: Sequence[int]) -> None:
        """`ensure` from synchronous code (fire and forget)."""
        if not self.closed and lockdown_ids:
            asyncio.get_running_loop().create_task(self.ensure(list(lockdown_ids)))

    async def wait(self, lockdown_id: int | None = None) -> None:
        """Wait until the lockdown's task (or every task) has finished (tests, benchmarks)."""
        while True:
            if lockdown_id is None:
                tasks = [t.task for t in self._tasks.values() if not t.task.done()]
            else:
                found = self._tasks.get(lockdown_id)
                tasks = [found.task] if found is not None and not found.task.done() else []
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    def running(self) -> dict[int, str]:
        return {i: t.mode for i, t in self._tasks.items() if not t.task.done()}

    async def close(self) -> None:
        self.closed = True
        for t in list(self._tasks.values()):
            t.task.cancel()
        for t in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t.task
        self._tasks.clear()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        for _row, fut in self._pending:
            if not fut.done():
                fut.cancel()
        self._pending.clear()

    async def _run(self, entry: _Task) -> None:
        """A group's task; a database error restarts the pass after a short pause (the doors'
        rows say what is still to do)."""
        while True:
            try:
                with urgent_writes():  # SQLite: ahead of routine writes (see _write_loop)
                    if entry.mode == "lock":
                        await self._lock(entry)
                    else:
                        await self._unlock(entry)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "lockdowns %s: %s pass failed; trying again", sorted(entry.members), entry.mode
                )
                await asyncio.sleep(RETRY_AFTER_ERROR_SECONDS)

    # -- reading ----------------------------------------------------------------------------------

    async def _states(self, ids: set[int]) -> dict[int, str]:
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(select(Lockdown.id, Lockdown.state).where(Lockdown.id.in_(ids)))
            ).all()
        return {i: s for i, s in rows}

    async def _pending_doors(self, ids: set[int], command: DoorCommand) -> list[Any]:
        """The doors still to command (plain rows: no ORM objects for thousands of doors), with
        their facility's code."""
        d = DOORS.c
        async with self.sessionmaker() as db:
            stmt = (
                select(
                    d.id,
                    d.lockdown_id,
                    d.device_id,
                    d.door_code,
                    d.address,
                    d.controller_address,
                    d.state,
                    d.attempts,
                    d.unlock_attempts,
                    d.confirmed_at,
                    Facility.code.label("facility_code"),
                )
                .join(Lockdown, Lockdown.id == d.lockdown_id)
                .join(Facility, Facility.id == Lockdown.facility_id)
                .where(d.lockdown_id.in_(ids))
            )
            if command is DoorCommand.LOCK:
                stmt = stmt.where(d.state == DoorState.COMMANDED.value)
            else:
                stmt = stmt.where(
                    d.state != DoorState.UNLOCKED.value, d.unlock_attempts < self.max_attempts
                )
            return list((await db.execute(stmt.order_by(d.id))).all())

    # -- locking ----------------------------------------------------------------------------------

    async def _lock(self, entry: _Task) -> None:
        active = set(entry.members)
        while active := entry.take(active):
            states = await self._states(active)
            active = {i for i in active if states.get(i) == LockdownState.LOCKING.value}
            if not active:
                continue  # (a lockdown handed over meanwhile is taken up by the loop's test)
            doors = await self._pending_doors(active, DoorCommand.LOCK)
            # a lockdown with nothing pending is done now, not when its group's retries are
            answered = active - {d.lockdown_id for d in doors}
            if answered:
                await self._flag_failed(answered)
                active -= await self._finish_lock(answered)
            if doors:
                retry = max(d.attempts for d in doors)
                if retry > 0:
                    await self.sleep(self.backoff(retry))
                await self._attempt(doors, DoorCommand.LOCK)
                await self._flag_failed(active)

    async def _attempt(self, doors: Sequence[Any], command: DoorCommand) -> None:
        """One round: every door commanded at once; each result written as it comes in."""
        by_device = {d.device_id: d for d in doors}
        targets = [
            DoorTarget(
                device_id=d.device_id,
                facility_code=d.facility_code,
                door_code=d.door_code,
                address=d.address,
                controller_address=d.controller_address,
            )
            for d in doors
        ]
        sent_at = self.clock.now()
        futures: list[asyncio.Future[None]] = []
        answered: set[int] = set()
        try:
            async for result in self.driver.command(targets, command):
                door = by_device.get(result.device_id)
                if door is None or result.device_id in answered:
                    continue
                answered.add(result.device_id)
                futures.append(self._record(door, result, command, sent_at))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the driver itself failed: every unanswered door failed
            log.exception("the door driver failed")
            reason = f"The door driver failed: {exc}"[:200]
            for device_id, door in by_device.items():
                if device_id not in answered:
                    failed = DoorResult(device_id, False, "unknown", reason)
                    futures.append(self._record(door, failed, command, sent_at))
            answered = set(by_device)
        for device_id, door in by_device.items():  # a driver that broke its promise
            if device_id not in answered:
                failed = DoorResult(device_id, False, "unknown", "The controller never answered")
                futures.append(self._record(door, failed, command, sent_at))
        if futures:
            await asyncio.gather(*futures)
        await self._flush_progress({d.lockdown_id for d in by_device.values()})

    def _record(
        self, door: Any, result: DoorResult, command: DoorCommand, sent_at: Any
    ) -> asyncio.Future[None]:
        now = self.clock.now()
        error = (result.error or "The controller did not confirm")[:300]
        values: dict[str, Any]
        if command is DoorCommand.LOCK:
            attempts = door.attempts + 1
            if result.ok:
                values = {
                    "id": door.id,
                    "state": DoorState.LOCKED.value,
                    "attempts": attempts,
                    "commanded_at": sent_at,
                    "confirmed_at": now,
                    "last_error": "",
                }
            else:
                failed = attempts >= self.max_attempts
                values = {
                    "id": door.id,
                    "state": DoorState.FAILED.value if failed else DoorState.COMMANDED.value,
                    "attempts": attempts,
                    "commanded_at": sent_at,
                    "confirmed_at": door.confirmed_at,
                    "last_error": error,
                }
        else:
            attempts = door.unlock_attempts + 1
            if result.ok:
                values = {
                    "id": door.id,
                    "state": DoorState.UNLOCKED.value,
                    "unlock_attempts": attempts,
                    "unlocked_at": now,
                    "last_error": "",
                }
            else:
                values = {
                    "id": door.id,
                    "state": door.state,
                    "unlock_attempts": attempts,
                    "unlocked_at": None,
                    "last_error": f"Did not return to its normal schedule: {error}"[:300],
                }
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((_Row(door.lockdown_id, values), fut))
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="lockdown:writer")
        return fut

    async def _write_loop(self) -> None:
        # SQLite: door confirmations are life-safety writes, they go before routine ones at the
        # database's write gate (db.urgent_writes; no effect on PostgreSQL)
        with urgent_writes():
            await self._write_loop_urgent()

    async def _write_loop_urgent(self) -> None:
        while not self.closed:
            await self._wake.wait()
            if len(self._pending) < WRITE_BATCH_MAX:
                # gather a little: one transaction for many confirmations (group commit)
                await asyncio.sleep(WRITE_GATHER_SECONDS)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for _row, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise
            except Exception as exc:
                log.exception("writing %d door results failed", len(batch))
                for _row, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _row, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _write(self, batch: list[tuple[_Row, asyncio.Future[None]]]) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        touched: set[int] = set()
        for row, _fut in batch:
            groups.setdefault(tuple(sorted(row.values)), []).append(row.values)
            touched.add(row.lockdown_id)
        async with self.sessionmaker() as db:
            for keys, rows in groups.items():
                # one executemany per shape of row (Core: no ORM bookkeeping per door)
                stmt = (
                    update(DOORS)
                    .where(DOORS.c.id == bindparam("_id"))
                    .values({k: bindparam(k) for k in keys if k != "id"})
                )
                params = [{("_id" if k == "id" else k): v for k, v in r.items()} for r in rows]
                await db.execute(stmt, params)
            await self._progress(db, touched)
            await db.commit()
        self.transactions += 1

    async def _progress(self, db: AsyncSession, ids: set[int], *, force: bool = False) -> None:
        """`lockdown.<facility>.progress` for the live console: at most one per lockdown every
        PROGRESS_INTERVAL_SECONDS (a 10,000-door lockdown writes its results in many small
        batches); a lockdown left out is sent at the end of the round (`force`)."""
        now = time.monotonic()
        due = []
        for lockdown_id in sorted(ids):
            if force or now - self._progress_at.get(lockdown_id, -1e9) >= PROGRESS_INTERVAL:
                self._progress_at[lockdown_id] = now
                self._progress_dirty.discard(lockdown_id)
                due.append(lockdown_id)
            else:
                self._progress_dirty.add(lockdown_id)
        if due:
            await outbox.add_many(
                db,
                [
                    (
                        f"lockdown.{self._tokens.get(i, '_')}.progress",
                        {"lockdown_id": i},
                    )
                    for i in due
                ],
                clock=self.clock,
            )

    async def _flush_progress(self, ids: set[int]) -> None:
        dirty = self._progress_dirty & ids
        if not dirty:
            return
        async with self.sessionmaker() as db:
            await self._progress(db, dirty, force=True)
            await db.commit()

    async def _flag_failed(self, ids: set[int]) -> None:
        """Doors marked failed whose alarm is not raised yet: submit `door.lock_failed` (P1),
        then mark them, write the timeline entry and the audit record of each lockdown."""
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(
                    select(LockdownDoor, Device.zone_id)
                    .join(Device, Device.id == LockdownDoor.device_id)
                    .where(
                        LockdownDoor.lockdown_id.in_(ids),
                        LockdownDoor.state == DoorState.FAILED.value,
                        LockdownDoor.alarm_raised.is_(False),
                    )
                    .order_by(LockdownDoor.lockdown_id, LockdownDoor.door_code)
                )
            ).all()
            if not rows:
                return
            by_lockdown: dict[int, list[tuple[LockdownDoor, int | None]]] = {}
            for door, zone_id in rows:
                by_lockdown.setdefault(door.lockdown_id, []).append((door, zone_id))
            events = []
            found: list[tuple[Lockdown, list[LockdownDoor]]] = []
            for lockdown_id, pairs in by_lockdown.items():
                lockdown = await db.get(Lockdown, lockdown_id)
                facility = await db.get(Facility, lockdown.facility_id) if lockdown else None
                if lockdown is None or facility is None:
                    continue
                events += [self._failure_event(lockdown, facility, d, z) for d, z in pairs]
                found.append((lockdown, [d for d, _z in pairs]))
            if self.submit_events is not None and events:
                await self.submit_events(events)
            for lockdown, doors in found:
                for door in doors:
                    door.alarm_raised = True
                codes = [d.door_code for d in doors]
                errors = sorted({d.last_error for d in doors if d.last_error})
                await audit.record(
                    db,
                    self.clock,
                    SYSTEM_ACTOR,
                    "lockdown.doors_failed",
                    target_type="lockdown",
                    target_id=lockdown.id,
                    facility_id=lockdown.facility_id,
                    details={
                        "doors": codes,
                        "errors": errors[:10],
                        "attempts": self.max_attempts,
                        "exercise": bool(lockdown.exercise),
                    },
                )
                await service._timeline(
                    db,
                    self.clock,
                    lockdown,
                    f"{len(doors)} door(s) did not lock after {self.max_attempts} attempts: "
                    + ", ".join(codes[:20])
                    + ("…" if len(codes) > 20 else "")
                    + (f" ({errors[0]})" if errors else ""),
                    SYSTEM_ACTOR,
                    {"doors": codes[:100]},
                )
            await db.commit()

    def _failure_event(
        self, lockdown: Lockdown, facility: Facility, door: LockdownDoor, zone_id: int | None
    ) -> Any:
        from watchfloor.events.ingest import ValidatedEvent

        sent = door.commanded_at or self.clock.now()
        return ValidatedEvent(
            facility_id=facility.id,
            facility_code=facility.code,
            type="door.lock_failed",
            occurred_at=self.clock.now(),
            device_id=door.device_id,
            device_code=door.door_code,
            zone_id=zone_id,
            attributes={
                "door": f"{door.door_code} {door.door_name}"[:80],
                "lockdown_id": lockdown.id,
                "attempts": door.attempts,
                "reason": (door.last_error or "did not confirm")[:200],
                "exercise": bool(lockdown.exercise),
            },
            # stable across a crash and a resume; a fresh key after an operator's retry
            idempotency_key=f"lock-failed:{lockdown.id}:{door.device_id}:{sent.timestamp():.6f}",
            source="system",
            sender=SYSTEM_ACTOR,
            heard=False,
        )

    async def _finish_lock(self, ids: set[int]) -> set[int]:
        """Lockdowns with no door pending become locked (or partial, with failed doors); returns
        the ids that are done. One still pending (an operator's retry came in meanwhile) stays
        with the task. The state changes only from 'locking' (a lift meanwhile wins)."""
        done: set[int] = set()
        async with self.sessionmaker() as db:
            lockdowns = (
                await db.scalars(
                    select(Lockdown)
                    .where(Lockdown.id.in_(ids))
                    .execution_options(populate_existing=True)
                )
            ).all()
            counts = await service.door_counts(db, [ld.id for ld in lockdowns])
            now = self.clock.now()
            for lockdown in lockdowns:
                c = counts[lockdown.id]
                if lockdown.state != LockdownState.LOCKING.value:
                    done.add(lockdown.id)
                    continue
                if c.get(DoorState.COMMANDED.value, 0):
                    continue
                failed = c.get(DoorState.FAILED.value, 0)
                new_state = (LockdownState.PARTIAL if failed else LockdownState.LOCKED).value
                result = await db.execute(
                    update(Lockdown)
                    .where(
                        Lockdown.id == lockdown.id, Lockdown.state == LockdownState.LOCKING.value
                    )
                    .values(state=new_state, locked_at=lockdown.locked_at or now, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                done.add(lockdown.id)
                if getattr(result, "rowcount", 1) == 0:
                    continue
                lockdown.state = new_state
                locked = c.get(DoorState.LOCKED.value, 0)
                if not failed:
                    await service._timeline(
                        db,
                        self.clock,
                        lockdown,
                        f"Every door confirmed locked ({locked} of {lockdown.door_count})",
                        SYSTEM_ACTOR,
                        {"locked": locked},
                    )
                service.progress_message(
                    db, self.clock, lockdown, self._tokens.get(lockdown.id, "_")
                )
            await db.commit()
        return done

    # -- lifting ----------------------------------------------------------------------------------

    async def _unlock(self, entry: _Task) -> None:
        active = set(entry.members)
        while active := entry.take(active):
            states = await self._states(active)
            active = {i for i in active if states.get(i) == LockdownState.LIFTING.value}
            if not active:
                continue
            doors = await self._pending_doors(active, DoorCommand.UNLOCK)
            if doors:
                retry = max(d.unlock_attempts for d in doors)
                if retry > 0:
                    await self.sleep(self.backoff(retry))
                await self._attempt(doors, DoorCommand.UNLOCK)
                continue
            await self._finish_unlock(active)
            active = set()

    async def _finish_unlock(self, ids: set[int]) -> None:
        if not ids:
            return
        async with self.sessionmaker() as db:
            lockdowns = (
                await db.scalars(
                    select(Lockdown)
                    .where(Lockdown.id.in_(ids), Lockdown.state == LockdownState.LIFTING.value)
                    .execution_options(populate_existing=True)
                )
            ).all()
            stuck_rows = (
                await db.execute(
                    select(LockdownDoor.lockdown_id, LockdownDoor.door_code)
                    .where(
                        LockdownDoor.lockdown_id.in_(ids),
                        LockdownDoor.state != DoorState.UNLOCKED.value,
                    )
                    .order_by(LockdownDoor.door_code)
                )
            ).all()
            stuck: dict[int, list[str]] = {}
            for lockdown_id, code in stuck_rows:
                stuck.setdefault(lockdown_id, []).append(code)
            now = self.clock.now()
            for lockdown_id in ids:  # over: forget its live-console bookkeeping
                self._progress_at.pop(lockdown_id, None)
                self._progress_dirty.discard(lockdown_id)
            for lockdown in lockdowns:
                codes = stuck.get(lockdown.id, [])
                lockdown.state = LockdownState.LIFTED.value
                lockdown.active_facility_id = None
                lockdown.ended_at = now
                lockdown.updated_at = now
                text = f"Lockdown over: {lockdown.door_count - len(codes)} door(s) back to normal"
                if codes:
                    text += f"; {len(codes)} did not answer the unlock: " + ", ".join(codes[:20])
                    await audit.record(
                        db,
                        self.clock,
                        SYSTEM_ACTOR,
                        "lockdown.unlock_failed",
                        target_type="lockdown",
                        target_id=lockdown.id,
                        facility_id=lockdown.facility_id,
                        details={"doors": codes[:200]},
                    )
                await service._timeline(db, self.clock, lockdown, text, SYSTEM_ACTOR)
                service.progress_message(
                    db, self.clock, lockdown, self._tokens.get(lockdown.id, "_")
                )
            await db.commit()
