"""The MQTT client id: configurable, and by default unique per process (host + pid), so two
processes never share a persistent session (no broker needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from watchfloor.config import Settings
from watchfloor.events.ingest import EventBatcher
from watchfloor.events.mqtt import MqttIngest, client_id_for, default_client_id


def test_default_id_names_host_and_process() -> None:
    cid = default_client_id()
    assert cid.startswith("watchfloor-") and cid.endswith(f"-{os.getpid()}")
    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname())
    assert cid.startswith(f"watchfloor-{host[:20]}")
    assert len(cid) <= 64
    assert all(c.isalnum() or c == "-" for c in cid)


def test_two_processes_never_share_the_default_id() -> None:
    code = "from watchfloor.events.mqtt import default_client_id; print(default_client_id())"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other.startswith("watchfloor-")
    assert other != default_client_id()


def test_configured_id_wins(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WATCHFLOOR_MQTT_CLIENT_ID", "watchfloor-api-1")
    settings = Settings(var_dir=tmp_path)
    assert settings.mqtt_client_id == "watchfloor-api-1"
    assert client_id_for(settings) == "watchfloor-api-1"
    assert client_id_for(settings, "explicit") == "explicit"
    monkeypatch.delenv("WATCHFLOOR_MQTT_CLIENT_ID")
    assert client_id_for(Settings(var_dir=tmp_path)) == default_client_id()
    assert client_id_for(None) == default_client_id()


def test_bridge_connects_with_its_own_persistent_session(sessionmaker, clock, settings) -> None:  # type: ignore[no-untyped-def]
    batcher = EventBatcher(sessionmaker, clock, max_wait_ms=0)
    configured = settings.model_copy(
        update={"mqtt_url": "mqtt://broker:1883", "mqtt_client_id": "wf-ingest-7"}
    )
    bridge = MqttIngest(sessionmaker, clock, batcher, configured)
    kwargs = bridge._client_kwargs()
    assert kwargs["identifier"] == "wf-ingest-7"
    assert kwargs["clean_session"] is False
    assert (kwargs["hostname"], kwargs["port"]) == ("broker", 1883)
    default = MqttIngest(sessionmaker, clock, batcher, settings, url="mqtt://broker")
    assert default._client_kwargs()["identifier"] == default_client_id()
