"""Fixtures of the lockdown tests: a small estate with doors on two controllers per facility,
the in-process door driver, and an engine whose backoff waits advance the fake clock."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lockdown_site import LockSite, build_lock_site  # noqa: E402

from watchfloor.clock import FakeClock  # noqa: E402
from watchfloor.config import Settings  # noqa: E402
from watchfloor.events.ingest import EventBatcher  # noqa: E402
from watchfloor.lockdown.drivers.memory import MemoryDoorDriver  # noqa: E402
from watchfloor.lockdown.engine import LockdownEngine  # noqa: E402


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with the in-process door driver (the runtime's engine uses it)."""
    return settings.model_copy(update={"doors_driver": "memory", "doors_timeout_seconds": 0.05})


@pytest.fixture
async def site(db, clock) -> LockSite:  # type: ignore[no-untyped-def]
    return await build_lock_site(db, clock)


@pytest.fixture
def driver() -> MemoryDoorDriver:
    return MemoryDoorDriver(timeout=0.05)


class FakeSleep:
    """The engine's backoff: records each wait and moves the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.before: list = []  # callables run at each wait (change a door's behaviour)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds=seconds)
        if self.before:
            result = self.before.pop(0)()
            if hasattr(result, "__await__"):
                await result


@pytest.fixture
def fake_sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
async def batcher(sessionmaker, clock) -> AsyncIterator[EventBatcher]:  # type: ignore[no-untyped-def]
    b = EventBatcher(sessionmaker, clock)
    yield b
    await b.close()


@pytest.fixture
async def engine(sessionmaker, clock, driver, batcher, fake_sleep) -> AsyncIterator[LockdownEngine]:  # type: ignore[no-untyped-def]
    e = LockdownEngine(
        sessionmaker,
        clock,
        driver,
        max_attempts=4,
        retry_base_seconds=0.5,
        retry_max_seconds=5.0,
        submit_events=batcher.submit,
        sleep=fake_sleep,
    )
    yield e
    await e.close()
