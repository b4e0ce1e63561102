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


async def test_a_panic_is_cued_to_the_console_before_its_alarm_and_a_weak_weapon_is_not(
    running_app, live_client, db, clock, site: Site, make_token
) -> None:  # type: ignore[no-untyped-def]
    """The life-safety cue (`cue.<facility>.p1`) goes out before the alarm's bookkeeping and
    names the event; a weapon detection below the facility's confidence threshold raises
    neither a cue nor an alarm; a repeated press is cued no second time."""
    from watchfloor.alarms.models import AlarmRule

    runtime = running_app.state.runtime
    seen: list[Message] = []

    async def listen(msg: Message) -> None:
        seen.append(msg)

    for subject in ("cue.>", "alarm.>"):
        await runtime.bus.subscribe(subject, None, listen)
    org_weapon = (
        await db.scalars(
            select(AlarmRule).where(AlarmRule.key == "weapon", AlarmRule.facility_id.is_(None))
        )
    ).one()
    db.add(
        AlarmRule(
            facility_id=site.facilities["HQ"],
            key="weapon",
            name="Weapon detected",
            event_type="weapon.detected",
            conditions={"attributes": {"confidence_min": 0.8}},
            alarm_type=org_weapon.alarm_type,
            priority=1,
            enabled=True,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    await db.commit()
    device = await make_token("device", facility="HQ")
    sent = []
    for key, type_, attrs in (
        ("press-1", "panic.pressed", {}),
        ("press-1", "panic.pressed", {}),
        ("weak", "weapon.detected", {"confidence": 0.4}),
    ):
        body = {
            "device": "PANIC-1",
            "type": type_,
            "occurred_at": clock.now().isoformat(),
            "idempotency_key": key,
            "attributes": attrs,
        }
        resp = await live_client.post("/api/v1/events", json=body, headers=device)
        assert resp.status_code in (200, 201), resp.text
        sent.append(resp.json()["event_id"])
    await runtime.drain()

    press = sent[0]
    kinds = [(m.subject.split(".")[0], m.data["event_id"]) for m in seen]
    assert kinds == [("cue", press), ("alarm", press)]
    cue = seen[0].data
    assert cue["priority"] == 1 and cue["facility_code"] == "HQ" and cue["type"] == "panic.pressed"
    assert "PANIC-1" in cue["title"]
