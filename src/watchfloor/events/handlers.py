"""Bus subscriptions of the events domain: none.

Events are the start of the pipeline: they are published (through the outbox) by
`ingest.EventBatcher`, and consumed by the alarms domain. Device supervision and MQTT ingest are
background loops the runtime starts itself (`supervision.Supervisor`, `mqtt.MqttIngest`).
"""

from __future__ import annotations

from typing import Any


def register(runtime: Any) -> None:
    """Nothing to subscribe; kept so every domain registers the same way."""
    return None
