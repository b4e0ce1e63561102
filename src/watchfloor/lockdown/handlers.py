"""The lockdown domain in the runtime: the engine (door driver and a task per active lockdown),
the live console feed of lockdown progress, and the rule triggers.

- `runtime.lockdown` is the `LockdownEngine`; at start it resumes every lockdown still locking or
  lifting (a restart loses no lockdown). The runtime's stop closes it before the event batcher.
- `runtime.lockdown_live` is a `web.live.Broadcaster` of `lockdown.>` messages for the console.
- Triggers: every P1 alarm (`alarm.*.p1`, durable consumer "lockdown-triggers") is looked up in
  `lockdown_triggers`; a matching enabled trigger (the facility's own, else the organisation's)
  locks down the alarm's zone (or the whole facility), linked to the alarm's incident, unless the
  facility is already locked down.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import Message, outbox
from watchfloor.clock import Clock
from watchfloor.incidents.models import Incident
from watchfloor.lockdown import service
from watchfloor.lockdown.engine import LockdownEngine
from watchfloor.sites.models import Facility, Zone

log = logging.getLogger(__name__)

TRIGGER_CONSUMER = "lockdown-triggers"
LIVE_SUBJECT = "lockdown.>"


async def handle_alarm(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, msg: Message
) -> list[int]:
    """One `alarm.<facility>.p1` message: start the lockdown its trigger asks for. Returns the
    ids of the lockdowns started (empty for a redelivery or when nothing matches)."""
    data = msg.data
    facility_id = data.get("facility_id")
    alarm_type = str(data.get("type") or "")
    if not isinstance(facility_id, int) or not alarm_type:
        return []
    async with sessionmaker() as db:
        # Reads first: most P1 alarms match no trigger, and deciding so again on a redelivery is
        # harmless, so they take no write (the alarm transactions of other panics go on).
        trigger = await service.trigger_for(db, facility_id, alarm_type)
        if trigger is None or not trigger.enabled:
            return []
        if not await outbox.first_delivery(db, TRIGGER_CONSUMER, msg.msg_id, clock=clock):
            return []
        facility = await db.get(Facility, facility_id)
        if facility is None:
            await db.commit()
            return []
        if await service.active_lockdown(db, facility_id) is not None:
            await db.commit()
            return []
        zone = None
        zone_code = data.get("zone_code")
        if trigger.scope == "zone" and isinstance(zone_code, str) and zone_code:
            zone = (
                await db.execute(
                    select(Zone).where(Zone.facility_id == facility_id, Zone.code == zone_code)
                )
            ).scalar_one_or_none()
        incident_id = data.get("incident_id")
        incident = await db.get(Incident, incident_id) if isinstance(incident_id, int) else None
        if incident is not None and incident.facility_id != facility_id:
            incident = None
        title = data.get("title") or alarm_type
        try:
            result = await service.start(
                db,
                clock,
                f"system:rule:{alarm_type}",
                [service.Target(facility, zone)],
                exercise=bool(incident.exercise) if incident is not None else False,
                reason=f"{title} (automatic, alarm {data.get('alarm_id')})",
                incident_id=incident.id if incident is not None else None,
                source="rule",
            )
            await db.commit()
        except IntegrityError:  # locked down by someone else meanwhile: nothing to add
            await db.rollback()
            async with sessionmaker() as again:
                await outbox.first_delivery(again, TRIGGER_CONSUMER, msg.msg_id, clock=clock)
                await again.commit()
            return []
    return [ld.id for ld in result.lockdowns]


def engine_of(app_or_runtime: Any) -> LockdownEngine | None:
    runtime = getattr(getattr(app_or_runtime, "state", None), "runtime", app_or_runtime)
    engine = getattr(runtime, "lockdown", None)
    return engine if isinstance(engine, LockdownEngine) else None


async def register(runtime: Any) -> None:
    """Start the engine (resuming unfinished lockdowns), the live feed and the trigger consumer."""
    from watchfloor.lockdown.drivers import driver_for
    from watchfloor.web.live import Broadcaster

    settings = runtime.settings
    engine = LockdownEngine.from_settings(
        runtime.sessionmaker,
        runtime.clock,
        settings,
        driver_for(settings),
        submit_events=runtime.batcher.submit,
    )
    runtime.lockdown = engine

    # the runtime's stop() knows nothing of this engine: close it first (before the batcher)
    original_stop = runtime.stop

    async def stop(*args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(Exception):
            await engine.close()
        with contextlib.suppress(Exception):
            await engine.driver.close()
        await original_stop(*args, **kwargs)

    runtime.stop = stop

    live = Broadcaster()
    runtime.lockdown_live = live
    await runtime.bus.subscribe(LIVE_SUBJECT, None, live.on_message)

    async def _on_alarm(msg: Message) -> None:
        started = await handle_alarm(runtime.sessionmaker, runtime.clock, msg)
        if started:
            log.info("alarm %s started lockdown(s) %s", msg.msg_id, started)
            runtime.relay.kick()
            await engine.ensure(started)

    await runtime.bus.subscribe("alarm.*.p1", TRIGGER_CONSUMER, _on_alarm)
    await engine.resume()
