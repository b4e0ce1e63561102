"""The runtime: started and stopped by the app's lifespan, wires ingest → bus → alarms →
incidents, keeps its loops alive, and publishes what a previous process left behind."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from watchfloor import runtime as runtime_module
from watchfloor.alarms.models import Alarm
from watchfloor.bus import outbox
from watchfloor.bus.memory import MemoryBus
from watchfloor.bus.models import OutboxMessage
from watchfloor.config import Settings
from watchfloor.events.models import Event
from watchfloor.incidents.models import EscalationPolicy, EscalationTimer, Incident
from watchfloor.runtime import Runtime, make_bus
from watchfloor.sites.models import Device, Facility, Organisation, Region


async def _seed(db: Any, clock: Any) -> None:
    now = clock.now()
    org = Organisation(code="RT", name="Runtime Test", created_at=now, updated_at=now)
    region = Region(code="RT-R", name="Region", organisation=org, created_at=now, updated_at=now)
    facility = Facility(code="RT-HQ", name="HQ", region=region, created_at=now, updated_at=now)
    button = Device(
        facility=facility,
        code="PANIC-1",
        name="Desk panic button",
        kind="panic_button",
        created_at=now,
        updated_at=now,
    )
    db.add_all([org, region, facility, button])
    await db.commit()


async def _count(db: Any, model: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_lifespan_starts_and_stops_the_runtime(running_app: Any, db: Any) -> None:
    runtime: Runtime = running_app.state.runtime
    assert runtime.started
    assert "watchfloor.alarms.handlers" in runtime.registered
    assert "watchfloor.web.live" in runtime.registered
    assert runtime.broadcaster is not None
    assert {"relay", "escalation", "supervisor"} <= set(runtime._tasks)
    assert all(not t.done() for t in runtime._tasks.values())
    assert await _count(db, EscalationPolicy) > 0  # defaults seeded at start


async def test_a_panic_posted_over_http_becomes_an_escalating_incident(
    running_app: Any, live_client: httpx.AsyncClient, db: Any, clock: Any, make_token: Any
) -> None:
    await _seed(db, clock)
    headers = await make_token("device", facility="RT-HQ")
    response = await live_client.post(
        "/api/v1/events",
        json={
            "device": "PANIC-1",
            "type": "panic.pressed",
            "occurred_at": clock.now().isoformat(),
            "idempotency_key": "press-1",
        },
        headers=headers,
    )
    assert response.status_code in (200, 201, 202), response.text
    await running_app.state.runtime.drain()
    db.expire_all()
    alarm = (await db.execute(select(Alarm))).scalar_one()
    assert alarm.priority == 1
    incident = await db.get(Incident, alarm.incident_id)
    assert incident is not None
    timers = (
        (
            await db.execute(
                select(EscalationTimer).where(EscalationTimer.incident_id == incident.id)
            )
        )
        .scalars()
        .all()
    )
    assert timers, "a P1 incident escalates until someone acknowledges it"
    unpublished = await db.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
    )
    assert unpublished == 0
    assert await _count(db, Event) == 1


async def test_rows_left_unpublished_are_published_at_start(
    app: Any, sessionmaker: Any, clock: Any
) -> None:
    async with sessionmaker() as db:
        outbox.add(db, "notify.request", {"left": "by a crashed process"}, clock=clock)
        await db.commit()
    runtime: Runtime = app.state.runtime
    got: list[str] = []
    arrived = asyncio.Event()

    async def notify_worker(message: Any) -> None:
        got.append(message.data["left"])
        arrived.set()

    async with app.router.lifespan_context(app):
        await runtime.bus.subscribe("notify.>", "notify-test", notify_worker)
        runtime.kick()
        await asyncio.wait_for(arrived.wait(), 10)
        await runtime.drain()
    assert got == ["by a crashed process"]
    assert not runtime.started


async def test_a_crashing_loop_is_logged_and_restarted(
    app: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "RESTART_DELAY_SECONDS", 0)
    runtime: Runtime = app.state.runtime
    calls = 0
    second_run = asyncio.Event()

    async def flaky_loop() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        second_run.set()
        await asyncio.Event().wait()

    runtime._spawn("flaky", flaky_loop)
    await asyncio.wait_for(second_run.wait(), 5)
    assert calls == 2
    assert "background loop flaky crashed" in caplog.text
    await runtime._stop_loop("flaky", None, grace=0)


def test_bus_is_chosen_by_url(tmp_path: Any) -> None:
    assert isinstance(make_bus(Settings(var_dir=tmp_path, bus_url="")), MemoryBus)
    from watchfloor.bus.nats import NatsBus

    nats_bus = make_bus(
        Settings(var_dir=tmp_path, bus_url="nats://127.0.0.1:4222", bus_stream="S", bus_prefix="p.")
    )
    assert isinstance(nats_bus, NatsBus)
    # every family of subjects the domains publish is carried by the stream, under the prefix
    families = ("event", "alarm", "cue", "incident", "notify", "lockdown", "rollcall")
    assert sorted(nats_bus.stream_config().subjects) == sorted(f"p.{f}.>" for f in families)
    with pytest.raises(ValueError, match="WATCHFLOOR_BUS_URL"):
        make_bus(Settings(var_dir=tmp_path, bus_url="amqp://elsewhere"))
