"""What every bus promises (watchfloor.bus.Bus), run on MemoryBus and on NATS JetStream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bus_helpers import Inbox

from watchfloor.bus.memory import MemoryBus

WAIT = 10.0


async def settle(bus: Any) -> None:
    await bus.wait_idle(WAIT)


async def test_wildcards_route_by_subject(bus: Any) -> None:
    everything, one_facility, panics = Inbox(), Inbox(), Inbox()
    await bus.subscribe("event.>", "all-events", everything)
    await bus.subscribe("event.HQ.*", "hq-events", one_facility)
    await bus.subscribe("event.*.panic_pressed", "panics", panics)
    await bus.publish("event.HQ.door_forced", {"n": 1}, "m1")
    await bus.publish("event.FO-2.panic_pressed", {"n": 2}, "m2")
    await bus.publish("event.HQ.panic_pressed", {"n": 3}, "m3")
    await bus.publish("alarm.HQ.p1", {"n": 4}, "m4")
    await everything.wait_for(3)
    await one_facility.wait_for(2)
    await panics.wait_for(2)
    await settle(bus)
    assert everything.subjects == [
        "event.HQ.door_forced",
        "event.FO-2.panic_pressed",
        "event.HQ.panic_pressed",
    ]
    assert one_facility.subjects == ["event.HQ.door_forced", "event.HQ.panic_pressed"]
    assert panics.subjects == ["event.FO-2.panic_pressed", "event.HQ.panic_pressed"]
    got = everything.messages[1]
    assert got.data == {"n": 2} and got.msg_id == "m2"


async def test_a_failing_handler_gets_the_message_again(bus: Any) -> None:
    flaky = Inbox(fail_times=2)
    await bus.subscribe("alarm.>", "flaky", flaky)
    await bus.publish("alarm.HQ.p1", {"alarm_id": 7}, "a7")
    [message] = await flaky.wait_for(1)
    assert flaky.calls == 3
    assert message.data == {"alarm_id": 7} and message.msg_id == "a7"


async def test_a_failing_message_does_not_lose_the_ones_after_it(bus: Any) -> None:
    inbox = Inbox(fail_times=1)
    await bus.subscribe("incident.>", "incidents", inbox)
    await asyncio.gather(
        *(bus.publish(f"incident.HQ{i}.updated", {"i": i}, f"i{i}") for i in range(5))
    )
    await inbox.wait_for(5)
    assert sorted(m.data["i"] for m in inbox.messages) == [0, 1, 2, 3, 4]


async def test_durable_subscribers_share_the_work(bus: Any, make_bus: Any) -> None:
    # two processes of one installation (NATS) or two workers of one process (memory)
    other = bus if isinstance(bus, MemoryBus) else await make_bus()
    first, second = Inbox(), Inbox()
    await bus.subscribe("event.>", "alarms", first)
    await other.subscribe("event.>", "alarms", second)
    await asyncio.gather(*(bus.publish(f"event.F{i}.x", {"i": i}, f"e{i}") for i in range(40)))

    async def _all_in() -> None:
        while len(first.messages) + len(second.messages) < 40:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_all_in(), WAIT)
    await settle(bus)
    await settle(other)
    handled = [m.data["i"] for m in first.messages + second.messages]
    assert sorted(handled) == list(range(40)), "each message handled exactly once by the group"


async def test_fan_out_subscribers_each_get_every_message(bus: Any) -> None:
    console_a, console_b, worker = Inbox(), Inbox(), Inbox()
    await bus.subscribe("alarm.>", None, console_a)
    await bus.subscribe("alarm.>", None, console_b)
    await bus.subscribe("alarm.>", "notify", worker)
    for i in range(3):
        await bus.publish(f"alarm.HQ.p{i + 1}", {"i": i}, f"a{i}")
    for inbox in (console_a, console_b, worker):
        await inbox.wait_for(3)
    assert console_a.subjects == console_b.subjects == ["alarm.HQ.p1", "alarm.HQ.p2", "alarm.HQ.p3"]


async def test_fan_out_starts_from_the_time_it_subscribed(bus: Any) -> None:
    keeper = Inbox()
    await bus.subscribe("alarm.>", "keeper", keeper)
    await bus.publish("alarm.HQ.p1", {"i": 0}, "old")
    await keeper.wait_for(1)
    late = Inbox()
    await bus.subscribe("alarm.>", None, late)
    await bus.publish("alarm.HQ.p2", {"i": 1}, "new")
    await late.wait_for(1)
    await keeper.wait_for(2)
    await settle(bus)
    assert [m.msg_id for m in late.messages] == ["new"]


async def test_a_repeated_msg_id_is_delivered_once(bus: Any) -> None:
    inbox = Inbox()
    await bus.subscribe("notify.>", "notify", inbox)
    await bus.publish("notify.request", {"n": 1}, "same-id")
    await bus.publish("notify.request", {"n": 1}, "same-id")
    await bus.publish("notify.request", {"n": 2}, "other-id")
    await inbox.wait_for(2)
    await settle(bus)
    assert [m.msg_id for m in inbox.messages] == ["same-id", "other-id"]


async def test_durable_consumer_resumes_where_it_left_off(make_bus: Any, bus: Any) -> None:
    """NATS: a process that restarts with the same durable name gets what it missed."""
    if isinstance(bus, MemoryBus):
        pytest.skip("the memory bus lives and dies with its process")
    first = Inbox()
    await bus.subscribe("event.>", "alarms", first)
    await bus.publish("event.HQ.a", {"n": 1}, "r1")
    await first.wait_for(1)
    await settle(bus)
    await bus.close()  # the process stops
    publisher = await make_bus()
    await publisher.publish("event.HQ.b", {"n": 2}, "r2")  # published while it was down
    restarted = Inbox()
    again = await make_bus()
    await again.subscribe("event.>", "alarms", restarted)
    [message] = await restarted.wait_for(1)
    assert message.msg_id == "r2"


async def test_data_is_json_and_not_shared(bus: Any) -> None:
    inbox = Inbox()
    await bus.subscribe("event.>", "json", inbox)
    data: dict[str, Any] = {"attributes": {"zone": "lobby"}, "n": [1, 2]}
    await bus.publish("event.HQ.x", data, "j1")
    [message] = await inbox.wait_for(1)
    data["attributes"]["zone"] = "changed after publishing"
    assert message.data == {"attributes": {"zone": "lobby"}, "n": [1, 2]}


async def test_unserialisable_data_is_refused(bus: Any) -> None:
    with pytest.raises(TypeError):
        await bus.publish("event.HQ.x", {"when": object()}, "bad")
