"""The in-process bus: the default for one process (`make demo`, tests, small installations).

Every subscription has an asyncio queue and a worker task. A durable name is a work-sharing group:
all subscriptions under one name read one queue, so each message is handled once by the group;
`durable=None` subscriptions each get every message (fan-out, e.g. live consoles).

A handler that raises gets the message again after a back-off (doubling up to a cap); while the
process lives a message is never dropped. `publish` returns once every durable group that matches
the subject has handled the message successfully: the outbox relay marks an outbox row published
only then, so a crash before a handler commits leaves the row unpublished and it is delivered again
after the restart (handlers dedupe with `outbox.first_delivery`). Fan-out subscribers are not
waited for. A msg_id seen within the dedupe window is not delivered twice (a publish of one still
being handled waits for that delivery instead).

Handlers must not `publish` to a subject their own durable group consumes (they would wait on
themselves): they write to the outbox instead, like every other producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from watchfloor.bus import Handler, Message, subject_matches

log = logging.getLogger(__name__)


class _Tracker:
    """Completion of one published message across the durable groups it went to."""

    __slots__ = ("future", "remaining")

    def __init__(self, future: asyncio.Future[None], remaining: int) -> None:
        self.future = future
        self.remaining = remaining

    def one_done(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0 and not self.future.done():
            self.future.set_result(None)


@dataclass
class _Delivery:
    message: Message
    tracker: _Tracker | None
    attempts: int = 0


@dataclass
class _Group:
    """One queue and its workers: a durable group, or a single fan-out subscription."""

    pattern: str
    durable: str | None
    queue: asyncio.Queue[_Delivery] = field(default_factory=asyncio.Queue)
    workers: list[asyncio.Task[None]] = field(default_factory=list)


class MemoryBus:
    """In-process implementation of `watchfloor.bus.Bus`."""

    #: the outbox relay runs publishes concurrently and marks rows published when they return
    publish_waits_for_handlers = True

    def __init__(
        self,
        *,
        retry_base: float = 0.05,
        retry_cap: float = 5.0,
        dedupe_window: float = 120.0,
        dedupe_max: int = 200_000,
    ) -> None:
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.dedupe_window = dedupe_window
        self.dedupe_max = dedupe_max
        self._durables: dict[str, _Group] = {}
        self._fanouts: list[_Group] = []
        self._seen: OrderedDict[str, tuple[float, asyncio.Future[None] | None]] = OrderedDict()
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._unsettled = 0  # deliveries not yet handled successfully (incl. waiting retries)
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for handle in self._retry_handles:
            handle.cancel()
        self._retry_handles.clear()
        groups = [*self._durables.values(), *self._fanouts]
        tasks = [t for g in groups for t in g.workers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for _, fut in self._seen.values():
            if fut is not None and not fut.done():
                fut.cancel()
        self._durables.clear()
        self._fanouts.clear()
        self._unsettled = 0
        self._idle.set()

    # --- publishing ---

    def _forget_old(self, now: float) -> None:
        while self._seen:
            msg_id, (seen_at, fut) = next(iter(self._seen.items()))
            too_many = len(self._seen) > self.dedupe_max
            if (now - seen_at <= self.dedupe_window and not too_many) or (
                fut is not None and not fut.done()
            ):
                break
            del self._seen[msg_id]

    async def publish(self, subject: str, data: dict[str, Any], msg_id: str) -> None:
        if self._closed:
            raise RuntimeError("the bus is closed")
        now = time.monotonic()
        self._forget_old(now)
        seen = self._seen.get(msg_id)
        if seen is not None:
            fut = seen[1]
            if fut is not None and not fut.done():
                await asyncio.shield(fut)
            return
        # a JSON round trip, as on a real bus: the data must serialise, and no one shares objects
        message = Message(subject=subject, data=json.loads(json.dumps(data)), msg_id=msg_id)
        for group in self._fanouts:
            if subject_matches(group.pattern, subject):
                self._enqueue(group, _Delivery(message, None))
        targets = [g for g in self._durables.values() if subject_matches(g.pattern, subject)]
        if not targets:
            self._seen[msg_id] = (now, None)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tracker = _Tracker(future, len(targets))
        self._seen[msg_id] = (now, future)
        for group in targets:
            self._enqueue(group, _Delivery(message, tracker))
        await asyncio.shield(future)

    def _enqueue(self, group: _Group, delivery: _Delivery) -> None:
        self._unsettled += 1
        self._idle.clear()
        group.queue.put_nowait(delivery)

    def _settled(self) -> None:
        self._unsettled -= 1
        if self._unsettled <= 0:
            self._unsettled = 0
            self._idle.set()

    # --- subscribing ---

    async def subscribe(self, subject: str, durable: str | None, handler: Handler) -> None:
        if durable is None:
            group = _Group(pattern=subject, durable=None)
            self._fanouts.append(group)
        else:
            group = self._durables.get(durable) or _Group(pattern=subject, durable=durable)
            if group.pattern != subject:
                raise ValueError(
                    f"durable {durable!r} already consumes {group.pattern!r}, not {subject!r}"
                )
            self._durables[durable] = group
        name = f"bus:{durable or 'fanout'}:{subject}"
        group.workers.append(asyncio.create_task(self._work(group, handler), name=name))

    async def _work(self, group: _Group, handler: Handler) -> None:
        while True:
            delivery = await group.queue.get()
            delivery.attempts += 1
            message = delivery.message
            if delivery.attempts > 1:
                headers = {**message.headers, "Watchfloor-Delivery": str(delivery.attempts)}
                message = Message(message.subject, message.data, message.msg_id, headers)
            try:
                await handler(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = min(self.retry_cap, self.retry_base * 2 ** (delivery.attempts - 1))
                log.exception(
                    "handler for %s (%s) failed on %s (attempt %d); retrying in %.2fs",
                    group.pattern,
                    group.durable or "fan-out",
                    message.subject,
                    delivery.attempts,
                    delay,
                )
                self._retry_later(group, delivery, delay)
            else:
                if delivery.tracker is not None:
                    delivery.tracker.one_done()
                self._settled()

    def _retry_later(self, group: _Group, delivery: _Delivery, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def _again() -> None:
            self._retry_handles.discard(handle)
            if not self._closed:
                group.queue.put_nowait(delivery)

        handle = loop.call_later(delay, _again)
        self._retry_handles.add(handle)

    async def wait_idle(self, seconds: float = 10.0) -> None:
        """Wait until every delivered message has been handled (tests; graceful stop)."""
        await asyncio.wait_for(self._idle.wait(), seconds)
