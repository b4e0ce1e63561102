"""The pipeline's moving parts in one process: bus, outbox relay, event batcher, escalation
engine, device supervisor, MQTT ingest and every domain's bus handlers.

`create_app` builds a `Runtime` (nothing runs yet; the batcher can already take events) and puts it
on `app.state.runtime`; the app's lifespan calls `start()` and `stop()`. Several processes may run
at once on PostgreSQL + NATS: the relay and the escalation engine lock rows with SKIP LOCKED, and
durable bus consumers share their messages.

Background loops never die silently: each runs under a guard that logs an exception and restarts
the loop after a short back-off, and each loop records a SchedulerBeat (incidents.health reports a
stalled one).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.bus import Bus
from watchfloor.bus.memory import MemoryBus
from watchfloor.bus.outbox import OutboxRelay
from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.events.ingest import EventBatcher
from watchfloor.incidents.escalation import EscalationEngine

log = logging.getLogger(__name__)

#: modules whose `register(runtime)` subscribes that domain's bus handlers (async allowed);
#: a domain that starts consuming messages adds its handlers module here
HANDLER_MODULES: tuple[str, ...] = (
    "watchfloor.events.handlers",
    "watchfloor.alarms.handlers",
    "watchfloor.web.live",
    "watchfloor.events.test_signal",
    "watchfloor.lockdown.handlers",
    "watchfloor.notify.handlers",
    "watchfloor.rollcall.handlers",
    "watchfloor.drills.handlers",
    "watchfloor.training.handlers",
)
RESTART_DELAY_SECONDS = 1.0


def tune_gc(settings: Settings) -> None:
    """Garbage-collector settings for a long-running server (see Settings.gc_tuning): what
    start-up built is frozen out of every later collection, and young collections run less
    often. Without it a full collection rescans every object of the app (tens of milliseconds
    of a stalled event loop) and collections take a third of batch-ingest time."""
    if not settings.gc_tuning:
        return
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, middle, old)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_bus(settings: Settings) -> Bus:
    """The bus the settings ask for: NATS JetStream for nats:// URLs, else in-process memory."""
    url = settings.bus_url.strip()
    if not url or url.startswith("memory"):
        return MemoryBus()
    if url.startswith(("nats://", "tls://")):
        from watchfloor.bus.nats import NatsBus

        return NatsBus(
            url,
            stream=settings.bus_stream,
            prefix=settings.bus_prefix,
            client_name=f"watchfloor:{process_name()}",
        )
    raise ValueError(f"unsupported WATCHFLOOR_BUS_URL {url!r}: use nats://host:port or leave unset")


