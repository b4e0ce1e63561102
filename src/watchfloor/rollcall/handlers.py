"""Bus subscriptions of the rollcall domain.

- `lockdown.*.started` (durable consumer "rollcall-lockdown"): start a roll call of the locked-down
  facility (EXERCISE for a drill lockdown) unless one is already open there, or
  `rollcall_on_lockdown` is off. Idempotent: a redelivered message changes nothing.
- `rollcall.>` (fan-out, every process): the live roll-call boards (`RollcallBroadcaster`, reusing
  the console's scope-filtered `web.live.Broadcaster`), on `runtime.rollcall_broadcaster`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import Message, outbox
from watchfloor.clock import Clock
from watchfloor.rollcall import service
from watchfloor.sites.models import Facility
from watchfloor.web.live import Broadcaster

log = logging.getLogger(__name__)

LOCKDOWN_CONSUMER = "rollcall-lockdown"
LOCKDOWN_SUBJECT = "lockdown.*.started"
LIVE_SUBJECT = "rollcall.>"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def on_lockdown_started(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    msg: Message,
    *,
    secret_key: str,
    public_url: str,
) -> int | None:
    """Start the facility's roll call for a lockdown; its id, or None when none was started
    (redelivery, one already open, unknown facility)."""
    data = msg.data
    facility_id = _int(data.get("facility_id"))
    async with sessionmaker() as db:
        if not await outbox.first_delivery(db, LOCKDOWN_CONSUMER, msg.msg_id, clock=clock):
            return None
        facility = await db.get(Facility, facility_id) if facility_id is not None else None
        if facility is None:
            log.warning("lockdown message %s names no known facility; no roll call", msg.msg_id)
            await db.commit()
            return None
        if await service.open_roll_call(db, facility.id) is not None:
            await db.commit()  # the open roll call carries on; remember the message
            return None
        exercise = bool(data.get("exercise"))
        zone = str(data.get("zone_name") or "")
        reason = f"{'Drill lockdown' if exercise else 'Lockdown'} of {facility.name}"
        if zone:
            reason += f" ({zone})"
        extra = str(data.get("reason") or "")
        if extra:
            reason += f": {extra}"
        roll_call = await service.start(
            db,
            clock,
            f"system:lockdown:{data.get('started_by') or 'unknown'}"[:160],
            facility,
            secret_key=secret_key,
            public_url=public_url,
            reason=reason[:300],
            exercise=exercise,
            incident_id=_int(data.get("incident_id")),
            lockdown_id=_int(data.get("lockdown_id")),
            trigger="lockdown",
        )
        await db.commit()
        return roll_call.id


async def register(runtime: Any) -> None:
    """Subscribe this domain's handlers; the runtime awaits this at start."""
    broadcaster = Broadcaster()
    runtime.rollcall_broadcaster = broadcaster
    await runtime.bus.subscribe(LIVE_SUBJECT, None, broadcaster.on_message)

    settings = runtime.settings
    app = getattr(runtime, "app", None)
    secret_key = getattr(getattr(app, "state", None), "secret_key", None)
    if not secret_key:
        secret_key = settings.resolved_secret_key()

    async def _on_lockdown(msg: Message) -> None:
        if not settings.rollcall_on_lockdown:
            return
        await on_lockdown_started(
            runtime.sessionmaker,
            runtime.clock,
            msg,
            secret_key=secret_key,
            public_url=settings.public_url,
        )
        runtime.kick()

    await runtime.bus.subscribe(LOCKDOWN_SUBJECT, LOCKDOWN_CONSUMER, _on_lockdown)
