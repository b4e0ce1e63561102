"""Escalation timers and the engine, driven by a FakeClock (no sleeping)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from escalation_helpers import MakeIncident
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.auth.principal import SYSTEM
from watchfloor.bus.models import OutboxMessage
from watchfloor.clock import FakeClock
from watchfloor.config import Settings
from watchfloor.incidents import escalation
from watchfloor.incidents.escalation import EscalationEngine
from watchfloor.incidents.health import system_health
from watchfloor.incidents.models import (
    EscalationPolicy,
    EscalationTimer,
    Incident,
    NotificationRequest,
    SchedulerBeat,
    TimelineEntry,
)
from watchfloor.sites.models import Facility


async def _requests(
    maker: async_sessionmaker[AsyncSession], incident_id: int
) -> list[NotificationRequest]:
    async with maker() as db:
        rows = await db.execute(
            select(NotificationRequest)
            .where(NotificationRequest.incident_id == incident_id)
            .order_by(NotificationRequest.id)
        )
        return list(rows.scalars().all())


async def _set_status(
    maker: async_sessionmaker[AsyncSession], incident_id: int, status: str
) -> None:
    async with maker() as db:
        incident = await db.get(Incident, incident_id)
        assert incident is not None
        incident.status = status
        await db.commit()


def _engine(sessionmaker, clock, settings, **kw) -> EscalationEngine:  # type: ignore[no-untyped-def]
    return EscalationEngine(sessionmaker, clock, settings, **kw)


async def test_p1_chain_notifies_the_watch_floor_then_escalates_every_30_s(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    incident_id = await make_incident(priority=1)
    kicks: list[int] = []
    engine = _engine(sessionmaker, clock, settings, relay_kick=lambda: kicks.append(1))

    assert await engine.tick(clock.now()) == 1  # step 0: the watch floor, at once
    assert await engine.tick(clock.now()) == 0  # a timer fires once
    clock.advance(seconds=29)
    assert await engine.tick(clock.now()) == 0
    clock.advance(seconds=1)
    assert await engine.tick(clock.now()) == 1
    reqs = await _requests(sessionmaker, incident_id)
    assert [(r.step_index, r.target) for r in reqs] == [(0, "watch_floor"), (1, "supervisor")]
    assert "ESC-1" in reqs[1].message and "30 s" in reqs[1].message
    assert kicks == [1, 1]

    async with sessionmaker() as db:
        timeline = (
            (
                await db.execute(
                    select(TimelineEntry)
                    .where(TimelineEntry.incident_id == incident_id)
                    .order_by(TimelineEntry.id)
                )
            )
            .scalars()
            .all()
        )
        assert [t.kind for t in timeline] == ["escalation", "escalation"]
        assert timeline[0].text == "Notified the watch floor"
        assert timeline[1].text == (
            "Escalated to the watch-floor supervisor: not acknowledged after 30 s"
        )
        outbox = (
            (
                await db.execute(
                    select(OutboxMessage).where(OutboxMessage.subject == "notify.request")
                )
            )
            .scalars()
            .all()
        )
        assert len(outbox) == 2
        data = sorted(outbox, key=lambda m: m.id)[1].payload
        assert data["target"] == "supervisor"
        assert data["incident_id"] == incident_id
        assert data["facility_code"] == "ESC-1"
        assert data["request_id"] == reqs[1].id
        pending = await escalation.pending_timers(db, incident_id)
        assert [(t.step_index, t.due_at - clock.now()) for t in pending] == [
            (2, timedelta(seconds=30))
        ]


async def test_whole_chain_with_repeats_then_stops(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    incident_id = await make_incident(priority=1)
    engine = _engine(sessionmaker, clock, settings)
    fired = 0
    for _ in range(60):  # ten minutes in 10 s ticks
        fired += await engine.tick(clock.now())
        clock.advance(seconds=10)
    reqs = await _requests(sessionmaker, incident_id)
    # 3 steps, repeated twice more; P1's cycle is 90 s (60 s + the final 30 s gap)
    assert fired == len(reqs) == 9
    assert [r.target for r in reqs] == ["watch_floor", "supervisor", "facility_manager"] * 3
    async with sessionmaker() as db:
        assert await escalation.pending_timers(db, incident_id) == []


async def test_acknowledged_incident_fires_nothing(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    incident_id = await make_incident(priority=1)
    engine = _engine(sessionmaker, clock, settings)
    assert await engine.tick(clock.now()) == 1
    await _set_status(sessionmaker, incident_id, "acknowledged")  # without stop_escalation
    clock.advance(seconds=300)
    assert await engine.tick(clock.now()) == 0
    assert len(await _requests(sessionmaker, incident_id)) == 1
    async with sessionmaker() as db:
        timers = (
            (
                await db.execute(
                    select(EscalationTimer).where(EscalationTimer.incident_id == incident_id)
                )
            )
            .scalars()
            .all()
        )
        assert all(t.fired_at or t.cancelled_at for t in timers)


async def test_stop_escalation_cancels_the_pending_timer(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    incident_id = await make_incident(priority=2)
    async with sessionmaker() as db:
        incident = await db.get(Incident, incident_id)
        assert incident is not None
        assert await escalation.stop_escalation(db, clock, incident) == 1
        await db.commit()
    clock.advance(seconds=600)
    assert await _engine(sessionmaker, clock, settings).tick() == 0


async def test_restart_resumes_and_fires_overdue_steps_in_order(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    incident_id = await make_incident(priority=1)
    first = _engine(sessionmaker, clock, settings)
    assert await first.tick(clock.now()) == 1
    del first  # the server goes down

    clock.advance(seconds=90)
    second = _engine(sessionmaker, clock, settings)  # a new process: only the rows remain
    assert await second.tick(clock.now()) == 3  # 30 s, 60 s and 90 s were all due
    reqs = await _requests(sessionmaker, incident_id)
    assert [(r.step_index, r.target) for r in reqs] == [
        (0, "watch_floor"),
        (1, "supervisor"),
        (2, "facility_manager"),
        (3, "watch_floor"),  # the chain's first repeat
    ]
    async with sessionmaker() as db:
        pending = await escalation.pending_timers(db, incident_id)
        assert [t.step_index for t in pending] == [4]
        incident = await db.get(Incident, incident_id)
        assert incident is not None
        assert pending[0].due_at == incident.opened_at + timedelta(seconds=120)


async def test_two_engines_never_fire_a_step_twice(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    ids = [await make_incident(priority=1, facility=f) for f in ("ESC-1", "ESC-2", "ESC-3")]
    a, b = _engine(sessionmaker, clock, settings), _engine(sessionmaker, clock, settings)
    clock.advance(seconds=65)
    results = await asyncio.gather(a.tick(clock.now()), b.tick(clock.now()))
    assert sum(results) == 9  # three steps each, shared between the engines
    for incident_id in ids:
        reqs = await _requests(sessionmaker, incident_id)
        assert [r.step_index for r in reqs] == [0, 1, 2]


async def test_policy_edits_never_change_a_running_escalation(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    async with sessionmaker() as db:
        await escalation.ensure_default_policies(db, clock)
        await db.commit()
    incident_id = await make_incident(priority=1)
    async with sessionmaker() as db:
        await escalation.set_policy(
            db,
            clock,
            SYSTEM,
            facility=None,
            priority=1,
            name="Changed",
            steps=[{"after_seconds": 0, "target": "guard"}],
            repeat=0,
        )
        await db.commit()
    engine = _engine(sessionmaker, clock, settings)
    clock.advance(seconds=30)
    assert await engine.tick() == 2
    reqs = await _requests(sessionmaker, incident_id)
    assert [r.target for r in reqs] == ["watch_floor", "supervisor"]
    # a new incident gets the new policy
    new_id = await make_incident(priority=1, facility="ESC-2")
    assert await engine.tick() == 1
    assert [r.target for r in await _requests(sessionmaker, new_id)] == ["guard"]


async def test_facility_override_applies_only_there(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    async with sessionmaker() as db:
        fac = (await db.execute(select(Facility).where(Facility.code == "ESC-2"))).scalar_one()
        await escalation.set_policy(
            db,
            clock,
            SYSTEM,
            facility=fac,
            priority=3,
            name="ESC-2 trouble",
            steps=[
                {"after_seconds": 0, "target": "watch_floor"},
                {"after_seconds": 10, "target": "guard"},
            ],
            repeat=0,
        )
        await db.commit()
        snap = await escalation.snapshot_policy(db, fac.id, 3)
        assert snap["name"] == "ESC-2 trouble" and snap["facility_id"] == fac.id
    here = await make_incident(priority=3, facility="ESC-2")
    there = await make_incident(priority=3, facility="ESC-1")
    clock.advance(seconds=10)
    engine = _engine(sessionmaker, clock, settings)
    assert await engine.tick() == 3
    assert [r.target for r in await _requests(sessionmaker, here)] == ["watch_floor", "guard"]
    assert [r.target for r in await _requests(sessionmaker, there)] == ["watch_floor"]


async def test_higher_priority_restarts_the_chain_with_its_policy(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    incident_id = await make_incident(priority=3)
    engine = _engine(sessionmaker, clock, settings)
    assert await engine.tick() == 1
    clock.advance(seconds=5)
    async with sessionmaker() as db:
        incident = await db.get(Incident, incident_id)
        assert incident is not None
        assert incident.escalation["priority"] == 3
        incident.priority = 1  # a panic folds in
        await escalation.start_escalation(db, clock, incident)
        await db.commit()
        assert incident.escalation["priority"] == 1
    assert await engine.tick() == 1
    clock.advance(seconds=30)
    assert await engine.tick() == 1
    reqs = await _requests(sessionmaker, incident_id)
    assert [r.target for r in reqs] == ["watch_floor", "watch_floor", "supervisor"]


async def test_ensure_default_policies_is_idempotent(sessionmaker, clock: FakeClock) -> None:
    async with sessionmaker() as db:
        assert await escalation.ensure_default_policies(db, clock) == 4
        await db.commit()
    async with sessionmaker() as db:
        assert await escalation.ensure_default_policies(db, clock) == 0
        await db.commit()
        rows = (await db.execute(select(EscalationPolicy))).scalars().all()
        by_priority = {p.priority: p for p in rows}
        assert sorted(by_priority) == [1, 2, 3, 4]
        assert [s["after_seconds"] for s in by_priority[1].steps] == [0, 30, 60]
        assert by_priority[1].repeat == 2
        assert [s["target"] for s in by_priority[4].steps] == ["watch_floor"]


async def test_tick_records_a_beat_and_health_sees_a_stall(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    engine = _engine(sessionmaker, clock, settings)
    await engine.tick()
    async with sessionmaker() as db:
        beat = await db.get(SchedulerBeat, "escalation")
        assert beat is not None and beat.last_beat_at == clock.now()
        assert await system_health(db, clock) == []
    clock.advance(seconds=11)
    async with sessionmaker() as db:
        problems = await system_health(db, clock)
        assert [(p.code, p.component) for p in problems] == [("loop_stalled", "escalation")]
        assert "11 s" in problems[0].message
    await engine.tick()
    async with sessionmaker() as db:
        assert await system_health(db, clock) == []
        # a loop that must run but never beat
        problems = await system_health(db, clock, required=["relay"])
        assert [(p.code, p.component) for p in problems] == [("loop_missing", "relay")]


async def test_health_reports_an_outbox_backlog(
    sessionmaker, clock: FakeClock, settings: Settings, make_incident: MakeIncident
) -> None:
    await make_incident(priority=1)
    engine = _engine(sessionmaker, clock, settings)
    await engine.tick()  # writes a notify.request outbox row; no relay runs in this test
    clock.advance(seconds=10)
    await engine.tick()
    async with sessionmaker() as db:
        assert await system_health(db, clock) == []  # 10 s is not yet "over 10 s"
    clock.advance(seconds=5)
    await engine.tick()
    async with sessionmaker() as db:
        problems = await system_health(db, clock)
        assert [p.code for p in problems] == ["outbox_backlog"]
        assert problems[0].message.startswith("1 bus message waiting")


async def test_heartbeat_is_pinged_only_while_healthy(
    sessionmaker, clock: FakeClock, settings: Settings
) -> None:
    pings: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        pings.append(str(request.url))
        return httpx.Response(200)

    settings = settings.model_copy(update={"heartbeat_url": "http://monitor.invalid/hb"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        engine = _engine(sessionmaker, clock, settings, http=http)
        await engine.tick()
        assert await engine.maybe_ping(clock.now()) is True
        clock.advance(seconds=5)
        await engine.tick()
        assert await engine.maybe_ping(clock.now()) is False  # at most one ping per 10 s
        clock.advance(seconds=5)
        await engine.tick()
        assert await engine.ping_heartbeat() is True
        async with sessionmaker() as db:  # the relay's beat goes stale
            await escalation.record_beat(db, "relay", clock.now() - timedelta(seconds=30))
            await db.commit()
        assert await engine.ping_heartbeat() is False
    assert pings == ["http://monitor.invalid/hb"] * 2


async def test_run_survives_a_failing_tick(
    sessionmaker, clock: FakeClock, settings: Settings
) -> None:
    engine = _engine(sessionmaker, clock, settings)
    calls: list[int] = []

    async def broken_tick(now=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        engine.stop()
        return 0

    engine.tick = broken_tick  # type: ignore[method-assign]

    async def no_pause() -> None:  # never sleep in tests
        return None

    engine._pause = no_pause  # type: ignore[method-assign]
    await engine.run()
    assert len(calls) == 2
    assert engine.last_error is None  # the second tick succeeded and cleared it
