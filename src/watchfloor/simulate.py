"""`watchfloor simulate`: a separate process that plays a realistic device stream.

It reads the organisation's facilities and devices from the database, then sends, over HTTP
batches (`POST /api/v1/events/batch` with a device token) or MQTT
(`watchfloor/<facility>/<device>/event`):

- a heartbeat from every device at half its supervision interval, spread out so they do not
  arrive all at once (a device is never reported offline while the simulator runs);
- background traffic at `--rate` events per second: door traffic (held-open doors now and then),
  card readers refusing a credential, motion and people seen by cameras and sensors;
- occasional incidents: a forced door or a glass break every few minutes, and rarely a panic
  press (about one an hour at the default rate), so the watch floor has something to handle.

Without `--token` it creates its own device token (role "device", organisation-wide, named
"demo-simulator") in the database named by the usual WATCHFLOOR_DATABASE_URL, revoking the
simulator tokens minted before it, so repeated `watchfloor demo` starts do not pile them up.
Times are real: the simulator is a demo.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger("watchfloor.simulate")

DEFAULT_SUPERVISION = 200
TICK_SECONDS = 0.25
BATCH_MAX = 500
#: chance per second of an incident-worthy event anywhere in the organisation
INCIDENT_PER_SECOND = 1 / 150
PANIC_SHARE = 0.08  # of those incidents, how many are panic presses
FIRST_INCIDENT_AFTER = 20.0  # seconds: the demo floor shows an incident early


@dataclass
class SimDevice:
    facility: str
    code: str
    kind: str
    interval: int
    next_beat: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.facility}/{self.code}"


@dataclass
class Stats:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failures: int = 0
    incidents: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"sent {self.sent} events ({self.accepted} accepted, {self.rejected} rejected, "
            f"{self.failures} failed sends), {self.incidents} incident events"
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Scenario:
    """Chooses what happens next. Seeded for repeatable runs."""

    def __init__(self, devices: list[SimDevice], rate: float, seed: int | None = None) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.devices = devices
        self.rate = max(0.0, rate)
        self.by_kind: dict[str, list[SimDevice]] = {}
        for d in devices:
            self.by_kind.setdefault(d.kind, []).append(d)
        start = time.monotonic()
        for d in devices:  # spread the first heartbeats over half an interval
            d.next_beat = start + self.rng.uniform(0, max(1.0, d.interval / 2))
        self.seq = 0
        self.elapsed = 0.0
        self.opened = False

    def _pick(self, *kinds: str) -> SimDevice | None:
        pool = [d for k in kinds for d in self.by_kind.get(k, [])]
        return self.rng.choice(pool) if pool else None

    def _event(self, device: SimDevice, type_: str, attrs: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {
            "device": device.ref,
            "type": type_,
            "occurred_at": now_iso(),
            "idempotency_key": f"sim-{int(time.time() * 1000)}-{self.seq}",
            "attributes": attrs,
        }

    def heartbeats(self, now: float) -> list[dict[str, Any]]:
        out = []
        for d in self.devices:
            if d.next_beat <= now:
                d.next_beat = now + max(1.0, d.interval / 2)
                out.append(
                    self._event(
                        d,
                        "device.heartbeat",
                        {"uptime_seconds": int(now), "firmware": "sim-1.0"},
                    )
                )
        return out

    def background(self, seconds: float) -> list[dict[str, Any]]:
        count = self._poisson(self.rate * seconds)
        out = []
        for _ in range(count):
            roll = self.rng.random()
            if roll < 0.45:
                d = self._pick("camera", "sensor")
                if d:
                    if d.kind == "camera" and self.rng.random() < 0.5:
                        attrs: dict[str, Any] = {
                            "confidence": round(self.rng.uniform(0.5, 0.99), 2),
                            "count": 1,
                        }
                        out.append(self._event(d, "person.detected", attrs))
                    else:
                        out.append(self._event(d, "motion.detected", {"count": 1}))
            elif roll < 0.93:
                d = self._pick("door", "reader")
                if d and d.kind == "reader" and self.rng.random() < 0.3:
                    reason = self.rng.choice(["expired", "schedule", "unknown", "pin"])
                    attrs = {"reason": reason}
                    out.append(self._event(d, "reader.access_denied", attrs))
                elif d and d.kind == "door" and self.rng.random() < 0.05:
                    held = round(self.rng.uniform(31, 120), 1)
                    out.append(self._event(d, "door.held_open", {"held_seconds": held}))
                elif d:
                    out.append(self._event(d, "device.heartbeat", {"firmware": "sim-1.0"}))
            else:
                d = self._pick("camera", "sensor", "door")
                if d:
                    out.append(self._event(d, "device.heartbeat", {"firmware": "sim-1.0"}))
        return out

    def incidents(self, seconds: float) -> list[dict[str, Any]]:
        out = []
        self.elapsed += seconds
        if not self.opened and self.elapsed >= FIRST_INCIDENT_AFTER:
            # something to look at soon after the demo starts
            self.opened = True
            d = self._pick("door", "sensor", "camera")
            if d:
                out.append(self._event(d, "door.forced" if d.kind == "door" else "glass.break", {}))
        for _ in range(self._poisson(INCIDENT_PER_SECOND * seconds)):
            roll = self.rng.random()
            if roll < PANIC_SHARE:
                d = self._pick("panic_button")
                if d:
                    out.append(self._event(d, "panic.pressed", {"silent": True}))
            elif roll < 0.6:
                d = self._pick("door")
                if d:
                    out.append(self._event(d, "door.forced", {}))
            else:
                d = self._pick("sensor", "camera")
                if d:
                    out.append(self._event(d, "glass.break", {}))
        return out

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        # Knuth for small means; normal approximation for large ones
        if lam > 30:
            return max(0, int(self.rng.gauss(lam, lam**0.5) + 0.5))
        limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1


Sender = Callable[[list[dict[str, Any]]], "asyncio.Future[None] | Any"]


class HttpSender:
    def __init__(self, url: str, token: str, stats: Stats) -> None:
        self.client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        self.stats = stats

    async def send(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), BATCH_MAX):
            chunk = events[start : start + BATCH_MAX]
            self.stats.sent += len(chunk)
            try:
                resp = await self.client.post("/api/v1/events/batch", json={"events": chunk})
            except httpx.HTTPError as exc:
                self.stats.failures += len(chunk)
                log.warning("the server did not answer (%s); retrying with the next batch", exc)
                continue
            if resp.status_code >= 400 and resp.status_code != 207:
                self.stats.rejected += len(chunk)
                log.warning("batch refused: %s %s", resp.status_code, resp.text[:300])
                continue
            body = resp.json()
            self.stats.accepted += int(body.get("accepted", 0)) + int(body.get("duplicates", 0))
            self.stats.rejected += int(body.get("rejected", 0))

    async def close(self) -> None:
        await self.client.aclose()


class MqttSender:
    def __init__(self, url: str, stats: Stats) -> None:
        self.url = url
        self.stats = stats
        self.client: Any = None

    async def open(self) -> None:
        from urllib.parse import urlparse

        import aiomqtt

        parts = urlparse(self.url)
        self.client = aiomqtt.Client(
            hostname=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            username=parts.username,
            password=parts.password,
        )
        await self.client.__aenter__()

    async def send(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            facility, device = e["device"].split("/", 1)
            payload = {k: v for k, v in e.items() if k != "device"}
            self.stats.sent += 1
            try:
                await self.client.publish(
                    f"watchfloor/{facility}/{device}/event", json.dumps(payload), qos=1
                )
                self.stats.accepted += 1
            except Exception as exc:  # the broker went away: count it, keep playing
                self.stats.failures += 1
                log.warning("MQTT publish failed: %s", exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.__aexit__(None, None, None)


async def load_devices(facility_codes: list[str] | None = None) -> list[SimDevice]:
    """Every device of the organisation (or of the given facilities) with its interval."""
    from sqlalchemy import select

    from watchfloor.config import get_settings
    from watchfloor.db import make_engine, make_sessionmaker
    from watchfloor.events.models import SupervisionSetting
    from watchfloor.sites.models import Device, Facility

    settings = get_settings()
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db:
            kinds = {s.kind: s.seconds for s in (await db.scalars(select(SupervisionSetting)))}
            query = select(Device, Facility.code).join(Facility, Facility.id == Device.facility_id)
            if facility_codes:
                query = query.where(Facility.code.in_(facility_codes))
            rows = (await db.execute(query.order_by(Facility.code, Device.code))).all()
            default = int(getattr(settings, "supervision_default_seconds", DEFAULT_SUPERVISION))
            return [
                SimDevice(
                    facility=code,
                    code=d.code,
                    kind=d.kind,
                    interval=int(d.supervision_seconds or kinds.get(d.kind) or default),
                )
                for d, code in rows
                if d.status != "disabled"
            ]
    finally:
        await engine.dispose()


SIMULATOR_TOKEN_NAME = "demo-simulator"  # noqa: S105 - a token's name, not a secret
SIMULATOR_ACTOR = "system:simulate"


async def mint_simulator_token(db: Any, clock: Any) -> str:
    """A fresh organisation-wide device token named "demo-simulator"; the simulator tokens minted
    before it are revoked (audited), so each `watchfloor demo` start leaves exactly one working
    simulator token instead of piling them up. The secret is kept nowhere but in the simulator
    process's memory. Flushes; the caller commits."""
    from sqlalchemy import or_, select

    from watchfloor.auth import service as auth_service
    from watchfloor.auth.models import ApiToken

    earlier = (
        await db.scalars(
            select(ApiToken.id).where(
                ApiToken.revoked_at.is_(None),
                or_(
                    ApiToken.name == SIMULATOR_TOKEN_NAME,
                    ApiToken.created_by == SIMULATOR_ACTOR,
                ),
            )
        )
    ).all()
    for token_id in earlier:
        await auth_service.revoke_token(db, clock, SIMULATOR_ACTOR, token_id)
    _token, secret = await auth_service.create_token(
        db,
        clock,
        SIMULATOR_ACTOR,
        name=SIMULATOR_TOKEN_NAME,
        role="device",
        scope=auth_service.ScopeSpec.org(),
    )
    return str(secret)


