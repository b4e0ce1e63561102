"""Device supervision with a fake clock: offline, restored, per-kind intervals, restart grace."""

from __future__ import annotations

from sqlalchemy import select

from conftest import iso
from watchfloor.bus.models import OutboxMessage
from watchfloor.events.ingest import EventBatcher
from watchfloor.events.models import Event, SupervisionSetting
from watchfloor.events.supervision import Supervisor
from watchfloor.incidents.models import SchedulerBeat
from watchfloor.sites.models import Device


async def heard(client, clock, headers, device="DOOR-1"):  # type: ignore[no-untyped-def]
    body = {"device": device, "type": "device.heartbeat", "occurred_at": iso(clock.now())}
    r = await client.post("/api/v1/events", json=body, headers=headers)
    assert r.status_code == 201, r.text


def supervisor(sessionmaker, clock, **kw):  # type: ignore[no-untyped-def]
    return Supervisor(sessionmaker, clock, EventBatcher(sessionmaker, clock, max_wait_ms=0), **kw)


async def events_of(db, type_):  # type: ignore[no-untyped-def]
    db.expire_all()
    return (await db.execute(select(Event).where(Event.type == type_))).scalars().all()


async def test_silent_device_goes_offline_once_and_is_restored_when_heard(
    client, db, clock, site, device_token, sessionmaker
):
    await heard(client, clock, device_token)
    sup = supervisor(sessionmaker, clock)
    await sup.start()
    assert await sup.tick(clock.advance(seconds=199)) == []
    assert await sup.tick(clock.advance(seconds=1)) == [site.door_id]
    [offline] = await events_of(db, "device.offline")
    assert offline.device_id == site.door_id and offline.source == "system"
    assert offline.attributes["interval_seconds"] == 200
    device = await db.get(Device, site.door_id)
    assert device is not None and device.status == "offline"
    subjects = (await db.execute(select(OutboxMessage.subject))).scalars().all()
    assert "event.ALPHA.device_offline" in subjects
    # not reported again while it stays silent
    assert await sup.tick(clock.advance(seconds=500)) == []
    assert len(await events_of(db, "device.offline")) == 1
    # heard again: restored in the same transaction as the event that was heard
    await heard(client, clock, device_token)
    [restored] = await events_of(db, "device.restored")
    assert restored.device_id == site.door_id
    await db.refresh(device)
    assert device.status == "online"
    # and supervised again from then on
    assert await sup.tick(clock.advance(seconds=200)) == [site.door_id]


async def test_never_heard_devices_are_not_supervised(db, clock, site, sessionmaker):
    sup = supervisor(sessionmaker, clock)
    await sup.start()
    assert await sup.tick(clock.advance(days=3)) == []


async def test_kind_and_device_intervals(client, db, clock, site, device_token, sessionmaker):
    db.add(SupervisionSetting(kind="door", seconds=60))
    panic = await db.get(Device, site.panic_id)
    assert panic is not None
    panic.supervision_seconds = 30
    await db.commit()
    await heard(client, clock, device_token, "DOOR-1")
    await heard(client, clock, device_token, "PANIC-1")
    sup = supervisor(sessionmaker, clock)
    await sup.start()
    assert await sup.tick(clock.advance(seconds=30)) == [site.panic_id]
    assert await sup.tick(clock.advance(seconds=30)) == [site.door_id]


async def test_restart_grace_keeps_a_reboot_quiet(
    client, db, clock, site, device_token, sessionmaker
):
    await heard(client, clock, device_token, "DOOR-1")
    first = supervisor(sessionmaker, clock)
    await first.start()
    await first.tick(clock.advance(seconds=50))  # the last beat before the outage
    clock.advance(seconds=950)  # down for ~16 minutes; nobody heard anything
    second = supervisor(sessionmaker, clock)
    await second.start()
    assert await second.tick(clock.now()) == []  # no storm on restart
    assert await second.tick(clock.advance(seconds=199)) == []
    assert await second.tick(clock.advance(seconds=1)) == [site.door_id]  # really gone


async def test_device_heard_within_grace_is_not_reported(
    client, db, clock, site, device_token, sessionmaker
):
    await heard(client, clock, device_token, "DOOR-1")
    clock.advance(seconds=3600)
    sup = supervisor(sessionmaker, clock)
    await sup.start()
    clock.advance(seconds=20)
    await heard(client, clock, device_token, "DOOR-1")  # it comes back after the reboot
    assert await sup.tick(clock.advance(seconds=199)) == []  # grace over, heard 199 s ago
    assert await events_of(db, "device.offline") == []


async def test_device_already_silent_before_restart_is_reported_at_once(
    client, db, clock, site, device_token, sessionmaker
):
    await heard(client, clock, device_token, "DOOR-1")  # then the door goes silent
    clock.advance(seconds=600)
    await heard(client, clock, device_token, "PANIC-1")  # the server is still hearing others
    # The server had no supervisor running (or crashed before its tick); it restarts later.
    clock.advance(seconds=300)
    sup = supervisor(sessionmaker, clock)
    await sup.start()
    assert await sup.tick(clock.now()) == [site.door_id]  # silent past its interval before
    assert await sup.tick(clock.advance(seconds=200)) == [site.panic_id]  # after the grace
    beat = await db.get(SchedulerBeat, "supervisor")
    assert beat is not None and beat.last_beat_at == clock.now()


async def test_report_is_dropped_if_the_device_was_heard_meanwhile(
    client, db, clock, site, device_token, sessionmaker
):
    await heard(client, clock, device_token, "DOOR-1")
    sup = supervisor(sessionmaker, clock)
    await sup.start()
    now = clock.advance(seconds=300)
    async with sessionmaker() as s:
        due = await sup.overdue(s, now)
    assert [d.device_id for d in due] == [site.door_id]
    await heard(client, clock, device_token, "DOOR-1")  # heard between look-up and write
    original = sup.overdue

    async def stale(_db, _now):  # type: ignore[no-untyped-def]
        return due

    sup.overdue = stale  # type: ignore[method-assign]
    assert await sup.tick(now) == []
    sup.overdue = original  # type: ignore[method-assign]
    device = await db.get(Device, site.door_id)
    assert device is not None and device.status != "offline"
    assert await events_of(db, "device.offline") == []


async def test_supervision_settings_api(client, db, clock, site, make_token):
    admin = await make_token("admin", org=True)
    manager = await make_token("facility_manager", facility="ALPHA")
    r = await client.get("/api/v1/supervision", headers=manager)
    assert r.status_code == 200 and r.json() == {"default_seconds": 200, "kinds": {}}
    r = await client.put("/api/v1/supervision", json={"kinds": {"door": 120}}, headers=manager)
    assert r.status_code == 403
    r = await client.put(
        "/api/v1/supervision", json={"kinds": {"door": 120, "camera": 600}}, headers=admin
    )
    assert r.status_code == 200 and r.json()["kinds"] == {"door": 120, "camera": 600}
    r = await client.put("/api/v1/supervision", json={"kinds": {"door": None}}, headers=admin)
    assert r.json()["kinds"] == {"camera": 600}
    for bad in (
        {"kinds": {"door": 5}},
        {"kinds": {"toaster": 60}},
        {"kinds": {}, "x": 1},
        {"kinds": {"door": "soon"}},
    ):
        r = await client.put("/api/v1/supervision", json=bad, headers=admin)
        assert r.status_code == 422, bad
    assert (await client.get("/api/v1/supervision")).status_code == 401
