"""The live console stream: bus messages about alarms and incidents fanned out to browsers.

`register(runtime)` (called by the runtime at start) subscribes with `durable=None` (every
process sees every message) to `cue.>` (a life-safety alarm on its way: alarms/cues.py),
`alarm.>` and `incident.>` and hands each message to a
`Broadcaster`. Each connected console is a `LiveClient` holding the facilities its principal may
see; a message reaches a client only when its facility is among them. A client's queue is bounded:
a console that stops reading is dropped (its browser reconnects and reloads the queue), never the
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth.principal import Scope
from watchfloor.bus import Message, subject_token
from watchfloor.sites.models import Facility

log = logging.getLogger(__name__)

SUBJECTS = ("cue.>", "alarm.>", "incident.>")
QUEUE_SIZE = 500
PING_SECONDS = 15


@dataclass(frozen=True)
class Audience:
    """The facilities one console may hear about (ids, and the subject tokens of their codes)."""

    everything: bool
    facility_ids: frozenset[int] = frozenset()
    tokens: frozenset[str] = frozenset()

    def accepts(self, subject: str, data: dict[str, Any]) -> bool:
        if self.everything:
            return True
        fid = data.get("facility_id")
        if isinstance(fid, int) and not isinstance(fid, bool):
            return fid in self.facility_ids
        parts = subject.split(".")
        return len(parts) >= 2 and parts[1] in self.tokens


async def audience_for(db: AsyncSession, scope: Scope) -> Audience:
    """Resolve a permission scope (org, regions, facilities) into the facilities it covers."""
    if scope.everything:
        return Audience(everything=True)
    if scope.empty:
        return Audience(everything=False)
    conditions = []
    if scope.facility_ids:
        conditions.append(Facility.id.in_(scope.facility_ids))
    if scope.region_ids:
        conditions.append(Facility.region_id.in_(scope.region_ids))
    from sqlalchemy import or_

    rows = (await db.execute(select(Facility.id, Facility.code).where(or_(*conditions)))).all()
    return Audience(
        everything=False,
        facility_ids=frozenset(r.id for r in rows),
        tokens=frozenset(subject_token(r.code) for r in rows),
    )


@dataclass(eq=False)
class LiveClient:
    audience: Audience
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class Broadcaster:
    """Fan-out of live messages to the connected consoles, each filtered by its scope."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.clients: set[LiveClient] = set()
        self.delivered = 0
        self.dropped_clients = 0

    def connect(self, audience: Audience) -> LiveClient:
        client = LiveClient(audience=audience, queue=asyncio.Queue(self.queue_size))
        self.clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        self.clients.discard(client)

    async def on_message(self, message: Message) -> None:
        """Bus handler: never raises, never blocks on a slow console."""
        for client in list(self.clients):
            try:
                if not client.audience.accepts(message.subject, message.data):
                    continue
                client.queue.put_nowait(message)
                self.delivered += 1
            except asyncio.QueueFull:
                client.dropped = True
                self.clients.discard(client)
                self.dropped_clients += 1
                log.warning("dropped a live console that stopped reading")
            except Exception:  # a malformed message must not stop the others
                log.exception("live console filter failed for %s", message.subject)

    async def stream(
        self, client: LiveClient, ping_seconds: float = PING_SECONDS
    ) -> AsyncIterator[dict[str, str]]:
        """Server-sent events for one console: `alarm` / `incident` events, `ping` keep-alives,
        and `reload` when the console was dropped for falling behind."""
        try:
            yield {"event": "hello", "data": "{}"}
            while True:
                if client.dropped:
                    yield {"event": "reload", "data": "{}"}
                    return
                try:
                    message = await asyncio.wait_for(client.queue.get(), timeout=ping_seconds)
                except TimeoutError:
                    yield {"event": "ping", "data": "{}"}
                    continue
                kind = message.subject.split(".", 1)[0]
                yield {
                    "event": kind,
                    "id": message.msg_id,
                    "data": json.dumps({"subject": message.subject, **message.data}, default=str),
                }
        finally:
            self.disconnect(client)


async def unavailable() -> AsyncIterator[dict[str, Any]]:
    """The whole stream when live updates are not running: one event, then the browser retries."""
    yield {"event": "unavailable", "data": "{}", "retry": 5000}


def broadcaster_of(app: Any) -> Broadcaster | None:
    """The broadcaster the runtime started for this app (None when the runtime is not running)."""
    runtime = getattr(app.state, "runtime", None)
    found = getattr(runtime, "broadcaster", None) if runtime is not None else None
    if found is None:
        found = getattr(app.state, "live_broadcaster", None)
    return found if isinstance(found, Broadcaster) else None


async def register(runtime: Any) -> None:
    """Subscribe the console broadcaster to alarm and incident messages (fan-out, not durable)."""
    broadcaster = Broadcaster()
    runtime.broadcaster = broadcaster
    app = getattr(runtime, "app", None)
    if app is not None:
        with contextlib.suppress(AttributeError):
            app.state.live_broadcaster = broadcaster
    for subject in SUBJECTS:
        await runtime.bus.subscribe(subject, None, broadcaster.on_message)
