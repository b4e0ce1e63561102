"""Helpers shared by the bus tests."""

from __future__ import annotations

import asyncio

from watchfloor.bus import Message

WAIT = 10.0


class Inbox:
    """A handler that records what it got; wait_for(n) returns once n messages have arrived."""

    def __init__(self, fail_times: int = 0) -> None:
        self.messages: list[Message] = []
        self.calls = 0
        self.fail_times = fail_times
        self._changed = asyncio.Condition()

    async def __call__(self, message: Message) -> None:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError(f"handler failure {self.calls}")
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[Message]:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.messages) >= count)

        await asyncio.wait_for(_wait(), WAIT)
        return self.messages

    @property
    def subjects(self) -> list[str]:
        return [m.subject for m in self.messages]
