"""Alarm rules turn events into alarms: the defaults, overrides, schedules across time zones,
count windows, attributes, and the life-safety rule that nothing suppresses a P1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alarm_site import Site, alarm_messages, count_alarms, emit, store_event
from sqlalchemy import select

from watchfloor.alarms import rules
from watchfloor.alarms.handlers import handle_message
from watchfloor.alarms.models import Alarm, AlarmRule, AlarmState
from watchfloor.alarms.service import handle_event
from watchfloor.bus import Message
from watchfloor.bus.models import OutboxMessage
from watchfloor.events.ingest import ValidatedEvent, write_events
from watchfloor.events.models import Event
from watchfloor.incidents.models import Incident
from watchfloor.sites.models import Device

# Monday 5 January 2026, 15:00 UTC = 09:00 in Chicago (HQ open), 07:00 in Los Angeles (closed)
MONDAY_OPEN_HQ = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


async def _override(db, clock, site: Site, facility: str, key: str, **values) -> AlarmRule:  # type: ignore[no-untyped-def]
    org_rule = (
        await db.scalars(
            select(AlarmRule).where(AlarmRule.key == key, AlarmRule.facility_id.is_(None))
        )
    ).one()
    fields = {
        "name": org_rule.name,
        "event_type": org_rule.event_type,
        "alarm_type": org_rule.alarm_type,
        "priority": org_rule.priority,
        "conditions": dict(org_rule.conditions),
        "enabled": True,
    } | values
    rule = AlarmRule(
        facility_id=site.facilities[facility],
        key=key,
        created_at=clock.now(),
        updated_at=clock.now(),
        **fields,
    )
    db.add(rule)
    await db.commit()
    return rule


@pytest.mark.parametrize(
    ("event_type", "device", "attributes", "priority", "alarm_type"),
    [
        ("panic.pressed", "PANIC-1", {}, 1, "panic"),
        ("duress.code", "READER-1", {}, 1, "duress"),
        ("weapon.detected", "CAM-1", {"confidence": 0.9}, 1, "weapon"),
        ("door.forced", "DOOR-1", {}, 2, "door_forced"),
        ("glass.break", "MOTION-1", {}, 2, "glass_break"),
        ("door.held_open", "DOOR-1", {"held_seconds": 90}, 3, "door_held_open"),
        ("door.tamper", "DOOR-1", {}, 3, "tamper"),
        ("device.trouble", "DOOR-1", {"condition": "low_battery"}, 3, "device_trouble"),
        ("device.offline", "DOOR-1", {}, 3, "device_offline"),
    ],
)
async def test_each_default_rule_raises_its_alarm(
    db, clock, site: Site, event_type, device, attributes, priority, alarm_type
) -> None:  # type: ignore[no-untyped-def]
    clock.set(MONDAY_OPEN_HQ)
    alarms = await emit(db, clock, site, "HQ", event_type, device, attributes=attributes)
    assert [(a.priority, a.type) for a in alarms] == [(priority, alarm_type)]
    alarm = alarms[0]
    assert alarm.state == AlarmState.ACTIVE
    assert alarm.device_id == site.devices[f"HQ/{device}"]
    assert alarm.incident_id is not None
    assert alarm.attributes.get("source") == "http"
    messages = await alarm_messages(db, "HQ", priority)
    assert len(messages) == 1
    body = messages[0].payload
    assert body["alarm_id"] == alarm.id and body["incident_id"] == alarm.incident_id
    assert body["facility_code"] == "HQ" and body["priority"] == priority
    assert body["device_code"] == device and body["incident_status"] == "new"


@pytest.mark.parametrize(
    ("event_type", "device"),
    [
        ("reader.access_denied", "READER-1"),  # needs 5 within 60 s
        ("person.detected", "CAM-1"),  # disabled by default
        ("device.heartbeat", "DOOR-1"),
        ("motion.detected", "MOTION-1"),  # inside opening hours
        ("test.signal", None),
    ],
)
async def test_events_that_raise_nothing_by_default(
    db, clock, site: Site, event_type, device
) -> None:  # type: ignore[no-untyped-def]
    clock.set(MONDAY_OPEN_HQ)
    assert await emit(db, clock, site, "HQ", event_type, device) == []
    assert await count_alarms(db) == 0
    assert await alarm_messages(db, "HQ") == []


async def test_device_restored_clears_trouble_and_offline_but_raises_nothing(
    db, clock, site: Site
) -> None:  # type: ignore[no-untyped-def]
    offline = await emit(db, clock, site, "HQ", "device.offline", "DOOR-1")
    trouble = await emit(db, clock, site, "HQ", "device.trouble", "DOOR-1")
    tamper = await emit(db, clock, site, "HQ", "door.tamper", "DOOR-1")
    other = await emit(db, clock, site, "HQ", "device.offline", "READER-1")
    clock.advance(seconds=30)
    assert await emit(db, clock, site, "HQ", "device.restored", "DOOR-1") == []
    states = {
        a.id: a.state
        for a in (await db.scalars(select(Alarm).execution_options(populate_existing=True)))
    }
    assert states[offline[0].id] == AlarmState.CLEARED
    assert states[trouble[0].id] == AlarmState.CLEARED
    assert states[tamper[0].id] == AlarmState.ACTIVE  # tamper needs a person to look
    assert states[other[0].id] == AlarmState.ACTIVE  # another device
    device = await db.get(Device, site.devices["HQ/DOOR-1"], populate_existing=True)
    assert device is not None and device.status == "online"


async def test_a_device_heard_again_clears_its_offline_alarm(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    """Ingest hears an offline device: it sets it online and writes `device.restored`, whose
    alarm handling clears the offline alarm."""
    offline = await emit(db, clock, site, "HQ", "device.offline", "READER-1")
    device = await db.get(Device, site.devices["HQ/READER-1"], populate_existing=True)
    assert device is not None and device.status == "offline"
    clock.advance(seconds=5)
    heartbeat = ValidatedEvent(
        facility_id=site.facilities["HQ"],
        facility_code="HQ",
        type="device.heartbeat",
        occurred_at=clock.now(),
        device_id=device.id,
        device_code="READER-1",
    )
    await write_events(db, clock, [heartbeat])
    await db.commit()
    restored = (await db.scalars(select(Event).where(Event.type == "device.restored"))).one()
    message = (
        await db.scalars(
            select(OutboxMessage).where(OutboxMessage.msg_id == f"event:{restored.id}")
        )
    ).one()
    await handle_event(db, clock, message.payload)
    await db.commit()
    alarm = await db.get(Alarm, offline[0].id, populate_existing=True)
    assert alarm is not None and alarm.state == AlarmState.CLEARED
    device = await db.get(Device, site.devices["HQ/READER-1"], populate_existing=True)
    assert device is not None and device.status == "online"
    assert device.last_seen_at is not None


async def test_facility_override_replaces_the_org_rule_only_there(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    clock.set(MONDAY_OPEN_HQ)
    await _override(db, clock, site, "HQ", "door_forced", enabled=False)
    await _override(db, clock, site, "LAX", "glass_break", priority=1)
    assert await emit(db, clock, site, "HQ", "door.forced", "DOOR-1") == []
    [glass] = await emit(db, clock, site, "LAX", "glass.break", "MOTION-9")
    assert glass.priority == 1
    [glass_hq] = await emit(db, clock, site, "HQ", "glass.break", "MOTION-1")
    assert glass_hq.priority == 2
    keys = {r.key for r in await rules.effective_rules(db, site.facilities["HQ"])}
    assert "door_forced" not in keys and "panic" in keys and "person_detected" not in keys


@pytest.mark.parametrize(
    ("when_utc", "hq_alarm", "lax_alarm"),
    [
        # Monday 10:00 UTC: 04:00 in Chicago, 02:00 in Los Angeles: both closed
        (datetime(2026, 1, 5, 10, 0, tzinfo=UTC), True, True),
        # Monday 15:00 UTC: 09:00 Chicago (open), 07:00 Los Angeles (closed)
        (datetime(2026, 1, 5, 15, 0, tzinfo=UTC), False, True),
        # Monday 17:00 UTC: 11:00 Chicago, 09:00 Los Angeles: both open
        (datetime(2026, 1, 5, 17, 0, tzinfo=UTC), False, False),
        # Tuesday 01:30 UTC: Monday 19:30 in Chicago (closed), 17:30 in Los Angeles (open)
        (datetime(2026, 1, 6, 1, 30, tzinfo=UTC), True, False),
        # Saturday 18:00 UTC: noon in Chicago but HQ is closed on Saturdays; LA open every day
        (datetime(2026, 1, 10, 18, 0, tzinfo=UTC), True, False),
        # July (daylight saving): 14:30 UTC = 09:30 CDT (open) and 07:30 PDT (closed)
        (datetime(2026, 7, 6, 14, 30, tzinfo=UTC), False, True),
    ],
)
async def test_motion_after_hours_uses_each_facilitys_own_time_zone(
    db, clock, site: Site, when_utc, hq_alarm, lax_alarm
) -> None:  # type: ignore[no-untyped-def]
    clock.set(when_utc)
    hq = await emit(db, clock, site, "HQ", "motion.detected", "MOTION-1")
    lax = await emit(db, clock, site, "LAX", "motion.detected", "MOTION-9")
    assert bool(hq) is hq_alarm
    assert bool(lax) is lax_alarm
    for alarm in hq + lax:
        assert (alarm.priority, alarm.type) == (2, "intrusion")


async def test_schedule_uses_when_the_event_happened_not_when_it_arrived(
    db, clock, site: Site
) -> None:  # type: ignore[no-untyped-def]
    clock.set(MONDAY_OPEN_HQ)  # arrives while open ...
    night = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # ... but happened at 03:00 Chicago
    assert await emit(db, clock, site, "HQ", "motion.detected", "MOTION-1", occurred_at=night)


def test_opening_hours_edge_cases() -> None:
    hours = {"mon": ["22:00", "06:00"], "tue": ["08:00", "24:00"], "wed": None}
    at = lambda d, h, m=0: datetime(2026, 1, d, h, m, tzinfo=UTC)  # noqa: E731  5 Jan = Monday
    assert rules.is_open(hours, "UTC", at(5, 23))  # Monday night shift
    assert rules.is_open(hours, "UTC", at(6, 5, 59))  # runs past midnight into Tuesday
    assert not rules.is_open(hours, "UTC", at(6, 6))  # closes at 06:00
    assert not rules.is_open(hours, "UTC", at(5, 21, 59))
    assert rules.is_open(hours, "UTC", at(6, 23, 59))  # "24:00" = until midnight
    assert not rules.is_open(hours, "UTC", at(7, 0, 30))  # Wednesday closed
    assert rules.is_open({}, "UTC", at(7, 3))  # no hours: open around the clock
    assert not rules.is_open({"mon": None}, "Not/AZone", at(5, 12))  # bad zone: UTC


async def test_count_window_raises_on_the_fifth_denial_once(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    for _ in range(4):
        assert await emit(db, clock, site, "HQ", "reader.access_denied", "READER-1") == []
        clock.advance(seconds=10)
    # another reader's denials count separately
    assert await emit(db, clock, site, "HQ", "reader.access_denied", "READER-2") == []
    [alarm] = await emit(db, clock, site, "HQ", "reader.access_denied", "READER-1")
    assert (alarm.priority, alarm.type, alarm.rule_key) == (
        3,
        "access_denied",
        "access_denied_repeated",
    )
    # more denials within the window do not raise it again
    clock.advance(seconds=5)
    assert await emit(db, clock, site, "HQ", "reader.access_denied", "READER-1") == []
    # a fresh burst after the window raises a new one
    clock.advance(seconds=120)
    got = []
    for _ in range(5):
        got += await emit(db, clock, site, "HQ", "reader.access_denied", "READER-1")
        clock.advance(seconds=1)
    assert len(got) == 1


async def test_denials_spread_wider_than_the_window_raise_nothing(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    for _ in range(8):
        assert await emit(db, clock, site, "HQ", "reader.access_denied", "READER-1") == []
        clock.advance(seconds=16)  # never 5 within 60 s


async def test_p1_ignores_count_windows(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    await _override(db, clock, site, "HQ", "panic", conditions={"count": 3, "window_seconds": 60})
    for _ in range(3):
        assert len(await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")) == 1


async def test_ten_panics_in_a_second_make_ten_alarms_in_one_incident(
    db, clock, site: Site
) -> None:  # type: ignore[no-untyped-def]
    raised = []
    for _ in range(10):
        raised += await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
        clock.advance(seconds=0.1)
    assert len(raised) == 10
    assert {a.priority for a in raised} == {1}
    incidents = (await db.scalars(select(Incident))).all()
    assert len(incidents) == 1
    assert incidents[0].alarm_count == 10 and incidents[0].priority == 1
    messages = await alarm_messages(db, "HQ", 1)
    assert sorted(m.payload["alarm_id"] for m in messages) == sorted(a.id for a in raised)


async def test_attribute_thresholds(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    await _override(
        db, clock, site, "HQ", "person_detected",
        enabled=True, conditions={"attributes": {"confidence_min": 0.8, "camera_zone": "vault"}},
    )  # fmt: skip

    def emit_person(attrs):
        return emit(db, clock, site, "HQ", "person.detected", "CAM-1", attributes=attrs)

    assert await emit_person({"confidence": 0.5, "camera_zone": "vault"}) == []
    assert await emit_person({"confidence": 0.95, "camera_zone": "lobby"}) == []
    assert await emit_person({"camera_zone": "vault"}) == []  # missing attribute fails
    [alarm] = await emit_person({"confidence": 0.95, "camera_zone": "vault"})
    assert alarm.priority == 4


async def test_zone_and_zone_kind_conditions(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    await _override(db, clock, site, "HQ", "door_held_open", conditions={"zones": ["SECURE"]})
    await _override(db, clock, site, "HQ", "door_tamper", conditions={"zone_kinds": ["perimeter"]})
    assert await emit(db, clock, site, "HQ", "door.held_open", "DOOR-1") == []  # lobby
    assert await emit(db, clock, site, "HQ", "door.held_open", "READER-2")  # secure zone
    assert await emit(db, clock, site, "HQ", "door.tamper", "DOOR-1") == []
    assert await emit(db, clock, site, "HQ", "door.tamper", "MOTION-1")  # perimeter zone


async def test_a_redelivered_event_message_raises_no_second_alarm(
    db, clock, site: Site, sessionmaker
) -> None:  # type: ignore[no-untyped-def]
    payload = await store_event(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    await db.commit()
    msg = Message(subject="event.HQ.panic_pressed", data=payload, msg_id="m-1")
    assert await handle_message(sessionmaker, clock, msg) == 1
    assert await handle_message(sessionmaker, clock, msg) == 0  # redelivery: skipped
    # even a new message id for the same event does not raise it twice
    again = Message(subject=msg.subject, data=payload, msg_id="m-2")
    assert await handle_message(sessionmaker, clock, again) == 0
    assert await count_alarms(db) == 1
    assert len(await alarm_messages(db, "HQ", 1)) == 1


async def test_an_event_that_raises_nothing_takes_no_write(
    db, clock, site: Site, sessionmaker
) -> None:  # type: ignore[no-untyped-def]
    """Motion in opening hours raises nothing: the handler writes no dedupe record (repeating
    the evaluation is harmless) and a redelivery still raises nothing; after hours the same
    event raises its alarm once and is recorded as handled."""
    from watchfloor.bus.models import ProcessedMessage

    clock.set(MONDAY_OPEN_HQ)
    payload = await store_event(db, clock, site, "HQ", "motion.detected", "MOTION-1")
    await db.commit()
    msg = Message(subject="event.HQ.motion_detected", data=payload, msg_id="m-open")
    assert await handle_message(sessionmaker, clock, msg) == 0
    assert await handle_message(sessionmaker, clock, msg) == 0
    assert (await db.scalars(select(ProcessedMessage))).all() == []
    clock.set(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))  # 04:00 in Chicago: closed
    payload = await store_event(db, clock, site, "HQ", "motion.detected", "MOTION-1")
    await db.commit()
    night = Message(subject="event.HQ.motion_detected", data=payload, msg_id="m-night")
    assert await handle_message(sessionmaker, clock, night) == 1
    assert await handle_message(sessionmaker, clock, night) == 0
    handled = (await db.scalars(select(ProcessedMessage.msg_id))).all()
    assert handled == ["m-night"]


async def test_messages_naming_unknown_things_are_ignored(
    db, clock, site: Site, sessionmaker
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.alarms.service import handle_event

    assert await handle_event(db, clock, {"facility_id": 999999, "type": "panic.pressed"}) == []
    assert await handle_event(db, clock, {"type": "panic.pressed"}) == []
    # a device of another facility is not trusted; the alarm still raises at the facility
    alarms = await handle_event(
        db, clock,
        {"facility_id": site.facilities["HQ"], "type": "panic.pressed",
         "device_id": site.devices["LAX/PANIC-9"], "occurred_at": "not a time"},
    )  # fmt: skip
    assert len(alarms) == 1 and alarms[0].device_id is None


async def test_the_prefilter_drops_only_what_no_rule_can_raise(
    db, clock, site: Site, sessionmaker
) -> None:  # type: ignore[no-untyped-def]
    """Routine events no rule can raise now skip the alarm stage; anything a rule might raise
    (outside hours, a zone or count condition, a rule just added) goes through."""
    from watchfloor.alarms.handlers import RulePrefilter

    prefilter = RulePrefilter(sessionmaker)
    hq = site.facilities["HQ"]

    def msg(type_: str, when: datetime, **attrs: Any) -> dict[str, Any]:
        return {
            "facility_id": hq,
            "type": type_,
            "occurred_at": when.isoformat(),
            "attributes": attrs,
        }

    night = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # 04:00 in Chicago: closed
    assert not await prefilter.may_raise(msg("device.heartbeat", MONDAY_OPEN_HQ))
    assert not await prefilter.may_raise(msg("motion.detected", MONDAY_OPEN_HQ))
    assert await prefilter.may_raise(msg("motion.detected", night))
    assert await prefilter.may_raise(msg("reader.access_denied", MONDAY_OPEN_HQ))  # count rule
    assert await prefilter.may_raise(msg("device.offline", MONDAY_OPEN_HQ))  # bookkeeping
    # a facility rule on heartbeats, added in this process, counts at once (no waiting for TTL)
    db.add(
        AlarmRule(
            facility_id=hq,
            key="heartbeat_watch",
            name="Heartbeat watch",
            event_type="device.heartbeat",
            conditions={"attributes": {"battery_percent_max": 10}},
            alarm_type="low_battery",
            priority=3,
            enabled=True,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    await db.commit()
    assert not await prefilter.may_raise(msg("device.heartbeat", MONDAY_OPEN_HQ))
    low = msg("device.heartbeat", MONDAY_OPEN_HQ, battery_percent=5)
    assert await prefilter.may_raise(low)
