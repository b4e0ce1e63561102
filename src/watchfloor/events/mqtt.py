"""MQTT ingest: devices publish to `watchfloor/<facility>/<device>/event` on a Mosquitto broker.

Started by the runtime when `WATCHFLOOR_MQTT_URL` is set (mqtt://user:pass@host:1883, or
mqtts:// for TLS). The facility and device codes come from the topic; the payload is a UTF-8 JSON
object {type, occurred_at, idempotency_key?, attributes?} (see docs/events.md).

Authentication and authorisation on MQTT are the broker's job: give each device its own broker
account and an ACL that lets it publish only to its own topic (Mosquitto `acl_file`:
`user door-17` / `topic write watchfloor/DAL-FO/DOOR-17/event`). Watchfloor accepts topics only for
facilities and devices it knows: anything else is dead-lettered, as is every malformed payload.
Nothing a device sends can stop the bridge: errors are logged and the connection kept; a lost
connection is retried with back-off (1 s doubling to 30 s).

Client identity and durability. The session is persistent (clean_session=False, QoS 1): while
this process is disconnected the broker queues the messages of its subscription for its client id,
and hands them over when the same id connects again. Each process therefore needs a client id of
its own — two processes sharing one would take over each other's session (the broker disconnects
the older one) and the queued messages could reach either. The id is
`settings.mqtt_client_id` (WATCHFLOOR_MQTT_CLIENT_ID) when set, else `watchfloor-<host>-<pid>`:
unique per process, so a reconnect after a network blip gets what was queued meanwhile, but a
restarted process (new pid) starts a new session. For messages queued across restarts, give each
process a stable id of its own (e.g. `watchfloor-api-1`); see docs/events.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from urllib.parse import unquote, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.events import service
from watchfloor.events.ingest import EventBatcher, EventReceipt

log = logging.getLogger("watchfloor.mqtt")
TOPIC = "watchfloor/+/+/event"
MAX_IN_FLIGHT = 2000  # messages being written at once (they share group commits)


def default_client_id() -> str:
    """`watchfloor-<host>-<pid>`: never shared by two processes (MQTT allows 23+ characters;
    Mosquitto takes up to 65535; kept to 64 of [A-Za-z0-9-])."""
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())
    pid = str(os.getpid())
    return f"watchfloor-{host[: 64 - len(pid) - 12]}-{pid}"


def client_id_for(settings: Settings | None, explicit: str | None = None) -> str:
    """The MQTT client id of this process: explicit, else the setting, else the default."""
    configured = explicit or (settings.mqtt_client_id.strip() if settings is not None else "")
    return configured or default_client_id()


def parse_topic(topic: str) -> tuple[str, str]:
    """'watchfloor/<facility>/<device>/event' → (facility, device); InvalidEvent otherwise."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "watchfloor" or parts[3] != "event":
        raise service.InvalidEvent(
            f"topic '{topic[:200]}' is not watchfloor/<facility>/<device>/event"
        )
    if not parts[1] or not parts[2]:
        raise service.InvalidEvent("the topic names no facility or no device")
    return parts[1], parts[2]


class MqttIngest:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        batcher: EventBatcher,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        topic: str = TOPIC,
        client_id: str | None = None,
    ) -> None:
        self.url = url or (settings.mqtt_url if settings is not None else "")
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.batcher = batcher
        self.topic = topic
        self.client_id = client_id_for(settings, client_id)
        self.connected = asyncio.Event()
        self.received = 0
        self.accepted = 0
        self.dead_lettered = 0
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    # -- the testable core: one message in, an event or a dead letter out

    async def handle(self, topic: str, payload: bytes) -> EventReceipt | None:
        """Accept one message; None when it was dead-lettered. Never raises."""
        self.received += 1
        facility_id: int | None = None
        try:
            facility_code, device_code = parse_topic(topic)
            facility = await self.batcher.directory.facility(facility_code)
            if facility is None:
                raise service.InvalidEvent(f"no facility has the code '{facility_code[:60]}'")
            facility_id = facility.id
            device = await self.batcher.directory.device(facility.id, device_code)
            if device is None:
                raise service.InvalidEvent(
                    f"facility '{facility.code}' has no device '{device_code[:60]}'"
                )
            data = service.parse_mqtt_payload(payload)
            event = service.check_event(
                self.clock,
                facility=facility,
                device=device,
                type_=data.type,
                occurred_at=data.occurred_at,
                attributes=data.attributes,
                idempotency_key=data.idempotency_key,
                source="mqtt",
                sender=f"mqtt:{facility.code}/{device.code}",
            )
        except service.InvalidEvent as exc:
            await self._dead_letter(topic, payload, str(exc), facility_id)
            return None
        except Exception as exc:  # never let one message stop the bridge
            log.exception("MQTT message on %r could not be handled", topic[:200])
            await self._dead_letter(topic, payload, f"could not be handled: {exc!r}", facility_id)
            return None
        [receipt] = await self.batcher.submit([event])
        self.accepted += 1
        return receipt

    async def _dead_letter(
        self, topic: str, payload: bytes, reason: str, facility_id: int | None
    ) -> None:
        self.dead_lettered += 1
        try:
            async with self.sessionmaker() as db:
                service.record_dead_letter(
                    db,
                    self.clock,
                    source="mqtt",
                    raw=payload,
                    reason=reason,
                    sender="mqtt",
                    channel=topic,
                    facility_id=facility_id,
                )
                await db.commit()
        except Exception:
            log.exception("could not store a dead letter for MQTT topic %r", topic[:200])

    # -- the connection

    def _client_kwargs(self) -> dict[str, object]:
        parts = urlsplit(self.url)
        kwargs: dict[str, object] = {
            "hostname": parts.hostname or "127.0.0.1",
            "port": parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            "identifier": self.client_id,
            "clean_session": False,
        }
        if parts.username:
            kwargs["username"] = unquote(parts.username)
        if parts.password:
            kwargs["password"] = unquote(parts.password)
        if parts.scheme == "mqtts":
            kwargs["tls_context"] = ssl.create_default_context()
        return kwargs

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="mqtt-ingest")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def stop(self) -> None:
        await self.close()

    async def run(self) -> None:
        import aiomqtt

        if not self.url:
            raise RuntimeError("MQTT ingest needs a broker URL (WATCHFLOOR_MQTT_URL)")

        delay = 1.0
        while True:
            try:
                async with aiomqtt.Client(**self._client_kwargs()) as client:  # type: ignore[arg-type]
                    await client.subscribe(self.topic, qos=1)
                    self.connected.set()
                    log.info("MQTT ingest subscribed to %s", self.topic)
                    delay = 1.0
                    async for message in client.messages:
                        await self._slots.acquire()
                        payload = message.payload
                        if isinstance(payload, str):
                            raw = payload.encode("utf-8", errors="replace")
                        elif isinstance(payload, bytes | bytearray):
                            raw = bytes(payload)
                        else:
                            raw = str(payload).encode()
                        task = asyncio.create_task(self._handle_one(message.topic.value, raw))
                        self._in_flight.add(task)
                        task.add_done_callback(self._in_flight.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("MQTT connection lost (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _handle_one(self, topic: str, payload: bytes) -> None:
        try:
            await self.handle(topic, payload)
        except Exception:
            log.exception("MQTT event on %r was not stored", topic[:200])
        finally:
            self._slots.release()
