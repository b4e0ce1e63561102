"""The lockdown service and engine with the in-process door driver and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from lockdown_site import LockSite, open_incident
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.auth.principal import Grant, Principal
from watchfloor.auth.roles import Role, ScopeKind
from watchfloor.bus import Message
from watchfloor.bus.models import OutboxMessage
from watchfloor.events.models import Event
from watchfloor.incidents.models import TimelineEntry
from watchfloor.lockdown import service
from watchfloor.lockdown.drivers.base import DoorCommand
from watchfloor.lockdown.drivers.memory import Behaviour, MemoryDoorDriver
from watchfloor.lockdown.engine import LockdownEngine
from watchfloor.lockdown.handlers import handle_alarm
from watchfloor.lockdown.models import Lockdown, LockdownDoor, LockdownTrigger
from watchfloor.problems import Conflict, Forbidden, InvalidInput

CONTRACT_KEYS = {
    "lockdown_id",
    "facility_id",
    "facility_code",
    "facility_name",
    "zone_id",
    "zone_name",
    "exercise",
    "reason",
    "started_by",
    "started_at",
    "incident_id",
    "door_count",
}


def person(pid: int, role: Role = Role.FACILITY_MANAGER, name: str = "") -> Principal:
    return Principal(
        kind="user", id=pid, name=name or f"user{pid}", grants=(Grant(role, ScopeKind.ORG),)
    )


ALICE = person(1, name="alice")
BOB = person(2, name="bob")


async def start(
    db: Any, clock: Any, site: LockSite, code: str = "HQ", zone: str | None = None, **kw: Any
) -> Lockdown:
    target = service.Target(site.facilities[code], site.zones[f"{code}/{zone}"] if zone else None)
    result = await service.start(db, clock, ALICE, [target], **kw)
    await db.commit()
    return result.lockdowns[0]


async def doors(db: Any, lockdown_id: int) -> dict[str, LockdownDoor]:
    rows = (
        await db.scalars(
            select(LockdownDoor)
            .where(LockdownDoor.lockdown_id == lockdown_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    return {d.door_code: d for d in rows}


async def fresh(db: Any, lockdown_id: int) -> Lockdown:
    return (
        await db.execute(
            select(Lockdown)
            .where(Lockdown.id == lockdown_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def messages(db: Any, prefix: str) -> list[OutboxMessage]:
    rows = (await db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [m for m in rows if m.subject.startswith(prefix)]


async def test_every_door_of_the_facility_is_commanded_at_once_and_confirmed(
    db, clock, site, engine: LockdownEngine, driver: MemoryDoorDriver
) -> None:
    ld = await start(db, clock, site, reason="Armed person reported")
    assert ld.state == "locking" and ld.door_count == 6
    await engine.ensure([ld.id])
    await engine.wait(ld.id)

    assert (await fresh(db, ld.id)).state == "locked"
    rows = await doors(db, ld.id)
    assert set(rows) == {f"DOOR-{i}" for i in range(1, 7)}  # doors only: no reader, no camera
    assert all(d.state == "locked" and d.confirmed_at and d.attempts == 1 for d in rows.values())
    # one command carrying every door: all in flight at once
    assert [(c, {t.device_id for t in ts}) for c, ts in driver.calls] == [
        (DoorCommand.LOCK, site.door_ids("HQ"))
    ]
    target = next(t for t in driver.calls[0][1] if t.door_code == "DOOR-4")
    assert target.controller_address == "osdp://controller-2"
    assert target.facility_code == "HQ"

    started = await messages(db, "lockdown.HQ.started")
    assert len(started) == 1 and started[0].msg_id == f"lockdown-{ld.id}-started"
    data = started[0].payload
    assert set(data) == CONTRACT_KEYS
    assert data["door_count"] == 6 and data["exercise"] is False
    assert data["started_by"] == "user:alice" and data["reason"] == "Armed person reported"
    audit = (
        await db.scalars(select(AuditRecord).where(AuditRecord.action == "lockdown.start"))
    ).all()
    assert [a.target_id for a in audit] == [str(ld.id)]
    assert await db.scalar(select(Event.id).where(Event.type == "door.lock_failed")) is None


async def test_a_zone_lockdown_commands_only_that_zones_doors(
    db, clock, site, engine, driver
) -> None:
    ld = await start(db, clock, site, zone="SECURE")
    await engine.ensure([ld.id])
    await engine.wait(ld.id)
    assert set(await doors(db, ld.id)) == {"DOOR-4", "DOOR-5", "DOOR-6"}
    assert ld.zone_name == "Secure zone"
    assert (await fresh(db, ld.id)).state == "locked"


async def test_a_door_that_fails_is_retried_with_backoff_and_confirms(
    db, clock, site, engine, driver, fake_sleep
) -> None:
    door2 = site.doors["HQ/DOOR-2"].id
    driver.set_door(door2, Behaviour.FAIL, error="Door held open")
    fake_sleep.before.append(lambda: driver.set_door(door2, Behaviour.CONFIRM))
    ld = await start(db, clock, site)
    await engine.ensure([ld.id])
    await engine.wait(ld.id)

    rows = await doors(db, ld.id)
    assert rows["DOOR-2"].state == "locked" and rows["DOOR-2"].attempts == 2
    assert rows["DOOR-1"].attempts == 1
    assert fake_sleep.waits == [0.5]
    assert [len(ts) for _c, ts in driver.calls] == [6, 1]  # the retry carries only DOOR-2
    assert (await fresh(db, ld.id)).state == "locked"
    assert await db.scalar(select(Event.id).where(Event.type == "door.lock_failed")) is None


async def test_a_door_still_failing_after_every_retry_is_flagged_with_a_lock_failed_event(
    db, clock, site, engine, driver, fake_sleep
) -> None:
    incident = await open_incident(db, clock, site.facilities["HQ"])
    door3 = site.doors["HQ/DOOR-3"]
    driver.set_door(door3.id, Behaviour.FAIL, error="Lock jammed")
    ld = await start(db, clock, site, incident_id=incident.id)
    await engine.ensure([ld.id])
    await engine.wait(ld.id)

    assert fake_sleep.waits == [0.5, 1.0, 2.0]  # exponential backoff between the 4 attempts
    rows = await doors(db, ld.id)
    assert rows["DOOR-3"].state == "failed" and rows["DOOR-3"].attempts == 4
    assert rows["DOOR-3"].last_error == "Lock jammed" and rows["DOOR-3"].alarm_raised
    assert sum(d.state == "locked" for d in rows.values()) == 5
    assert (await fresh(db, ld.id)).state == "partial"

    events = (await db.scalars(select(Event).where(Event.type == "door.lock_failed"))).all()
    assert len(events) == 1
    ev = events[0]
    assert ev.device_id == door3.id and ev.zone_id == door3.zone_id and ev.source == "system"
    assert ev.attributes["lockdown_id"] == ld.id and ev.attributes["attempts"] == 4
    assert ev.attributes["reason"] == "Lock jammed" and ev.attributes["exercise"] is False
    timeline = (
        await db.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident.id))
    ).all()
    texts = [t.text for t in timeline if t.kind == "lockdown"]
    assert any("started" in t for t in texts)
    assert any("DOOR-3" in t and "did not lock" in t for t in texts)
    audit = await db.scalar(
        select(AuditRecord).where(AuditRecord.action == "lockdown.doors_failed")
    )
    assert audit is not None and audit.details["doors"] == ["DOOR-3"]

    # the operator retries: a fresh round; the door now locks; no second alarm was raised
    driver.set_door(door3.id, Behaviour.CONFIRM)
    lockdown = await service.get_lockdown(db, ld.id, lock=True)
    assert await service.retry_failed(db, clock, BOB, lockdown) == 1
    await db.commit()
    await engine.ensure([ld.id])
    await engine.wait(ld.id)
    assert (await doors(db, ld.id))["DOOR-3"].state == "locked"
    assert (await fresh(db, ld.id)).state == "locked"
    assert len((await db.scalars(select(Event).where(Event.type == "door.lock_failed"))).all()) == 1


async def test_a_controller_that_drops_off_gets_its_doors_flagged_retried_and_alarmed(
    db, clock, site, engine, driver, fake_sleep
) -> None:
    driver.set_controller("HQ", "osdp://controller-2", Behaviour.SILENT)
    ld = await start(db, clock, site)
    await engine.ensure([ld.id])
    await engine.wait(ld.id)

    rows = await doors(db, ld.id)
    failed = {c for c, d in rows.items() if d.state == "failed"}
    assert failed == {"DOOR-4", "DOOR-5", "DOOR-6"}  # controller 2's doors
    assert all("No confirmation" in rows[c].last_error and rows[c].attempts == 4 for c in failed)
    # every round after the first carried only the silent controller's doors
    assert [len(ts) for _c, ts in driver.calls] == [6, 3, 3, 3]
    events = (await db.scalars(select(Event).where(Event.type == "door.lock_failed"))).all()
    assert {e.device_id for e in events} == {site.doors[f"HQ/{c}"].id for c in failed}


async def test_one_lockdown_per_facility(db, clock, site, engine) -> None:
    await start(db, clock, site, zone="LOBBY")
    with pytest.raises(Conflict) as err:
        await start(db, clock, site)
    assert "already locked down" in err.value.detail and err.value.slug == "already-locked-down"
    await db.rollback()
    assert len((await db.scalars(select(Lockdown))).all()) == 1


async def test_a_region_lockdown_is_one_lockdown_per_facility(db, clock, site, engine) -> None:
    await start(db, clock, site, code="LAX")
    r1 = site.regions["R1"]
    facilities = [site.facilities["HQ"], site.facilities["LAX"]]
    result = await service.start(
        db, clock, ALICE, [service.Target(f) for f in facilities], region=r1, reason="Threat"
    )
    await db.commit()
    assert [ld.facility_id for ld in result.lockdowns] == [site.facilities["HQ"].id]
    assert [s["facility_code"] for s in result.skipped] == ["LAX"]
    assert result.lockdowns[0].region_id == r1.id
    await engine.ensure([ld.id for ld in result.lockdowns])
    await engine.wait()
    assert (await fresh(db, result.lockdowns[0].id)).state == "locked"
    # NYC (region R2) was not touched
    nyc = site.facilities["NYC"].id
    assert await db.scalar(select(Lockdown.id).where(Lockdown.facility_id == nyc)) is None


async def test_lift_needs_a_second_different_person(db, clock, site, engine, driver) -> None:
    ld = await start(db, clock, site)
    await engine.ensure([ld.id])
    await engine.wait(ld.id)

    lockdown = await service.get_lockdown(db, ld.id, lock=True)
    assert not await service.request_lift(db, clock, ALICE, lockdown, reason="All clear")
    await db.commit()
    assert (await fresh(db, ld.id)).state == "locked"  # still locked down
    lockdown = await service.get_lockdown(db, ld.id, lock=True)
    with pytest.raises(Conflict) as again:
        await service.request_lift(db, clock, ALICE, lockdown)
    assert again.value.slug == "lift-needs-approval"
    with pytest.raises(Forbidden):
        await service.approve_lift(db, clock, ALICE, lockdown)
    # another account with the same display name is still another person
    await service.approve_lift(db, clock, person(3, name="alice"), lockdown)
    await db.commit()
    await engine.ensure([ld.id])
    await engine.wait(ld.id)

    done = await fresh(db, ld.id)
    assert done.state == "lifted" and done.active_facility_id is None
    assert done.lifted_by == "user:alice" and done.lift_approved_by == "user:alice"
    assert all(d.state == "unlocked" for d in (await doors(db, ld.id)).values())
    assert [c for c, _t in driver.calls] == [DoorCommand.LOCK, DoorCommand.UNLOCK]
    lifted = await messages(db, "lockdown.HQ.lifted")
    assert len(lifted) == 1 and lifted[0].msg_id == f"lockdown-{ld.id}-lifted"
    assert set(lifted[0].payload) == CONTRACT_KEYS | {"lifted_by", "lifted_at"}
    actions = (await db.scalars(select(AuditRecord.action).order_by(AuditRecord.id))).all()
    assert "lockdown.lift_requested" in actions and "lockdown.lift" in actions
    # the facility can be locked down again
    assert (await start(db, clock, site)).id != ld.id


async def test_lift_without_approval_when_not_required(db, clock, site, engine) -> None:
    ld = await start(db, clock, site)
    lockdown = await service.get_lockdown(db, ld.id, lock=True)
    assert await service.request_lift(db, clock, BOB, lockdown, requires_approval=False)
    await db.commit()
    await engine.ensure([ld.id])
    await engine.wait(ld.id)
    assert (await fresh(db, ld.id)).state == "lifted"


async def test_approving_with_nothing_requested_is_refused(db, clock, site) -> None:
    ld = await start(db, clock, site)
    with pytest.raises(Conflict):
        await service.approve_lift(db, clock, BOB, ld)


async def test_a_drill_is_marked_exercise_everywhere(
    db, clock, site, engine, driver, fake_sleep
) -> None:
    incident = await open_incident(db, clock, site.facilities["HQ"])
    driver.set_door(site.doors["HQ/DOOR-1"].id, Behaviour.FAIL, error="Stuck")
    ld = await start(db, clock, site, exercise=True, incident_id=incident.id)
    await engine.ensure([ld.id])
    await engine.wait(ld.id)
    assert (await messages(db, "lockdown.HQ.started"))[0].payload["exercise"] is True
    event = await db.scalar(select(Event).where(Event.type == "door.lock_failed"))
    assert event is not None and event.attributes["exercise"] is True
    texts = (
        await db.scalars(
            select(TimelineEntry.text).where(
                TimelineEntry.incident_id == incident.id, TimelineEntry.kind == "lockdown"
            )
        )
    ).all()
    assert texts and all(t.startswith("EXERCISE: ") for t in texts)
    audit = await db.scalar(select(AuditRecord).where(AuditRecord.action == "lockdown.start"))
    assert audit is not None and audit.details["exercise"] is True
    assert service.summary(await fresh(db, ld.id), None, {})["banner"] == "EXERCISE"


async def test_an_incident_of_another_facility_is_refused(db, clock, site) -> None:
    incident = await open_incident(db, clock, site.facilities["LAX"])
    with pytest.raises(InvalidInput):
        await start(db, clock, site, incident_id=incident.id)


async def test_after_a_restart_a_lockdown_still_locking_resumes(
    db, clock, site, sessionmaker, batcher, fake_sleep
) -> None:
    ld = await start(db, clock, site)
    # the process that started it confirmed two doors, then died
    rows = await doors(db, ld.id)
    for code in ("DOOR-1", "DOOR-2"):
        rows[code].state, rows[code].attempts = "locked", 1
    await db.commit()

    driver = MemoryDoorDriver(timeout=0.05)
    engine = LockdownEngine(
        sessionmaker, clock, driver, submit_events=batcher.submit, sleep=fake_sleep
    )
    try:
        assert await engine.resume() == [ld.id]
        await engine.wait()
    finally:
        await engine.close()
    assert (await fresh(db, ld.id)).state == "locked"
    assert [len(ts) for _c, ts in driver.calls] == [4]  # only the doors never confirmed


async def test_a_weapon_alarm_locks_down_its_zone_when_a_trigger_says_so(
    db, clock, site, sessionmaker, engine
) -> None:
    hq = site.facilities["HQ"]
    incident = await open_incident(db, clock, hq)
    message = Message(
        subject="alarm.HQ.p1",
        data={
            "alarm_id": 7,
            "incident_id": incident.id,
            "facility_id": hq.id,
            "facility_code": "HQ",
            "zone_code": "SECURE",
            "type": "weapon",
            "title": "Weapon detected — Secure zone",
            "priority": 1,
        },
        msg_id="alarm-7",
    )
    assert await handle_alarm(sessionmaker, clock, message) == []  # no trigger configured
    await service.set_trigger(
        db, clock, ALICE, facility=None, alarm_type="weapon", scope="zone", enabled=True
    )
    await db.commit()
    again = Message(message.subject, message.data, "alarm-8")
    started = await handle_alarm(sessionmaker, clock, again)
    assert len(started) == 1
    assert await handle_alarm(sessionmaker, clock, again) == []  # a redelivery changes nothing
    await engine.ensure(started)
    await engine.wait()
    ld = await fresh(db, started[0])
    assert ld.source == "rule" and ld.incident_id == incident.id
    assert ld.zone_id == site.zones["HQ/SECURE"].id and ld.state == "locked"
    assert ld.started_by == "system:rule:weapon"

    # a facility's own trigger switched off overrides the organisation's
    await service.set_trigger(
        db,
        clock,
        ALICE,
        facility=site.facilities["LAX"],
        alarm_type="weapon",
        scope="zone",
        enabled=False,
    )
    await db.commit()
    lax = Message(
        "alarm.LAX.p1", {**message.data, "facility_id": site.facilities["LAX"].id}, "alarm-9"
    )
    assert await handle_alarm(sessionmaker, clock, lax) == []
    assert len((await db.scalars(select(LockdownTrigger))).all()) == 2


async def test_a_lockdown_of_a_group_finishes_on_its_own_and_can_be_taken_up_again(
    db, clock, site, engine, driver, fake_sleep, sessionmaker
) -> None:
    """A region's lockdowns share one task. LAX (every door confirmed) is locked while HQ's
    door is still being retried; a door of LAX commanded again meanwhile (an operator's retry)
    is taken up by the running task, not left behind."""
    driver.set_door(site.doors["HQ/DOOR-1"].id, Behaviour.FAIL, error="Jammed")
    facilities = [site.facilities["HQ"], site.facilities["LAX"]]
    result = await service.start(
        db, clock, ALICE, [service.Target(f) for f in facilities], region=site.regions["R1"]
    )
    await db.commit()
    hq, lax = result.lockdowns
    seen: list[str] = []

    async def operator_retries_a_lax_door() -> None:
        async with sessionmaker() as other:
            seen.append((await fresh(other, lax.id)).state)
            door = (await doors(other, lax.id))["DOOR-2"]
            door.state, door.attempts = "commanded", 0
            (await fresh(other, lax.id)).state = "locking"
            await other.commit()
        await engine.ensure([lax.id])

    fake_sleep.before.append(operator_retries_a_lax_door)
    await engine.ensure([hq.id, lax.id])
    await engine.wait()

    assert seen == ["locked"]  # LAX was done after the first round, while HQ was retried
    assert (await fresh(db, lax.id)).state == "locked"
    assert (await doors(db, lax.id))["DOOR-2"].state == "locked"
    assert (await fresh(db, hq.id)).state == "partial"
    # the retry came in during the wait before round 2 (whose doors were already read): round 3
    # carried HQ's failing door and LAX's door commanded again
    assert [len(ts) for _c, ts in driver.calls] == [9, 1, 2, 1]
