"""Device supervision: a device silent past its interval is reported offline.

Interval of a device: its own `supervision_seconds`, else the SupervisionSetting of its kind,
else the default (settings.supervision_default_seconds, 200 s). Only devices that have been heard
at least once are supervised (a device never heard from has status "unknown", not "offline"),
and disabled devices are not.

`Supervisor.tick(now)` finds every supervised device whose `last_seen_at + interval <= now` and
that is not already offline, and reports it through the normal ingest path as a synthetic
`device.offline` event (source "system") — so the alarm rules turn it into a P3 trouble alarm —
and marks it offline in the same transaction. The event's idempotency key names the device and
the last_seen_at it was judged on, so a crash between two ticks cannot report it twice, and if
the device is heard between the look-up and the write the report is dropped. A device heard again
while offline is set online with a `device.restored` event, by the ingest path itself
(`ingest.write_events`).

Restart grace. While the server was down nobody heard any device, so right after a restart every
device can look silent. The supervisor therefore knows when supervision last demonstrably ran
(`watched_until`: the newest of its own SchedulerBeat "supervisor" and the newest last_seen_at of
any device — a running server hears devices all the time). For an overdue device:

* its deadline (last_seen_at + interval) fell at or before `watched_until`: it was already silent
  past its interval while the server was still watching — it is reported at once;
* its deadline fell after `watched_until` (inside the outage, or after it): its silence may be the
  outage's doing, so it gets a grace of one interval (or `grace_seconds`) counted from the
  restart; if it is still silent when that runs out, it is reported.

So a reboot raises no storm, a device that was already gone before the restart is reported on the
first tick, and a device that died during the outage is reported one interval after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.events import service
from watchfloor.events.ingest import EventBatcher, ValidatedEvent
from watchfloor.incidents.models import SchedulerBeat
from watchfloor.sites.models import Device, DeviceStatus, Facility

log = logging.getLogger("watchfloor.supervision")
BEAT_NAME = "supervisor"


@dataclass(frozen=True)
class Overdue:
    device_id: int
    facility_id: int
    facility_code: str
    device_code: str
    zone_id: int | None
    last_seen_at: datetime
    interval: int


class Supervisor:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        batcher: EventBatcher,
        settings: Settings | None = None,
        *,
        default_seconds: int | None = None,
        grace_seconds: float | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.batcher = batcher
        if default_seconds is None:
            default_seconds = getattr(
                settings, "supervision_default_seconds", service.DEFAULT_SUPERVISION_SECONDS
            )
        self.default_seconds = int(default_seconds or service.DEFAULT_SUPERVISION_SECONDS)
        self.grace_seconds = grace_seconds
        self.started_at: datetime | None = None
        self.watched_until: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, loop: bool = False) -> None:
        """Note the restart and what was watched before it; with `loop`, tick every second."""
        self.started_at = self.clock.now()
        async with self.sessionmaker() as db:
            beat = await db.get(SchedulerBeat, BEAT_NAME)
            newest = (await db.execute(select(func.max(Device.last_seen_at)))).scalar_one()
        seen = [t for t in (beat.last_beat_at if beat else None, newest) if t is not None]
        self.watched_until = max(seen) if seen else None
        if loop:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="supervisor")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        await self.close()

    async def run(self, every: float = 1.0) -> None:
        """Tick every `every` seconds (the runtime runs this as a background loop)."""
        if self.started_at is None:
            await self.start()
        while True:
            try:
                await self.tick(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("supervision tick failed")
            await asyncio.sleep(every)

    def _grace_until(self, interval: int) -> datetime:
        assert self.started_at is not None
        grace = self.grace_seconds if self.grace_seconds is not None else interval
        return self.started_at + timedelta(seconds=grace)

    def is_due(self, last_seen_at: datetime, interval: int, now: datetime) -> bool:
        deadline = last_seen_at + timedelta(seconds=interval)
        if deadline > now:
            return False
        if self.watched_until is not None and deadline <= self.watched_until:
            return True  # already silent past its interval while the server was watching
        return now >= self._grace_until(interval)

    async def overdue(self, db: AsyncSession, now: datetime) -> list[Overdue]:
        kinds = await service.supervision_settings(db)
        rows = await db.execute(
            select(
                Device.id,
                Device.facility_id,
                Facility.code,
                Device.code,
                Device.zone_id,
                Device.kind,
                Device.supervision_seconds,
                Device.last_seen_at,
            )
            .join(Facility, Facility.id == Device.facility_id)
            .where(
                Device.last_seen_at.is_not(None),
                Device.status.not_in([DeviceStatus.OFFLINE, DeviceStatus.DISABLED]),
            )
        )
        found = []
        for dev_id, fac_id, fac_code, code, zone_id, kind, own, last_seen in rows.all():
            interval = service.interval_for(own, kind, kinds, self.default_seconds)
            if last_seen is not None and self.is_due(last_seen, interval, now):
                found.append(Overdue(dev_id, fac_id, fac_code, code, zone_id, last_seen, interval))
        return found

    async def tick(self, now: datetime) -> list[int]:
        """Report every overdue device; the ids of those reported. Records the beat."""
        if self.started_at is None:
            await self.start()
        async with self.sessionmaker() as db:
            due = await self.overdue(db, now)
        events = [
            ValidatedEvent(
                facility_id=d.facility_id,
                facility_code=d.facility_code,
                type="device.offline",
                occurred_at=now,
                device_id=d.device_id,
                device_code=d.device_code,
                zone_id=d.zone_id,
                attributes={
                    "last_seen_at": d.last_seen_at.isoformat(),
                    "interval_seconds": d.interval,
                    "silent_seconds": round((now - d.last_seen_at).total_seconds(), 3),
                },
                idempotency_key=f"offline:{d.device_id}:{d.last_seen_at.isoformat()}",
                source="system",
                sender="system:supervision",
                heard=False,
                device_status=DeviceStatus.OFFLINE.value,
                unless_heard_since=d.last_seen_at,
            )
            for d in due
        ]
        receipts = await self.batcher.submit(events) if events else []
        reported = [d.device_id for d, r in zip(due, receipts, strict=True) if not r.skipped]
        await self._beat(now)
        if reported:
            log.info("supervision: %d device(s) offline", len(reported))
        return reported

    async def _beat(self, now: datetime) -> None:
        try:
            await self._write_beat(now)
        except IntegrityError:  # another process wrote the first beat at the same moment
            await self._write_beat(now)

    async def _write_beat(self, now: datetime) -> None:
        async with self.sessionmaker() as db:
            beat = await db.get(SchedulerBeat, BEAT_NAME)
            process = f"{socket.gethostname()}:{os.getpid()}"[:120]
            if beat is None:
                db.add(SchedulerBeat(name=BEAT_NAME, last_beat_at=now, process=process))
            else:
                beat.last_beat_at = now
                beat.process = process
            await db.commit()
