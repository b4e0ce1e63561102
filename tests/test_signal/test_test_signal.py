"""Scheduled end-to-end test signals: sent through the real ingest path, recorded when the
pipeline processed them, a P3 `test_signal_missing` alarm when one is not processed in time, and
cleared when a later one gets through. Driven with the FakeClock; the pipeline with drain()."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from watchfloor.alarms.defaults import ensure_defaults
from watchfloor.alarms.models import Alarm, AlarmState
from watchfloor.events.models import Event, TestSignal
from watchfloor.events.test_signal import RULE_KEY, SENDER, TestSignalMonitor
from watchfloor.incidents.escalation import ensure_default_policies
from watchfloor.incidents.models import Incident
from watchfloor.sites.models import Device, Facility, Organisation, Region

GRACE = 120


@pytest.fixture
async def sites(db, clock) -> dict[str, int]:  # type: ignore[no-untyped-def]
    now = clock.now()
    org = Organisation(code="SIG", name="Signal Agency", created_at=now, updated_at=now)
    r1 = Region(code="SR1", name="One", organisation=org, created_at=now, updated_at=now)
    r2 = Region(code="SR2", name="Two", organisation=org, created_at=now, updated_at=now)
    alpha = Facility(code="SIG-A", name="Alpha", region=r1, created_at=now, updated_at=now)
    bravo = Facility(code="SIG-B", name="Bravo", region=r2, created_at=now, updated_at=now)
    door = Device(
        facility=alpha, code="DOOR-1", name="Door", kind="door", created_at=now, updated_at=now
    )
    db.add_all([org, r1, r2, alpha, bravo, door])
    await db.commit()
    # what the runtime seeds at start (the default rules include test_signal_missing)
    await ensure_default_policies(db, clock)
    await ensure_defaults(db, clock)
    await db.commit()
    return {"SIG-A": alpha.id, "SIG-B": bravo.id}


def monitor(app: Any, **kw: Any) -> TestSignalMonitor:
    runtime = app.state.runtime
    return TestSignalMonitor(
        app.state.sessionmaker,
        app.state.clock,
        runtime.batcher,
        minutes=kw.pop("minutes", 15),
        grace_seconds=kw.pop("grace_seconds", GRACE),
        relay_kick=runtime.kick,
    )


async def missing_alarms(sessionmaker: Any, facility_id: int | None = None) -> list[Alarm]:
    async with sessionmaker() as db:
        stmt = select(Alarm).where(Alarm.rule_key == RULE_KEY)
        if facility_id is not None:
            stmt = stmt.where(Alarm.facility_id == facility_id)
        return list((await db.scalars(stmt.order_by(Alarm.id))).all())


async def test_signals_go_through_ingest_and_are_recorded_when_processed(
    running_app, sessionmaker, clock, sites
) -> None:  # type: ignore[no-untyped-def]
    mon = monitor(running_app)
    result = await mon.tick(clock.now())
    assert sorted(result.sent) == sorted(sites.values())
    await running_app.state.runtime.drain()

    async with sessionmaker() as db:
        events = (await db.scalars(select(Event).where(Event.type == "test.signal"))).all()
        rows = (await db.scalars(select(TestSignal))).all()
    assert {e.facility_id for e in events} == set(sites.values())
    assert all(e.source == "system" and e.sender == SENDER for e in events)
    assert len(rows) == 2
    assert all(r.processed_at is not None and r.received_at is not None for r in rows)

    # past the grace: nothing is missing, so no alarm
    clock.advance(seconds=GRACE + 5)
    result = await mon.tick(clock.now())
    assert result.raised == [] and result.sent == []  # same 15-minute slot: nothing new to send
    assert await missing_alarms(sessionmaker) == []

    # the next slot sends again (one per facility and slot)
    clock.advance(minutes=15)
    assert sorted((await mon.tick(clock.now())).sent) == sorted(sites.values())
    await running_app.state.runtime.drain()
    async with sessionmaker() as db:
        count = await db.scalar(
            select(func.count()).select_from(TestSignal).where(TestSignal.processed_at.is_(None))
        )
    assert count == 0


async def test_two_processes_store_one_signal_per_facility_and_slot(
    app, sessionmaker, clock, sites
) -> None:  # type: ignore[no-untyped-def]
    first, second = monitor(app), monitor(app)
    assert len((await first.tick(clock.now())).sent) == 2
    assert (await second.tick(clock.now())).sent == []  # duplicates of the same slot
    async with sessionmaker() as db:
        n = await db.scalar(
            select(func.count()).select_from(Event).where(Event.type == "test.signal")
        )
    assert n == 2


async def test_unprocessed_signal_raises_p3_after_grace_and_recovery_clears_it(
    app, sessionmaker, clock, sites
) -> None:  # type: ignore[no-untyped-def]
    # The runtime is not started: ingest stores the signals, but no consumer processes them.
    mon = monitor(app)
    await mon.tick(clock.now())

    clock.advance(seconds=GRACE - 1)
    assert (await mon.tick(clock.now())).raised == []  # still within the grace
    clock.advance(seconds=2)
    raised = (await mon.tick(clock.now())).raised
    assert sorted(raised) == sorted(sites.values())

    alarms = await missing_alarms(sessionmaker, sites["SIG-A"])
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm.priority == 3 and alarm.state == AlarmState.ACTIVE
    assert alarm.type == "test_signal_missing" and alarm.incident_id is not None
    async with sessionmaker() as db:
        incident = await db.get(Incident, alarm.incident_id)
        assert incident is not None and incident.priority == 3
        missing_event = await db.get(Event, alarm.event_id)
        assert missing_event is not None and missing_event.type == "test.signal_missing"

    # still missing: no second alarm
    clock.advance(seconds=30)
    assert (await mon.tick(clock.now())).raised == []
    assert len(await missing_alarms(sessionmaker, sites["SIG-A"])) == 1

    # the pipeline comes back: the relay publishes what was waiting, the consumer processes
    # the signals, and the alarms clear
    async with app.router.lifespan_context(app):
        await app.state.runtime.drain()
        for facility_id in sites.values():
            (cleared,) = await missing_alarms(sessionmaker, facility_id)
            assert cleared.state == AlarmState.CLEARED and cleared.cleared_at is not None
        # the next signal goes through; nothing is raised any more
        clock.advance(minutes=15)
        result = await mon.tick(clock.now())
        assert len(result.sent) == 2
        await app.state.runtime.drain()
        clock.advance(seconds=GRACE + 1)
        assert (await mon.tick(clock.now())).raised == []
    assert len(await missing_alarms(sessionmaker)) == 2


async def test_restart_grace_lets_the_relay_catch_up_first(app, sessionmaker, clock, sites) -> None:  # type: ignore[no-untyped-def]
    await monitor(app).tick(clock.now())  # sent, never processed
    clock.advance(minutes=10)
    restarted = monitor(app)
    assert (await restarted.tick(clock.now())).raised == []  # judged only after one grace
    clock.advance(seconds=GRACE)
    assert len((await restarted.tick(clock.now())).raised) == 2


async def test_switched_off_sends_nothing(app, sessionmaker, clock, sites) -> None:  # type: ignore[no-untyped-def]
    mon = monitor(app, minutes=0)
    assert not mon.enabled
    assert (await mon.tick(clock.now())).sent == []
    async with sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Event)) == 0


async def test_external_sender_signal_counts(
    running_app, live_client, sessionmaker, clock, sites, make_token
) -> None:  # type: ignore[no-untyped-def]
    headers = await make_token("device", facility="SIG-A", name="site-integration")
    body = {"device": "DOOR-1", "type": "test.signal", "occurred_at": clock.now().isoformat()}
    r = await live_client.post("/api/v1/events", json=body, headers=headers)
    assert r.status_code in (200, 201, 202), r.text
    await running_app.state.runtime.drain()

    viewer = await make_token("operator", facility="SIG-A")
    r = await live_client.get("/api/v1/facilities/SIG-A/test-signal", headers=viewer)
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["state"] == "ok"
    assert status["last_success"]["sender"] != SENDER
    assert status["last_success"]["processed_at"] is not None


async def test_status_api_and_scope(app, client, sessionmaker, clock, sites, make_token) -> None:  # type: ignore[no-untyped-def]
    admin = await make_token("admin", org=True)
    r = await client.get("/api/v1/facilities/SIG-A/test-signal", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "never"

    mon = monitor(app)
    await mon.tick(clock.now())
    r = await client.get("/api/v1/facilities/SIG-A/test-signal", headers=admin)
    assert r.json()["state"] == "pending" and r.json()["last_success"] is None
    clock.advance(seconds=GRACE + 1)
    await mon.tick(clock.now())
    r = await client.get("/api/v1/facilities/SIG-A/test-signal", headers=admin)
    body = r.json()
    assert body["state"] == "missing" and body["missing_alarm_id"] is not None
    assert body["latest"]["sender"] == SENDER and body["latest"]["processed_at"] is None

    # scope: a caller of the other facility is refused, an unauthenticated one too
    other = await make_token("facility_manager", facility="SIG-B")
    r = await client.get("/api/v1/facilities/SIG-A/test-signal", headers=other)
    assert r.status_code in (403, 404)
    assert "last_success" not in r.json()  # a problem document, not the status
    assert (await client.get("/api/v1/facilities/SIG-A/test-signal")).status_code == 401
    mine = await make_token("guard", facility="SIG-B")
    assert (
        await client.get("/api/v1/facilities/SIG-B/test-signal", headers=mine)
    ).status_code == 200
    r = await client.get("/api/v1/facilities/NOPE/test-signal", headers=admin)
    assert r.status_code == 404
    r = await client.get("/api/v1/facilities/bad code!/test-signal", headers=admin)
    assert r.status_code in (404, 422)


async def test_runtime_runs_the_monitor_when_enabled(settings, clock) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.app import create_app

    app = create_app(settings.model_copy(update={"test_signal_minutes": 15}), clock=clock)
    try:
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            assert runtime.test_signals.enabled
            assert "test_signals" in runtime._tasks
            assert "watchfloor.events.test_signal" in runtime.registered
    finally:
        await app.state.engine.dispose()


async def test_facility_rule_override_changes_the_priority(app, sessionmaker, clock, sites) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.alarms.models import AlarmRule

    async with sessionmaker() as db:
        now = clock.now()
        db.add(
            AlarmRule(
                facility_id=sites["SIG-A"],
                key=RULE_KEY,
                name="Test signal missing (critical site)",
                event_type="test.signal_missing",
                alarm_type="test_signal_missing",
                priority=2,
                conditions={},
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
        await db.commit()
    mon = monitor(app)
    await mon.tick(clock.now())
    clock.advance(seconds=GRACE + 1)
    await mon.tick(clock.now())
    (a,) = await missing_alarms(sessionmaker, sites["SIG-A"])
    (b,) = await missing_alarms(sessionmaker, sites["SIG-B"])
    assert (a.priority, b.priority) == (2, 3)


def test_signal_window_is_on_by_default() -> None:
    from watchfloor.config import Settings

    s = Settings()
    assert s.test_signal_minutes == 15 and s.test_signal_grace_seconds == 120
