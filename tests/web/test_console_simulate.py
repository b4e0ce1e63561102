"""The demo simulator's scenario: heartbeats spread over each interval, traffic, incidents."""

from __future__ import annotations

import time

from watchfloor.events.catalogue import CATALOGUE
from watchfloor.events.schemas import EventIn
from watchfloor.simulate import Scenario, SimDevice


def _devices() -> list[SimDevice]:
    return [
        SimDevice("DAL-FO", "DOOR-1", "door", 200),
        SimDevice("DAL-FO", "READER-1", "reader", 200),
        SimDevice("DAL-FO", "PANIC-1", "panic_button", 60),
        SimDevice("DAL-FO", "CAM-1", "camera", 120),
        SimDevice("BOS-DC", "SENSOR-1", "sensor", 300),
    ]


def test_every_device_beats_within_half_its_interval_and_spread_out() -> None:
    devices = _devices()
    scenario = Scenario(devices, rate=0, seed=7)
    start = time.monotonic()
    seen: dict[str, list[float]] = {}
    # step through 10 simulated minutes, one second at a time
    for second in range(600):
        for e in scenario.heartbeats(start + second):
            seen.setdefault(e["device"], []).append(second)
    for d in devices:
        beats = seen[d.ref]
        assert beats[0] <= d.interval / 2 + 1, d.ref
        gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
        assert max(gaps) <= d.interval / 2 + 1, d.ref  # never silent past its supervision
    firsts = sorted(seen[d.ref][0] for d in devices)
    assert len(set(firsts)) > 1  # not all at once


def test_traffic_and_incidents_are_valid_catalogue_events() -> None:
    scenario = Scenario(_devices(), rate=200, seed=3)
    events = scenario.background(10.0)
    assert 1500 <= len(events) <= 2500  # ~rate x seconds
    incidents = []
    for _ in range(200):  # many simulated minutes: incidents happen now and then
        incidents += scenario.incidents(60.0)
    types = {e["type"] for e in events + incidents}
    assert {"motion.detected", "device.heartbeat", "reader.access_denied"} <= types
    assert {"door.forced", "glass.break"} & types
    assert "panic.pressed" in {e["type"] for e in incidents}
    keys = set()
    for e in events + incidents:
        parsed = EventIn.model_validate(e)  # the shape the ingest API accepts
        assert parsed.type in CATALOGUE
        model = CATALOGUE[parsed.type].attributes
        if model is not None:
            model.model_validate(parsed.attributes)
        assert not CATALOGUE[parsed.type].system_only
        assert parsed.device.count("/") == 1
        keys.add(parsed.idempotency_key)
    assert len(keys) == len(events) + len(incidents)  # never a false duplicate
    assert Scenario(_devices(), rate=0, seed=1).background(10.0) == []
