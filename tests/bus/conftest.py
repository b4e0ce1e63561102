"""The bus contract suite runs on every implementation: MemoryBus always, NatsBus when
WATCHFLOOR_BUS_URL names a NATS server (CI's third run starts one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from watchfloor.bus.memory import MemoryBus

NATS_URL = os.environ.get("WATCHFLOOR_BUS_URL", "")
ON_NATS = NATS_URL.startswith("nats")

BusFactory = Callable[[], Awaitable[Any]]


@pytest.fixture(
    params=[
        "memory",
        pytest.param(
            "nats",
            marks=pytest.mark.skipif(
                not ON_NATS, reason="WATCHFLOOR_BUS_URL is unset: no NATS server to test against"
            ),
        ),
    ]
)
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """make_bus() -> a started bus. On NATS every bus made in one test shares that test's own
    stream and subject prefix (as several processes of one installation would)."""
    kind = request.param
    run = uuid.uuid4().hex[:10]
    made: list[Any] = []

    async def _make() -> Any:
        if kind == "memory":
            bus: Any = MemoryBus(retry_base=0.01, retry_cap=0.05)
        else:
            from watchfloor.bus.nats import NatsBus

            bus = NatsBus(
                NATS_URL, stream=f"WFBUS_{run}", prefix=f"b{run}.", retry_base=0.05, retry_cap=0.2
            )
        await bus.start()
        made.append(bus)
        return bus

    yield _make
    for bus in reversed(made):
        await bus.close()
    if kind == "nats":
        from watchfloor.bus.nats import NatsBus

        cleaner = NatsBus(NATS_URL, stream=f"WFBUS_{run}", prefix=f"b{run}.")
        await cleaner.start()
        await cleaner.delete_stream()
        await cleaner.close()


@pytest.fixture
async def bus(make_bus: BusFactory) -> Any:
    return await make_bus()
