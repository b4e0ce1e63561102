"""The message bus: subjects like "event.<facility>.<kind>", at-least-once delivery, message ids.

Two implementations keep one contract: `memory.MemoryBus` (default, in-process) and
`nats.NatsBus` (NATS JetStream: durable consumers, explicit ack, redelivery). Messages that must
not be lost are written to the transactional outbox (`outbox.add`) in the same transaction as the
change that produced them; the relay publishes them. Handlers must be idempotent: a message may be
delivered more than once (use `outbox.first_delivery` in the handler's transaction).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    subject: str
    data: dict[str, Any]
    msg_id: str
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Message], Awaitable[None]]


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, subject: str, data: dict[str, Any], msg_id: str) -> None:
        """Publish durably (JetStream) or in-process; a repeated msg_id may be dropped as a dup."""
        ...

    async def subscribe(self, subject: str, durable: str | None, handler: Handler) -> None:
        """Deliver matching messages (NATS wildcards: `*` one token, `>` the rest) to `handler`
        in order, one at a time per subscription; a handler that raises gets the message again
        (with back-off). `durable` names a work-sharing consumer: processes using the same name
        share the messages, each handled once. `durable=None` is a fan-out subscription: every
        process gets every message, from the time it subscribed (live console streams)."""
        ...


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: tokens split on '.', '*' matches one token, '>' the rest."""
    p_tokens, s_tokens = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p_tokens):
        if tok == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (tok != "*" and tok != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)


def subject_token(value: str) -> str:
    """A value made safe as one subject token (facility codes may hold dots)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in value) or "_"
