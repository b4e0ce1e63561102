"""Bus subscriptions of the notify domain, and its delivery engine's loop.

- ``notify.dispatch`` (written by ``send_alert`` with every alert): wakes the delivery engine.
- ``notify.request`` (incidents/escalation.py and dispatch): an escalation step or a unit
  dispatch; the target is mapped to people (or a response unit) of the incident's facility and
  sent as an ``escalation`` alert; the NotificationRequest follows (queued → sent / failed, or
  no_recipients).
- ``lockdown.*.started`` / ``lockdown.*.lifted``: the ``lockdown`` / ``lockdown_lifted`` alert to
  everyone at the facility (status Exercise for a drill).

Each message is handled in one transaction with ``outbox.first_delivery`` and an alert key
derived from the message, so a redelivered message sends nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import Message, outbox
from watchfloor.clock import Clock
from watchfloor.notify.delivery import DeliveryEngine
from watchfloor.notify.service import DISPATCH_SUBJECT, Audience, send_alert
from watchfloor.people.models import Person
from watchfloor.problems import Problem
from watchfloor.sites.models import ResponseUnit

log = logging.getLogger("watchfloor.notify")

REQUEST_CONSUMER = "notify-requests"
LOCKDOWN_CONSUMER = "notify-lockdown"
DISPATCH_CONSUMER = "notify-dispatch"
STOP_GRACE_SECONDS = 5.0
#: escalation targets → Person.role values at the incident's facility
TARGET_ROLES: dict[str, list[str]] = {
    "watch_floor": ["operator"],
    "facility_manager": ["facility_manager"],
    "programme_manager": ["programme_manager"],
    "guard": ["guard"],
}


async def audience_for_target(db: AsyncSession, facility_id: int, target: str) -> Audience:
    """Who an escalation target means at a facility.

    watch_floor → operators; supervisor → operators whose job title names them supervisor (the
    facility managers if there are none); facility_manager, programme_manager, guard → that role;
    role:NAME → that role; unit:CODE → the facility's response unit with that code."""
    if target.startswith("unit:"):
        code = target.removeprefix("unit:")
        unit_id = (
            await db.execute(
                select(ResponseUnit.id).where(
                    ResponseUnit.facility_id == facility_id, ResponseUnit.code == code
                )
            )
        ).scalar_one_or_none()
        return Audience(unit_ids=[unit_id] if unit_id is not None else [])
    if target.startswith("role:"):
        return Audience(roles=[target.removeprefix("role:")])
    if target == "supervisor":
        ids = (
            (
                await db.execute(
                    select(Person.id).where(
                        Person.facility_id == facility_id,
                        Person.active.is_(True),
                        Person.role == "operator",
                        Person.job_title.ilike("%supervisor%"),
                    )
                )
            )
            .scalars()
            .all()
        )
        return Audience(staff_ids=list(ids)) if ids else Audience(roles=["facility_manager"])
    return Audience(roles=TARGET_ROLES.get(target, [target]))


async def handle_request(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, msg: Message
) -> int | None:
    """Deliver one notify.request; returns the alert id (None if nothing was sent)."""
    from watchfloor.incidents.models import Incident, NotificationRequest

    data = msg.data
    async with sessionmaker() as db:
        if not await outbox.first_delivery(db, REQUEST_CONSUMER, msg.msg_id, clock=clock):
            return None
        request_id = data.get("request_id")
        facility_id = data.get("facility_id")
        request = await db.get(NotificationRequest, request_id) if request_id else None
        if not isinstance(facility_id, int):
            log.warning("notify.request %s without a facility: dropped", msg.msg_id)
            await db.commit()
            return None
        incident_id = data.get("incident_id")
        incident = await db.get(Incident, incident_id) if incident_id else None
        status = "Exercise" if incident is not None and incident.exercise else "Actual"
        target = str(data.get("target", "watch_floor"))
        audience = await audience_for_target(db, facility_id, target)
        alert_id = None
        try:
            alert = await send_alert(
                db,
                clock,
                template="escalation",
                facility_ids=[facility_id],
                audience=audience,
                status=status,
                context={"message": str(data.get("message", "Security incident"))[:900]},
                incident_id=incident.id if incident is not None else None,
                sender="system:escalation",
                key=f"notify-request-{request_id}" if request_id else f"notify-{msg.msg_id}",
            )
            alert_id = alert.id
            if request is not None:
                request.status = "queued" if alert.recipient_count else "no_recipients"
        except Problem as exc:
            log.warning("notify.request %s could not be sent: %s", msg.msg_id, exc.detail)
            if request is not None:
                request.status = "failed"
        await db.commit()
        return alert_id


