"""The running pipeline: an event posted over HTTP becomes an alarm in an incident, published on
`alarm.<facility>.p1`, and an acknowledgement is published on `incident.<facility>.updated`."""

from __future__ import annotations

from typing import Any

from alarm_site import Site
from sqlalchemy import select

from watchfloor.alarms.models import Alarm
from watchfloor.bus import Message
from watchfloor.incidents.models import Incident


async def test_panic_over_http_reaches_the_bus_as_a_p1_alarm(
    running_app, live_client, db, clock, site: Site, make_token
) -> None:  # type: ignore[no-untyped-def]
    runtime = running_app.state.runtime
    seen: list[Message] = []

    async def listen(msg: Message) -> None:
        seen.append(msg)

    await runtime.bus.subscribe("alarm.>", None, listen)
    await runtime.bus.subscribe("incident.>", None, listen)
    device = await make_token("device", facility="HQ")
    event: dict[str, Any] = {
        "device": "PANIC-1",
        "type": "panic.pressed",
        "occurred_at": clock.now().isoformat(),
        "idempotency_key": "press-1",
    }
    resp = await live_client.post("/api/v1/events", json=event, headers=device)
    assert resp.status_code in (200, 201, 202), resp.text
    # the same press sent again is stored once and raises no second alarm
    resp = await live_client.post("/api/v1/events", json=event, headers=device)
    assert resp.status_code in (200, 201, 202), resp.text
    await runtime.drain()

    alarms = (await db.scalars(select(Alarm))).all()
    assert [(a.priority, a.type) for a in alarms] == [(1, "panic")]
    incident = (await db.scalars(select(Incident))).one()
    assert incident.status == "new" and incident.priority == 1
    [alarm_msg] = [m for m in seen if m.subject.endswith("alarm.HQ.p1")]
    assert alarm_msg.data["incident_id"] == incident.id
    assert alarm_msg.data["device_code"] == "PANIC-1"

    operator = await make_token("operator", org=True)
    resp = await live_client.post(f"/api/v1/incidents/{incident.id}/acknowledge", headers=operator)
    assert resp.status_code == 200, resp.text
    await runtime.drain()
    updates = [m for m in seen if m.subject.endswith("incident.HQ.updated")]
    assert [m.data["status"] for m in updates] == ["acknowledged"]
