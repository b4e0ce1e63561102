"""Incidents: correlation of alarms, priority, re-opening for P1, the lifecycle, dispatch and
response times, cancelled-by-sender alarms, and the response-time report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alarm_site import Site, emit
from sqlalchemy import select

from watchfloor.alarms.models import Alarm, AlarmState
from watchfloor.alarms.service import cancel_by_sender
from watchfloor.incidents import reports
from watchfloor.incidents import service as incidents
from watchfloor.incidents.escalation import pending_timers
from watchfloor.incidents.models import Incident, TimelineEntry, UnitDispatch
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.sites.models import Facility

OPERATOR = "user:olga"


async def _incident(db, incident_id: int) -> Incident:  # type: ignore[no-untyped-def]
    return await incidents.get_incident(db, incident_id, lock=True)


async def _all_incidents(db) -> list[Incident]:  # type: ignore[no-untyped-def]
    rows = await db.scalars(
        select(Incident).order_by(Incident.id).execution_options(populate_existing=True)
    )
    return list(rows.all())


async def _timeline(db, incident_id: int) -> list[TimelineEntry]:  # type: ignore[no-untyped-def]
    rows = await db.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident_id)
        .order_by(TimelineEntry.id)
    )
    return list(rows.all())


async def test_correlation_window_boundaries(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    [first] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    clock.advance(seconds=600)  # exactly at the window's edge: folds
    [second] = await emit(db, clock, site, "HQ", "door.held_open", "DOOR-1")
    assert second.incident_id == first.incident_id
    clock.advance(seconds=600.001)  # just past the window since the last alarm: a new incident
    [third] = await emit(db, clock, site, "HQ", "door.tamper", "DOOR-1")
    assert third.incident_id != first.incident_id
    # another facility never folds into HQ's incident
    [lax] = await emit(db, clock, site, "LAX", "panic.pressed", "PANIC-9")
    assert lax.incident_id not in (first.incident_id, third.incident_id)
    rows = await _all_incidents(db)
    assert [(i.alarm_count, i.priority) for i in rows] == [(2, 2), (1, 3), (1, 1)]


async def test_configured_window_and_closed_incidents(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    from alarm_site import store_event

    from watchfloor.alarms.service import handle_event

    payload = await store_event(db, clock, site, "HQ", "door.forced", "DOOR-1")
    [a] = await handle_event(db, clock, payload, correlation_window_seconds=30)
    await db.commit()
    clock.advance(seconds=31)
    payload = await store_event(db, clock, site, "HQ", "door.forced", "DOOR-1")
    [b] = await handle_event(db, clock, payload, correlation_window_seconds=30)
    await db.commit()
    assert a.incident_id != b.incident_id
    await incidents.close(db, clock, OPERATOR, await _incident(db, b.incident_id), "real")
    await db.commit()
    [c] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    # a closed incident never takes new alarms: this one folds into the older open incident
    assert c.incident_id == a.incident_id


async def test_a_more_urgent_alarm_raises_the_priority_and_restarts_escalation(
    db, clock, site: Site
) -> None:  # type: ignore[no-untyped-def]
    [trouble] = await emit(db, clock, site, "HQ", "door.tamper", "DOOR-1")
    incident = await _incident(db, trouble.incident_id)
    assert incident.priority == 3 and incident.escalation["priority"] == 3
    clock.advance(seconds=20)
    [forced] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    incident = await _incident(db, trouble.incident_id)
    assert forced.incident_id == incident.id
    assert incident.priority == 2 and incident.title.startswith("Door forced")
    assert incident.escalation["priority"] == 2  # the P2 chain now runs
    timers = await pending_timers(db, incident.id)
    assert len(timers) == 1
    texts = [t.text for t in await _timeline(db, incident.id)]
    assert "Priority raised from P3 to P2" in texts
    # a less urgent one folds in without lowering anything
    [held] = await emit(db, clock, site, "HQ", "door.held_open", "DOOR-1")
    incident = await _incident(db, trouble.incident_id)
    assert held.incident_id == incident.id and incident.priority == 2


async def test_a_p1_reopens_an_acknowledged_incident_for_attention(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    [forced] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    incident = await _incident(db, forced.incident_id)
    clock.advance(seconds=10)
    await incidents.acknowledge(db, clock, OPERATOR, incident)
    clock.advance(seconds=10)
    await incidents.dispatch(db, clock, OPERATOR, incident, ["GUARDS"])
    await db.commit()
    assert await pending_timers(db, incident.id) == []
    clock.advance(seconds=60)
    [panic] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    incident = await _incident(db, forced.incident_id)
    assert panic.incident_id == incident.id
    assert incident.status == "new" and incident.priority == 1
    assert incident.acknowledged_at is None
    assert incident.escalation["priority"] == 1
    assert len(await pending_timers(db, incident.id)) == 1  # the P1 chain runs again
    # acknowledging returns it to where it was: units are still dispatched
    clock.advance(seconds=7)
    await incidents.acknowledge(db, clock, OPERATOR, incident)
    await db.commit()
    assert incident.status == "dispatched"
    assert incidents.incident_metrics(incident)["acknowledge_seconds"] == 7.0
    # a second P1 into the (acknowledged) P1 incident alerts again too
    clock.advance(seconds=30)
    [again] = await emit(db, clock, site, "HQ", "duress.code", "READER-1")
    incident = await _incident(db, forced.incident_id)
    assert again.incident_id == incident.id and incident.status == "new"
    assert len(await pending_timers(db, incident.id)) == 1


async def test_lifecycle_rules(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    [alarm] = await emit(db, clock, site, "HQ", "glass.break", "MOTION-1")
    incident = await _incident(db, alarm.incident_id)
    clock.advance(seconds=5)
    # containing a new incident acknowledges it first
    await incidents.contain(db, clock, OPERATOR, incident)
    assert incident.status == "contained" and incident.acknowledged_by == OPERATOR
    with pytest.raises(Conflict):
        await incidents.acknowledge(db, clock, OPERATOR, incident)
    with pytest.raises(Conflict):
        await incidents.contain(db, clock, OPERATOR, incident)
    # dispatching after containment keeps it contained (no going back)
    await incidents.dispatch(db, clock, OPERATOR, incident, ["POLICE"])
    assert incident.status == "contained"
    with pytest.raises(InvalidInput):
        await incidents.close(db, clock, OPERATOR, incident, "false_alarm", "  ")
    with pytest.raises(InvalidInput):
        await incidents.close(db, clock, OPERATOR, incident, "maybe")
    await incidents.close(db, clock, OPERATOR, incident, "false_alarm", "cleaner bumped it")
    await db.commit()
    assert incident.status == "closed" and incident.disposition == "false_alarm"
    assert incident.disposition_cause == "cleaner bumped it"
    for action in (incidents.acknowledge, incidents.contain):
        with pytest.raises(Conflict):
            await action(db, clock, OPERATOR, incident)
    with pytest.raises(Conflict):
        await incidents.close(db, clock, OPERATOR, incident, "real")
    with pytest.raises(Conflict):
        await incidents.dispatch(db, clock, OPERATOR, incident, ["GUARDS"])
    await incidents.add_note(db, clock, OPERATOR, incident, "After-action: replace sensor")
    await db.commit()
    alarm_row = await db.get(Alarm, alarm.id, populate_existing=True)
    assert alarm_row is not None and alarm_row.state == AlarmState.RESOLVED
    [row] = (await db.scalars(select(UnitDispatch))).all()
    assert row.cleared_at is not None
    texts = [t.text for t in await _timeline(db, incident.id)]
    assert texts[0].startswith("Incident opened: P2")
    assert "Acknowledged (by containing)" in texts and "Contained" in texts
    assert "Closed: false alarm (cleaner bumped it)" in texts
    assert texts[-1] == "After-action: replace sensor"
    assert await pending_timers(db, incident.id) == []


async def test_dispatch_and_response_times(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    [alarm] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    incident = await _incident(db, alarm.incident_id)
    clock.advance(seconds=12)
    await incidents.acknowledge(db, clock, OPERATOR, incident)
    clock.advance(seconds=30)
    await incidents.dispatch(db, clock, OPERATOR, incident, ["POLICE", "GUARDS", "POLICE"])
    assert incident.status == "dispatched"
    with pytest.raises(Conflict):
        await incidents.dispatch(db, clock, OPERATOR, incident, ["GUARDS"])
    with pytest.raises(InvalidInput):
        await incidents.dispatch(db, clock, OPERATOR, incident, ["LAPD"])  # another facility's
    clock.advance(seconds=20)
    await incidents.unit_en_route(db, clock, OPERATOR, incident, "POLICE")
    with pytest.raises(Conflict):
        await incidents.unit_en_route(db, clock, OPERATOR, incident, "POLICE")
    clock.advance(seconds=60)
    await incidents.unit_on_scene(db, clock, OPERATOR, incident, "GUARDS")
    clock.advance(seconds=200)
    await incidents.unit_on_scene(db, clock, OPERATOR, incident, "POLICE")
    with pytest.raises(Conflict):
        await incidents.unit_on_scene(db, clock, OPERATOR, incident, "POLICE")
    await db.commit()
    assert incident.status == "on_scene"
    detail = await incidents.incident_detail(db, incident)
    assert detail["metrics"]["acknowledge_seconds"] == 12.0
    assert detail["metrics"]["dispatch_seconds"] == 42.0
    assert detail["metrics"]["on_scene_seconds"] == 122.0  # the first unit on scene
    units = {d["unit_code"]: d for d in detail["dispatches"]}
    assert units["POLICE"]["metrics"] == {
        "en_route_seconds": 20.0,
        "on_scene_seconds": 280.0,
        "on_scene_since_incident_seconds": 322.0,
    }
    assert units["GUARDS"]["metrics"]["en_route_seconds"] is None
    assert units["GUARDS"]["metrics"]["on_scene_seconds"] == 80.0
    # each dispatch wrote a notification request for its unit through the outbox
    from watchfloor.bus.models import OutboxMessage

    notes = (
        await db.scalars(select(OutboxMessage).where(OutboxMessage.subject == "notify.request"))
    ).all()
    assert sorted(m.payload["target"] for m in notes if m.payload.get("unit_code")) == [
        "unit:GUARDS",
        "unit:POLICE",
    ]


async def test_unit_actions_need_a_dispatched_unit(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    [alarm] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    incident = await _incident(db, alarm.incident_id)
    with pytest.raises(NotFound):
        await incidents.unit_en_route(db, clock, OPERATOR, incident, "POLICE")
    with pytest.raises(NotFound):
        await incidents.unit_on_scene(db, clock, OPERATOR, incident, "NOPE")


async def test_cancelled_by_sender_needs_the_operators_confirmation(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    [panic] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    assert panic.event_id is not None
    clock.advance(seconds=10)
    [cancelled] = await cancel_by_sender(db, clock, "user:staff", event_id=panic.event_id)
    await db.commit()
    incident = await _incident(db, panic.incident_id)
    assert cancelled.state == AlarmState.CANCELLED_BY_SENDER
    assert incident.status == "new"  # still on the operator's queue
    await incidents.confirm_cancel(db, clock, OPERATOR, incident)
    await db.commit()
    assert incident.status == "closed" and incident.disposition == "false_alarm"
    assert incident.disposition_cause == "cancelled by sender"
    with pytest.raises(Conflict):
        await incidents.confirm_cancel(db, clock, OPERATOR, incident)


async def test_confirming_a_cancel_keeps_an_incident_with_other_alarms_open(
    db, clock, site: Site
) -> None:  # type: ignore[no-untyped-def]
    [panic] = await emit(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    [forced] = await emit(db, clock, site, "HQ", "door.forced", "DOOR-1")
    assert panic.event_id is not None
    await cancel_by_sender(db, clock, "user:staff", event_id=panic.event_id)
    await db.commit()
    incident = await _incident(db, panic.incident_id)
    with pytest.raises(NotFound):
        await _incident(db, 10**9)
    await incidents.confirm_cancel(db, clock, OPERATOR, incident)
    await db.commit()
    assert incident.status == "new"
    states = {
        a.id: a.state
        for a in (await db.scalars(select(Alarm).execution_options(populate_existing=True)))
    }
    assert states == {panic.id: AlarmState.RESOLVED, forced.id: AlarmState.ACTIVE}


async def _incident_at(db, clock, site, facility, priority_event, device, ack_after):  # type: ignore[no-untyped-def]
    [alarm] = await emit(db, clock, site, facility, priority_event, device)
    incident = await _incident(db, alarm.incident_id)
    if ack_after is not None:
        clock.advance(seconds=ack_after)
        await incidents.acknowledge(db, clock, OPERATOR, incident)
    await db.commit()
    clock.advance(seconds=3600)  # past the correlation window: the next one is a new incident
    return incident


async def test_response_time_report_numbers(db, clock, site: Site) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    # HQ P1: acknowledged in 10 s (met), 20 s (missed), 5 s (met); one test incident (left out)
    for ack in (10, 20, 5):
        await _incident_at(db, clock, site, "HQ", "panic.pressed", "PANIC-1", ack)
    test = await _incident_at(db, clock, site, "HQ", "panic.pressed", "PANIC-1", 1)
    await incidents.close(db, clock, OPERATOR, await _incident(db, test.id), "test")
    # LAX P1: 12 s (met); a P1 still unacknowledged after an hour (missed)
    await _incident_at(db, clock, site, "LAX", "panic.pressed", "PANIC-9", 12)
    await _incident_at(db, clock, site, "LAX", "panic.pressed", "PANIC-9", None)
    # HQ P2 dispatched after 100 s (P2 dispatch target 300 s: met)
    hq2 = await _incident_at(db, clock, site, "HQ", "door.forced", "DOOR-1", 30)
    incident = await _incident(db, hq2.id)
    await db.commit()
    # a P1 opened just now and not yet acknowledged is pending, not missed
    [pending] = await emit(db, clock, site, "LAX", "panic.pressed", "PANIC-9")
    clock.advance(seconds=5)
    await db.commit()
    # dispatch of the P2 after the fact: 100 s after it opened
    clock_now = clock.now()
    incident.dispatched_at = incident.opened_at + timedelta(seconds=100)
    await db.commit()
    facilities = list((await db.scalars(select(Facility).order_by(Facility.code))).all())
    report = await reports.response_time_report(
        db, facilities=facilities, since=start, until=clock_now + timedelta(seconds=1),
        now=clock_now,
    )  # fmt: skip

    def measure(rows, priority, name):  # type: ignore[no-untyped-def]
        return next(m for m in rows if m.priority == priority and m.measure == name)

    hq, lax = report.facilities
    assert hq.facility_code == "HQ" and lax.facility_code == "LAX"
    hq_ack = measure(hq.measures, 1, "acknowledge")
    assert (hq_ack.incidents, hq_ack.met, hq_ack.percent_met) == (3, 2, 66.67)
    assert hq_ack.target_seconds == 15 and hq_ack.meets_target is False
    lax_ack = measure(lax.measures, 1, "acknowledge")
    assert (lax_ack.incidents, lax_ack.met) == (2, 1)
    floor = measure(report.watch_floor, 1, "acknowledge")
    assert (floor.incidents, floor.met, floor.percent_met) == (5, 3, 60.0)
    p2 = measure(hq.measures, 2, "dispatch")
    assert (p2.incidents, p2.met, p2.meets_target) == (1, 1, True)
    p2_ack = measure(hq.measures, 2, "acknowledge")
    assert (p2_ack.incidents, p2_ack.met) == (1, 1)
    assert measure(hq.measures, 1, "dispatch").meets_target is None  # nothing measured
    assert pending.incident_id is not None


async def test_a_panic_cancelled_before_its_alarm_was_raised_still_shows(
    db, clock, site: Site
) -> None:  # type: ignore[no-untyped-def]
    from alarm_site import store_event

    from watchfloor.alarms.service import handle_event
    from watchfloor.auth import service as auth_service
    from watchfloor.panic.models import PanicPress

    user = await auth_service.create_user(
        db, clock, "system:test", username="staffer", password="correct horse battery staple"
    )
    payload = await store_event(db, clock, site, "HQ", "panic.pressed", "PANIC-1")
    db.add(
        PanicPress(
            user_id=user.id,
            facility_id=site.facilities["HQ"],
            event_id=payload["event_id"],
            pressed_at=clock.now(),
            cancel_until=clock.now() + timedelta(seconds=30),
            cancelled_at=clock.now(),
        )
    )
    await db.flush()
    [alarm] = await handle_event(db, clock, payload)
    await db.commit()
    assert alarm.state == AlarmState.CANCELLED_BY_SENDER
    incident = await _incident(db, alarm.incident_id)
    assert incident.status == "new"  # the operator still sees it and confirms
    await incidents.confirm_cancel(db, clock, OPERATOR, incident)
    assert incident.disposition_cause == "cancelled by sender"
