"""The escalation contract with the alarm pipeline: an event becomes an alarm, the alarm opens an
incident whose policy is snapshotted and whose timers run; acknowledging stops them."""

from __future__ import annotations

from sqlalchemy import select

from watchfloor.alarms import service as alarms
from watchfloor.auth.principal import SYSTEM
from watchfloor.clock import FakeClock
from watchfloor.config import Settings
from watchfloor.events.ingest import ValidatedEvent, event_message, write_events
from watchfloor.incidents import escalation
from watchfloor.incidents import service as incidents
from watchfloor.incidents.models import Incident, NotificationRequest


async def _raise(
    sessionmaker, clock: FakeClock, facility_id: int, code: str, kind: str
) -> Incident:  # type: ignore[no-untyped-def]
    ev = ValidatedEvent(
        facility_id=facility_id,
        facility_code=code,
        type=kind,
        occurred_at=clock.now(),
        source="system",
        sender="test",
        heard=False,
    )
    async with sessionmaker() as db:
        receipt = (await write_events(db, clock, [ev]))[0]
        raised = await alarms.handle_event(db, clock, event_message(receipt.event_id, ev))
        await db.commit()
        assert raised, "no alarm rule matched"
        incident = await db.get(Incident, raised[0].incident_id)
        assert incident is not None
        return incident


async def test_a_panic_opens_an_incident_that_escalates_until_acknowledged(
    sessionmaker, clock: FakeClock, settings: Settings, facilities
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.alarms.defaults import ensure_defaults

    async with sessionmaker() as db:
        await ensure_defaults(db, clock)
        await escalation.ensure_default_policies(db, clock)
        await db.commit()
    incident = await _raise(sessionmaker, clock, facilities["ESC-1"], "ESC-1", "panic.pressed")
    assert incident.priority == 1
    assert incident.escalation["priority"] == 1
    assert [s["target"] for s in incident.escalation["steps"]] == [
        "watch_floor",
        "supervisor",
        "facility_manager",
    ]
    engine = escalation.EscalationEngine(sessionmaker, clock, settings)
    assert await engine.tick() == 1
    clock.advance(seconds=30)
    assert await engine.tick() == 1
    async with sessionmaker() as db:
        inc = await incidents.get_incident(db, incident.id)
        await incidents.acknowledge(db, clock, SYSTEM, inc)
        await db.commit()
        assert await escalation.pending_timers(db, incident.id) == []
    clock.advance(seconds=600)
    assert await engine.tick() == 0
    async with sessionmaker() as db:
        targets = (
            await db.execute(
                select(NotificationRequest.target)
                .where(NotificationRequest.incident_id == incident.id)
                .order_by(NotificationRequest.id)
            )
        ).scalars()
        assert list(targets) == ["watch_floor", "supervisor"]
