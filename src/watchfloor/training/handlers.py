"""Background work of the training domain: the daily reminder digest.

`register` starts a loop that, every `training_reminder_check_seconds`, sends each facility with
staff overdue or due soon its digest once its local time is past `training_reminder_hour` and it
has had none that (local) day. The day's reminder is a row in `training_reminders` (unique per
facility and day), so a restart or a second process does not send it twice. The work of one pass
is `ReminderLoop.tick()`, which tests call with a fake clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.training import service

log = logging.getLogger("watchfloor.training")


class ReminderLoop:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        kick: Any = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.settings = settings
        self.kick = kick
        self._stop = asyncio.Event()

    async def tick(self) -> list[service.ReminderOutcome]:
        """One pass: send the digests that are due now."""
        outcomes = await service.send_due_reminders(
            self.sessionmaker,
            self.clock,
            due_soon_days=self.settings.training_due_soon_days,
            hour=self.settings.training_reminder_hour,
            public_url=self.settings.public_url,
        )
        if outcomes and self.kick is not None:
            self.kick()  # wake the outbox relay: the alerts' dispatch messages are waiting
        return outcomes

    async def run(self) -> None:
        """Wait a check interval, then look; again and again until stopped. (The first pass
        comes one interval after start, so a process that restarts often sends no burst.)"""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.wait(), self.settings.training_reminder_check_seconds
                )
            if self._stop.is_set():
                return
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - a failed pass is logged; the next one retries
                log.exception("training reminder pass failed")

    def stop(self) -> None:
        self._stop.set()


async def register(runtime: Any) -> None:
    """Start the reminder loop (unless `training_reminders` is off); it stops with the runtime."""
    settings = runtime.settings
    if not settings.training_reminders:
        return
    runtime.spawn(
        "training-reminders",
        ReminderLoop(runtime.sessionmaker, runtime.clock, settings, runtime.kick),
    )