async def handle_lockdown(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, msg: Message
) -> int | None:
    """lockdown.<facility>.started / .lifted → the alert to everyone at the facility."""
    from watchfloor.incidents.models import Incident

    data = msg.data
    lifted = msg.subject.endswith(".lifted")
    facility_id = data.get("facility_id")
    lockdown_id = data.get("lockdown_id")
    if not isinstance(facility_id, int):
        log.warning("lockdown message %s without a facility: no alert", msg.msg_id)
        return None
    async with sessionmaker() as db:
        if not await outbox.first_delivery(db, LOCKDOWN_CONSUMER, msg.msg_id, clock=clock):
            return None
        context = {
            "zone_name": str(data.get("zone_name") or ""),
            "reason": str(data.get("reason") or ""),
        }
        incident_id = data.get("incident_id")
        if isinstance(incident_id, int) and await db.get(Incident, incident_id) is None:
            incident_id = None  # the alert matters more than its link to the incident
        try:
            alert = await send_alert(
                db,
                clock,
                template="lockdown_lifted" if lifted else "lockdown",
                facility_ids=[facility_id],
                audience=Audience(everyone_at_facilities=True),
                status="Exercise" if data.get("exercise") else "Actual",
                context={k: v for k, v in context.items() if v},
                incident_id=incident_id if isinstance(incident_id, int) else None,
                sender=str(data.get("lifted_by" if lifted else "started_by") or "system:lockdown"),
                key=f"lockdown-{lockdown_id}-{'lifted' if lifted else 'started'}",
            )
        except Problem as exc:
            log.error("lockdown alert for %s could not be written: %s", msg.msg_id, exc.detail)
            await db.rollback()
            return None
        await db.commit()
        return alert.id


async def register(runtime: Any) -> None:
    """Subscribe this domain's handlers and start the delivery engine; the runtime awaits this
    at start."""
    engine = DeliveryEngine(
        runtime.sessionmaker,
        runtime.clock,
        runtime.settings,
        secret_key=getattr(getattr(runtime.app, "state", None), "secret_key", "") or "",
    )
    runtime.notify_engine = engine

    async def on_dispatch(msg: Message) -> None:
        engine.kick()

    async def on_request(msg: Message) -> None:
        await handle_request(runtime.sessionmaker, runtime.clock, msg)
        engine.kick()

    async def on_lockdown(msg: Message) -> None:
        await handle_lockdown(runtime.sessionmaker, runtime.clock, msg)
        engine.kick()

    from watchfloor.incidents.escalation import NOTIFY_SUBJECT

    await runtime.bus.subscribe(DISPATCH_SUBJECT, None, on_dispatch)
    await runtime.bus.subscribe(NOTIFY_SUBJECT, REQUEST_CONSUMER, on_request)
    await runtime.bus.subscribe("lockdown.*.started", LOCKDOWN_CONSUMER, on_lockdown)
    await runtime.bus.subscribe("lockdown.*.lifted", LOCKDOWN_CONSUMER + "-lifted", on_lockdown)

    # engine.run() never raises (a failed pass is logged and the loop goes on), so it runs as a
    # plain task that this module stops: the runtime's stop() knows nothing of it. Stop it first
    # (a pass in progress finishes and records its outcomes), close the SMTP pool, then the rest.
    task = asyncio.create_task(engine.run(), name="runtime:notify")
    original_stop = runtime.stop

    async def stop(*args: Any, **kwargs: Any) -> None:
        engine.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        except (TimeoutError, Exception):  # noqa: BLE001 - stopping must go on
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await engine.close()
        except Exception:  # noqa: BLE001
            log.exception("closing the notify delivery engine failed")
        await original_stop(*args, **kwargs)

    runtime.stop = stop