async def create_token() -> str:
    """The simulator's device token, minted in the database (see `mint_simulator_token`)."""
    from watchfloor.clock import SystemClock
    from watchfloor.config import get_settings
    from watchfloor.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as db:
            secret = await mint_simulator_token(db, SystemClock())
            await db.commit()
            return secret
    finally:
        await engine.dispose()


async def wait_for_server(url: str, limit_s: float = 60) -> bool:
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url.rstrip("/") + "/api/health")).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    return False


async def run(
    *,
    url: str,
    token: str | None,
    mqtt_url: str | None,
    rate: float,
    duration: float,
    seed: int | None = None,
    facilities: list[str] | None = None,
    report_every: float = 30.0,
) -> Stats:
    stats = Stats()
    devices = await load_devices(facilities)
    if not devices:
        log.error("no devices to simulate: load an organisation first (watchfloor demo)")
        return stats
    scenario = Scenario(devices, rate, seed)
    sender: HttpSender | MqttSender
    if mqtt_url:
        sender = MqttSender(mqtt_url, stats)
        await sender.open()
    else:
        if not await wait_for_server(url):
            log.error("no Watchfloor server answers at %s", url)
            return stats
        sender = HttpSender(url, token or await create_token(), stats)
    log.info(
        "simulating %d devices of %d facilities, %.1f background events/s, via %s",
        len(devices),
        len({d.facility for d in devices}),
        rate,
        "MQTT " + mqtt_url if mqtt_url else "HTTP " + url,
    )
    started = last = last_report = time.monotonic()
    try:
        while duration <= 0 or time.monotonic() - started < duration:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            elapsed, last = now - last, now
            batch = scenario.heartbeats(now) + scenario.background(elapsed)
            incidents = scenario.incidents(elapsed)
            for e in incidents:
                stats.incidents += 1
                log.info("incident: %s at %s", e["type"], e["device"])
            batch += incidents
            for e in batch:
                stats.by_type[e["type"]] = stats.by_type.get(e["type"], 0) + 1
            if batch:
                await sender.send(batch)
            if now - last_report >= report_every:
                last_report = now
                log.info(stats.line())
    finally:
        await sender.close()
    return stats
