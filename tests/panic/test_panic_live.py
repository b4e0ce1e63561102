"""A staff panic through the running pipeline: press → event → P1 alarm → incident → escalation."""

from __future__ import annotations

from sqlalchemy import select

from watchfloor.alarms.models import Alarm, AlarmState
from watchfloor.clock import FakeClock
from watchfloor.incidents.models import Incident, NotificationRequest
from watchfloor.panic.models import PanicPress


async def test_a_press_becomes_an_escalating_p1_incident_and_a_cancel_marks_it(
    running_app, staff, sessionmaker, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    press_id = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    await runtime.drain()
    async with sessionmaker() as db:
        press = await db.get(PanicPress, press_id)
        assert press is not None
        alarm = (
            await db.execute(select(Alarm).where(Alarm.event_id == press.event_id))
        ).scalar_one()
        assert alarm.priority == 1 and alarm.incident_id is not None
        incident = await db.get(Incident, alarm.incident_id)
        assert incident is not None and incident.escalation["priority"] == 1
    await runtime.escalation.tick(clock.now())  # the runtime's own loop may have fired it first
    async with sessionmaker() as db:
        targets = (
            await db.execute(
                select(NotificationRequest.target).where(
                    NotificationRequest.incident_id == incident.id
                )
            )
        ).scalars()
        assert list(targets) == ["watch_floor"]

    r = await staff.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r.json() == {"status": "cancelled"}
    await runtime.drain()
    async with sessionmaker() as db:
        alarm = await db.get(Alarm, alarm.id)
        assert alarm is not None and alarm.state == AlarmState.CANCELLED_BY_SENDER
