"""NATS JetStream implementation of the bus, for several API and worker processes.

- One stream (default "WATCHFLOOR", file storage) holds `event.>`, `alarm.>`, `incident.>` and
  `notify.>`; it is created, or updated to this configuration, on start. An optional subject
  prefix lets several installations (or test runs) share one server.
- `publish` waits for JetStream's acknowledgement (the message is stored) and sends the msg_id as
  `Nats-Msg-Id`, so the server drops a repeat within its duplicate window.
- A durable subscription is a pull consumer with explicit acknowledgement: processes using the same
  durable name share its messages. A message is acknowledged after the handler returns; a handler
  that raises gets it again after a back-off (negative acknowledgement with a delay). The ack wait
  is short (5 s) so that a message held by a process that died is redelivered quickly; a handler
  still working tells the server so ("in progress") every ack_wait / 3.
- `durable=None` is an ordered ephemeral consumer that delivers new messages only (live consoles);
  a failing handler is retried in-process with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from watchfloor.bus import Handler, Message, subject_token

log = logging.getLogger(__name__)

STREAM_SUBJECTS = (
    "event.>",
    "alarm.>",
    "cue.>",
    "incident.>",
    "notify.>",
    "lockdown.>",
    "rollcall.>",
)
MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass
class _Subscription:
    pattern: str
    durable: str | None
    handler: Handler
    task: asyncio.Task[None] | None = None
    psub: Any = None
    queue: asyncio.Queue[Msg] = field(default_factory=asyncio.Queue)
    busy: int = 0
    current: Msg | None = None  # the message its handler is working on (durable)
    keepalive: asyncio.Task[None] | None = None


class NatsBus:
    """`watchfloor.bus.Bus` over NATS JetStream."""

    publish_waits_for_handlers = False

    def __init__(
        self,
        url: str,
        *,
        stream: str = "WATCHFLOOR",
        prefix: str = "",
        subjects: tuple[str, ...] = STREAM_SUBJECTS,
        ack_wait: float = 5.0,
        retry_base: float = 0.2,
        retry_cap: float = 30.0,
        duplicate_window: float = 120.0,
        max_age: float = 7 * 86_400.0,
        fetch_batch: int = 100,
        publish_timeout: float = 5.0,
        client_name: str = "watchfloor",
    ) -> None:
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self.subjects = subjects
        self.ack_wait = ack_wait
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.duplicate_window = duplicate_window
        self.max_age = max_age
        self.fetch_batch = fetch_batch
        self.publish_timeout = publish_timeout
        self.client_name = client_name
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._subs: list[_Subscription] = []

    # --- connection and stream ---

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NatsBus.start() has not been called")
        return self._js

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=self.stream,
            subjects=[self.prefix + s for s in self.subjects],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            duplicate_window=self.duplicate_window,
            max_age=self.max_age,
        )

    async def start(self) -> None:
        if self._nc is not None:
            return

        async def _error(exc: Exception) -> None:
            log.warning("NATS connection error: %r", exc)

        async def _disconnected() -> None:
            log.warning("NATS disconnected from %s; reconnecting", self.url)

        async def _reconnected() -> None:
            log.info("NATS reconnected to %s", self.url)

        self._nc = await nats.connect(
            servers=[self.url],
            name=self.client_name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=_error,
            disconnected_cb=_disconnected,
            reconnected_cb=_reconnected,
        )
        self._js = self._nc.jetstream()
        config = self.stream_config()
        try:
            await self._js.add_stream(config)
        except BadRequestError:
            await self._js.update_stream(config)

    async def close(self) -> None:
        tasks = [t for s in self._subs for t in (s.task, s.keepalive) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sub in self._subs:
            if sub.psub is not None:
                with contextlib.suppress(Exception):
                    await sub.psub.unsubscribe()
        self._subs.clear()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = None
        self._js = None

    async def delete_stream(self) -> None:
        """Remove the stream and its consumers (test clean-up)."""
        with contextlib.suppress(NotFoundError):
            await self.js.delete_stream(self.stream)

    # --- publishing ---

    async def publish(self, subject: str, data: dict[str, Any], msg_id: str) -> None:
        await self.js.publish(
            self.prefix + subject,
            json.dumps(data, separators=(",", ":")).encode(),
            timeout=self.publish_timeout,
            stream=self.stream,
            headers={MSG_ID_HEADER: msg_id},
        )

    def _message(self, msg: Msg) -> Message:
        headers = dict(msg.headers or {})
        subject = msg.subject.removeprefix(self.prefix)
        msg_id = headers.get(MSG_ID_HEADER) or f"{self.stream}:{msg.metadata.sequence.stream}"
        return Message(subject=subject, data=json.loads(msg.data), msg_id=msg_id, headers=headers)

    def _delay(self, attempt: int) -> float:
        return float(min(self.retry_cap, self.retry_base * 2 ** max(0, attempt - 1)))

    # --- subscribing ---

    async def subscribe(self, subject: str, durable: str | None, handler: Handler) -> None:
        sub = _Subscription(pattern=subject, durable=durable, handler=handler)
        if durable is not None:
            name = subject_token(durable)
            sub.psub = await self.js.pull_subscribe(
                self.prefix + subject,
                durable=name,
                stream=self.stream,
                config=ConsumerConfig(
                    durable_name=name,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    max_deliver=-1,
                    deliver_policy=DeliverPolicy.ALL,
                    filter_subject=self.prefix + subject,
                ),
            )
            sub.task = asyncio.create_task(self._pull(sub), name=f"nats:{name}")
            sub.keepalive = asyncio.create_task(self._keepalive(sub), name=f"nats:{name}:wip")
        else:

            async def _on_message(msg: Msg) -> None:
                sub.queue.put_nowait(msg)

            sub.psub = await self.js.subscribe(
                self.prefix + subject,
                stream=self.stream,
                cb=_on_message,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )
            sub.task = asyncio.create_task(self._fanout(sub), name=f"nats:fanout:{subject}")
        self._subs.append(sub)

    async def _pull(self, sub: _Subscription) -> None:
        while True:
            try:
                msgs = await sub.psub.fetch(batch=self.fetch_batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fetching from durable %s failed; retrying", sub.durable)
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                sub.busy += 1
                sub.current = msg
                try:
                    await self._handle_durable(sub, msg)
                finally:
                    sub.current = None
                    sub.busy -= 1

    async def _keepalive(self, sub: _Subscription) -> None:
        """Tell the server a slow handler is still working, so it does not redeliver."""
        while True:
            seen = sub.current
            await asyncio.sleep(self.ack_wait / 3)
            if seen is not None and sub.current is seen:
                with contextlib.suppress(Exception):
                    await seen.in_progress()

    async def _handle_durable(self, sub: _Subscription, msg: Msg) -> None:
        try:
            message = self._message(msg)
        except Exception:
            log.exception("undecodable message on %s: terminated", msg.subject)
            with contextlib.suppress(Exception):
                await msg.term()
            return
        try:
            await sub.handler(message)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except Exception:
            attempt = msg.metadata.num_delivered or 1
            delay = self._delay(attempt)
            log.exception(
                "handler for %s (%s) failed on %s (attempt %d); redelivery in %.1fs",
                sub.pattern,
                sub.durable,
                message.subject,
                attempt,
                delay,
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=delay)
            return
        try:
            await msg.ack()
        except Exception:
            log.exception("acknowledging %s failed; it will be redelivered", message.msg_id)

    async def _fanout(self, sub: _Subscription) -> None:
        while True:
            msg = await sub.queue.get()
            sub.busy += 1
            try:
                try:
                    message = self._message(msg)
                except Exception:
                    log.exception("undecodable message on %s: skipped", msg.subject)
                    continue
                attempt = 0
                while True:
                    attempt += 1
                    try:
                        await sub.handler(message)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        delay = self._delay(attempt)
                        log.exception(
                            "fan-out handler for %s failed (attempt %d); retrying in %.1fs",
                            sub.pattern,
                            attempt,
                            delay,
                        )
                        await asyncio.sleep(delay)
            finally:
                sub.busy -= 1

    async def wait_idle(self, seconds: float = 10.0) -> None:
        """Wait until every durable consumer has nothing pending or unacknowledged and local
        handlers are done (tests; graceful stop)."""

        async def _idle() -> bool:
            for sub in self._subs:
                if sub.busy or not sub.queue.empty():
                    return False
                if sub.durable is not None:
                    info = await self.js.consumer_info(self.stream, subject_token(sub.durable))
                    if info.num_pending or info.num_ack_pending:
                        return False
            return True

        async def _loop() -> None:
            while not await _idle():  # noqa: ASYNC110 - polls the server's consumer state
                await asyncio.sleep(0.02)

        await asyncio.wait_for(_loop(), seconds)
