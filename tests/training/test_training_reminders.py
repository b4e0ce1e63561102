"""Reminders to managers: each facility with staff overdue or due soon gets one digest a day, sent
through the notify domain to the people there whose role is facility_manager; none when nobody is
behind; at most one per facility per local day, across a restart (a new loop) and the console
button; the daily loop waits for the configured local hour. All with the fake clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
from sqlalchemy import select

from watchfloor.clock import FakeClock
from watchfloor.notify.models import Alert, Delivery
from watchfloor.training.handlers import ReminderLoop
from watchfloor.training.models import TrainingReminder


async def _alerts(db) -> list[Alert]:  # type: ignore[no-untyped-def]
    return list((await db.execute(select(Alert).order_by(Alert.id))).scalars().all())


async def test_daily_digest_goes_to_each_facilitys_managers_once_a_day(
    sessionmaker, settings, clock: FakeClock, estate, record, db
) -> None:
    # 06:00 in New York (11:00 UTC) is before the reminder hour (07:00 local)
    clock.set(datetime(2026, 1, 5, 11, 0, tzinfo=UTC))
    loop = ReminderLoop(sessionmaker, clock, settings)
    assert await loop.tick() == []
    assert await _alerts(db) == []

    clock.set(datetime(2026, 1, 5, 12, 30, tzinfo=UTC))  # 07:30 New York, 05:30 Phoenix
    outcomes = {o.facility_code: o for o in await loop.tick()}
    assert set(outcomes) == {"NYC-FO", "BOS-FO"}  # Phoenix: not yet 07:00 there
    assert outcomes["NYC-FO"].sent and outcomes["NYC-FO"].recipients == 1
    alerts = await _alerts(db)
    assert len(alerts) == 2
    nyc = next(a for a in alerts if "New York" in a.headline)
    assert nyc.headline == "Training overdue at New York Field Office"
    assert "Gina Guard: Active-shooter response (never done)" in nyc.text
    deliveries = (
        (await db.execute(select(Delivery).where(Delivery.alert_id == nyc.id))).scalars().all()
    )
    assert {(d.recipient_name, d.address) for d in deliveries} == {
        ("Mona Manager", "n-mgr@example.org")
    }

    # a restart (a new loop) and later passes the same day send nothing more
    again = ReminderLoop(sessionmaker, clock, settings)
    clock.set(datetime(2026, 1, 5, 20, 0, tzinfo=UTC))
    assert {o.facility_code for o in await again.tick()} == {"PHX-CH"}  # 13:00 in Phoenix
    phx = (
        await db.execute(select(TrainingReminder).where(TrainingReminder.recipients == 0))
    ).scalar_one()
    assert phx.alert_id is None  # Phoenix has no security manager on record: nothing sent
    assert await again.tick() == []
    assert len(await _alerts(db)) == 2

    # the next local day: again
    clock.set(datetime(2026, 1, 6, 13, 0, tzinfo=UTC))
    assert {o.facility_code for o in await again.tick()} == {"NYC-FO", "BOS-FO"}
    assert len(await _alerts(db)) == 4


async def test_no_reminder_when_nobody_is_behind(
    sessionmaker, settings, clock: FakeClock, estate, record, db
) -> None:
    for emp in ("B-STAFF",):
        await record(emp, "ASR", date(2025, 12, 1))
    for course in ("ASR", "DEESC", "FIRSTAID", "SITAWARE", "EMERG"):
        await record("B-MGR", course, date(2025, 12, 1))
    clock.set(datetime(2026, 1, 5, 13, 0, tzinfo=UTC))
    outcomes = await ReminderLoop(sessionmaker, clock, settings).tick()
    assert "BOS-FO" not in {o.facility_code for o in outcomes}
    assert all("Boston" not in a.headline for a in await _alerts(db))


async def test_console_and_api_button_respect_once_a_day(
    client: httpx.AsyncClient, make_token, estate, db
) -> None:
    mgr = await make_token("facility_manager", facility="NYC-FO")
    r = await client.post(
        "/api/v1/training/reminders", json={"facility_code": "NYC-FO"}, headers=mgr
    )
    assert r.status_code == 200, r.text
    assert r.json()[0]["sent"] is True and r.json()[0]["recipients"] == 1
    twice = await client.post(
        "/api/v1/training/reminders", json={"facility_code": "NYC-FO"}, headers=mgr
    )
    assert twice.json()[0]["sent"] is False
    assert "already sent today" in twice.json()[0]["why"]
    page = await client.post("/training/reminders", data={"facility_code": "NYC-FO"}, headers=mgr)
    assert page.status_code == 303 and "already+sent+today" in page.headers["location"]
    # another facility's is out of scope: 404 on the API
    other = await client.post(
        "/api/v1/training/reminders", json={"facility_code": "BOS-FO"}, headers=mgr
    )
    assert other.status_code == 404
    # without a facility: every facility in scope with staff behind (only NYC here)
    everyone = await client.post("/api/v1/training/reminders", json={}, headers=mgr)
    assert [o["facility_code"] for o in everyone.json()] == ["NYC-FO"]
    assert len(await _alerts(db)) == 1
    history = (await client.get("/api/v1/training/reminders", headers=mgr)).json()
    assert [(h["facility_code"], h["trigger"]) for h in history] == [("NYC-FO", "manual")]


async def test_the_runtime_starts_and_stops_the_daily_loop(running_app) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    loop = runtime.loops["training-reminders"]
    assert isinstance(loop, ReminderLoop)
    assert loop.settings.training_reminder_hour == 7
    # leaving the lifespan (the fixture) stops it; nothing here waits for a real interval