class Runtime:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        app: Any = None,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.app = app
        self.process = process_name()
        self.bus: Bus = bus or make_bus(settings)
        self.relay = OutboxRelay(
            sessionmaker,
            self.bus,
            clock,
            retention=timedelta(hours=settings.outbox_retention_hours),
            process=self.process,
        )
        self.batcher = EventBatcher(
            sessionmaker,
            clock,
            self.relay.kick,
            max_batch=settings.ingest_batch_max,
            max_wait_ms=settings.ingest_batch_wait_ms,
        )
        self.escalation = EscalationEngine(sessionmaker, clock, settings, self.relay.kick)
        self.supervisor: Any = None
        self.mqtt: Any = None
        self.broadcaster: Any = None  # set by web.live.register
        self.registered: list[str] = []
        self.started = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.loops: dict[str, Any] = {}  # domains' background loops (see `spawn`)
        self._stopping = False

    # --- parts other domains use ---

    def kick(self) -> None:
        """Wake the outbox relay (commits that add outbox rows do this automatically)."""
        self.relay.kick()

    def _make_supervisor(self) -> Any:
        from watchfloor.events.supervision import Supervisor

        return Supervisor(self.sessionmaker, self.clock, self.batcher, self.settings)

    def _make_mqtt(self) -> Any:
        if not self.settings.mqtt_url:
            return None
        from watchfloor.events.mqtt import MqttIngest

        return MqttIngest(self.sessionmaker, self.clock, self.batcher, self.settings)

    # --- lifecycle ---

    async def start(self) -> None:
        if self.started:
            return
        self._stopping = False
        await self.bus.start()
        await self._seed_defaults()
        await self._register_handlers()
        self._spawn("relay", self.relay.run)
        self._spawn("escalation", self.escalation.run)
        self.supervisor = self._make_supervisor()
        if self.supervisor is not None:
            self._spawn("supervisor", self.supervisor.run)
        from watchfloor.events.test_signal import TestSignalMonitor  # scheduled test signals

        self.test_signals = TestSignalMonitor(
            self.sessionmaker, self.clock, self.batcher, self.settings, relay_kick=self.relay.kick
        )
        if self.test_signals.enabled:
            self._spawn("test_signals", self.test_signals.run)
        self.mqtt = self._make_mqtt()
        if self.mqtt is not None:
            self._spawn("mqtt", self.mqtt.run)
        self.relay.kick()  # publish what a previous process left unpublished
        tune_gc(self.settings)
        self.started = True
        log.info(
            "runtime started (%s bus, handlers: %s)",
            type(self.bus).__name__,
            ", ".join(self.registered) or "none",
        )

    async def _seed_defaults(self) -> None:
        """Org-wide default alarm rules, response targets and escalation policies (idempotent)."""
        from watchfloor.alarms.defaults import ensure_defaults
        from watchfloor.incidents.escalation import ensure_default_policies

        seeders: list[Callable[[AsyncSession, Clock], Awaitable[Any]]] = [
            ensure_default_policies,
            ensure_defaults,
        ]
        for seed in seeders:
            async with self.sessionmaker() as db:
                await seed(db, self.clock)
                await db.commit()

    async def _register_handlers(self) -> None:
        for name in HANDLER_MODULES:
            module = importlib.import_module(name)
            result = module.register(self)
            if inspect.isawaitable(result):
                await result
            self.registered.append(name)

    def spawn(self, name: str, part: Any) -> None:
        """Run a domain's background loop — `part.run()`, asked to end with `part.stop()` — under
        the runtime's guard (restarted if it crashes); it stops with the runtime."""
        self.loops[name] = part
        self._spawn(name, part.run)

    def _spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self._tasks[name] = asyncio.create_task(self._guard(name, loop), name=f"runtime:{name}")

    async def _guard(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; if it raises, log it and start it again."""
        while not self._stopping:
            try:
                await loop()
                if self._stopping:
                    return
                log.error("background loop %s returned; restarting it", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop %s crashed; restarting it", name)
            await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def stop(self, drain_timeout: float = 3.0) -> None:
        """Stop the loops, finish submitted events, publish what can be published quickly, and
        close the bus. Anything left unpublished stays in the outbox for the next start."""
        if not self.started:
            await self.batcher.close()
            self.relay.detach()
            return
        self._stopping = True
        for name, part in list(self.loops.items()):
            await self._stop_loop(name, part)
        self.loops.clear()
        # the supervisor's and MQTT ingest's run() loops end only when cancelled
        await self._stop_loop("mqtt", self.mqtt, grace=0)
        await self._stop_loop("supervisor", self.supervisor, grace=0)
        await self._stop_loop("test_signals", getattr(self, "test_signals", None), grace=0)
        await self._stop_loop("escalation", self.escalation)
        try:
            await self.batcher.close()
        except Exception:
            log.exception("closing the event batcher failed")
        await self._stop_loop("relay", self.relay)
        with contextlib.suppress(Exception, TimeoutError):
            await self.relay.drain(drain_timeout)
        await self.relay.close()
        await self.bus.close()
        self._tasks.clear()
        self.started = False
        log.info("runtime stopped")

    async def _stop_loop(self, name: str, part: Any, grace: float = 2.0) -> None:
        """Ask a loop to stop (its `stop()`), give it `grace` seconds to finish its pass (a task
        cancelled inside a database call can leave the connection half-closed), then cancel."""
        task = self._tasks.pop(name, None)
        stop = getattr(part, "stop", None)
        if callable(stop):
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("stopping %s failed", name)
        if task is None:
            return
        if grace > 0:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- for tests and graceful hand-over ---

    async def drain(self, seconds: float = 10.0) -> None:
        """Wait until the outbox is empty and every consumer has handled what was published,
        including messages those handlers wrote in turn. Tests call this instead of sleeping."""

        async def _settle() -> None:
            while True:
                await self.relay.drain(seconds)
                wait_idle = getattr(self.bus, "wait_idle", None)
                if wait_idle is not None:
                    await wait_idle(seconds)
                if self.relay.in_flight == 0 and await self.relay.pending() == 0:
                    return

        await asyncio.wait_for(_settle(), seconds)
