"""The delivery engine: sends queued deliveries, records each outcome, retries with back-off,
falls back to the recipient's next channel, keeps per-provider rate limits.

How one delivery goes out (claim → send → mark)
-----------------------------------------------
1. **Claim**: in one transaction the engine moves due ``queued`` rows to ``sending``, stamping
   ``claimed_by`` (this engine) and ``claimed_at`` and counting the attempt, and commits. On
   PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED`` and the claim is conditional on
   the row still being queued, so several engines never claim the same row.
2. **Send**: each claimed delivery is handed to its channel. The delivery's ``key`` (one per
   alert, recipient and channel) goes with it: it is the e-mail ``Message-ID`` and, for webhook
   style providers, the ``X-Idempotency-Key`` header. Every attempt of a delivery carries the
   same key and the same text.
3. **Mark**: the outcome is written (``sent``; or back to ``queued`` with ``next_attempt_at`` for
   a retry; or ``failed`` after the last attempt, which moves the recipient's next channel from
   ``standby`` to ``queued``).

A crash between 1 and 3 leaves rows in ``sending``. The next engine pass (in any process) puts
them back to ``queued`` once their claimer is known to be gone (same host, process no longer
running; or an engine of this process that was closed) or the claim is older than
``notify_claim_lease_seconds``, and they are sent again **with the same key**. So a crash never
loses a message (every claimed row is either marked or re-sent), and never creates a second
*distinct* message: a recipient may at worst see the same message (same Message-ID) twice on one
channel, which mail clients and idempotent providers collapse. That is what "exactly one message
per channel attempt" means here; tests/notify/test_notifier_sigkill.py counts it at a real SMTP
peer by Message-ID.

Time is the injected clock: back-off, rate limits and leases compare ``clock.now()``; tests call
``tick()`` with a FakeClock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import quopri
import smtplib
import socket
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.utils import format_datetime, parseaddr
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import Clock, as_utc
from watchfloor.config import Settings
from watchfloor.notify import service
from watchfloor.notify.models import Alert, Delivery, DeliveryState

log = logging.getLogger("watchfloor.notify")

POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 900.0
APPRISE_CONCURRENCY = 32
MSGID_DOMAIN = "watchfloor"
_HOST = socket.gethostname()
_live_engines: set[str] = set()  # claim tokens of the engines running in this process


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """How long to wait after the `attempts`-th failed attempt."""
    return float(
        min(settings.notify_retry_base_seconds * (2 ** max(attempts - 1, 0)), MAX_BACKOFF_SECONDS)
    )


def message_id(key: str) -> str:
    return f"<{key}@{MSGID_DOMAIN}>"


@dataclass(frozen=True)
class Outgoing:
    """What a sender needs of one claimed delivery."""

    id: int
    alert_id: int
    channel: str
    address: str
    subject: str
    body: str
    key: str
    status: str  # the alert's CAP status
    attempts: int


@dataclass(frozen=True)
class Outcome:
    ok: bool
    provider_id: str = ""
    error: str = ""


class RateLimiter:
    """A token bucket per provider on the injected clock."""

    def __init__(self, rates: dict[str, float], clock: Clock) -> None:
        self.rates = rates
        self.clock = clock
        self._tokens: dict[str, float] = {}
        self._at: dict[str, datetime] = {}

    def rate(self, provider: str) -> float:
        return float(self.rates.get(provider, self.rates.get("default", 10.0)))

    def available(self, provider: str) -> int:
        rate = self.rate(provider)
        if rate <= 0:
            return 1_000_000
        burst = max(rate, 1.0)
        now = self.clock.now()
        last = self._at.get(provider)
        tokens = self._tokens.get(provider, burst)
        if last is not None:
            tokens = min(burst, tokens + max((now - last).total_seconds(), 0.0) * rate)
        self._tokens[provider], self._at[provider] = tokens, now
        return int(tokens)

    def take(self, provider: str, n: int) -> None:
        if self.rate(provider) > 0:
            self._tokens[provider] = self._tokens.get(provider, 0.0) - n


# -- e-mail: pooled SMTP connections in a thread pool ------------------------------------------


class SmtpPool:
    """smtplib in a small thread pool, one persistent SMTP connection per thread (Apprise opens
    a connection per message, too slow for a 10,000-recipient fan-out)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._conns: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.notify_smtp_connections, thread_name_prefix="wf-smtp"
        )

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.notify_smtp_security == "tls":
            conn = smtplib.SMTP_SSL(
                s.notify_smtp_host,
                s.notify_smtp_port,
                timeout=s.notify_smtp_timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            conn = smtplib.SMTP(
                s.notify_smtp_host, s.notify_smtp_port, timeout=s.notify_smtp_timeout_seconds
            )
            if s.notify_smtp_security == "starttls":
                conn.starttls(context=ssl.create_default_context())
        if s.notify_smtp_username:
            conn.login(s.notify_smtp_username, s.notify_smtp_password)
        with self._lock:
            self._conns.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock, contextlib.suppress(ValueError):
                self._conns.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()

    def _send(self, msg: Mail) -> Outcome:
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            try:
                if conn is None:
                    conn = self._local.conn = self._connect()
                conn.sendmail(msg.sender, [msg.to], msg.data)
                return Outcome(True, provider_id=msg.message_id)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()  # a pooled connection the server closed: reconnect once
                if attempt == 2:
                    return Outcome(False, error=f"SMTP server disconnected: {exc}")
            except smtplib.SMTPRecipientsRefused as exc:
                return Outcome(False, error=f"SMTP server refused the address: {exc.recipients}")
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code >= 500:
                    self._drop()
                else:
                    self._rset()
                return Outcome(False, error=f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}")
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                return Outcome(False, error=f"SMTP server unreachable: {exc}")
        return Outcome(False, error="SMTP send failed")  # pragma: no cover

    def _rset(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.rset()
            except Exception:  # noqa: BLE001 - a broken connection is dropped and reopened
                self._drop()

    async def send(self, msg: Mail) -> Outcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._send, msg)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            conns, self._conns = list(self._conns), []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.quit()


@dataclass(frozen=True)
class Mail:
    """One e-mail ready for SMTP: envelope sender, recipient, and the message bytes."""

    sender: str
    to: str
    data: bytes
    message_id: str


def _header_text(value: str) -> str:
    """A header value without line breaks (no header injection), RFC 2047-encoded if needed."""
    value = " ".join(value.replace("\r", " ").replace("\n", " ").split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def build_email(settings: Settings, item: Outgoing, body: str, now: datetime) -> Mail:
    """The alert e-mail: plain text, UTF-8, quoted-printable. Built directly as bytes (the
    email package's header registry costs about a millisecond a message, too slow for a
    10,000-recipient fan-out); every header value is stripped of line breaks."""
    to = _header_text(item.address)
    if not to.isascii() or " " in to or "@" not in to:
        raise ValueError(f"not an e-mail address: {item.address!r}")
    from_header = _header_text(settings.notify_smtp_from)
    envelope_from = parseaddr(settings.notify_smtp_from)[1] or from_header
    mid = message_id(item.key)
    headers = [
        ("From", from_header),
        ("To", to),
        ("Subject", _header_text(item.subject)),
        ("Message-ID", mid),
        ("Date", format_datetime(now)),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "quoted-printable"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Watchfloor-Alert", str(item.alert_id)),
        ("X-Watchfloor-Status", item.status),
        ("X-Watchfloor-Delivery", item.key),
    ]
    if item.status != "Actual":
        headers.append(("X-Watchfloor-Exercise", item.status))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode("ascii")
    text = quopri.encodestring(body.replace("\r\n", "\n").encode("utf-8")).replace(b"\n", b"\r\n")
    return Mail(envelope_from, to, head + b"\r\n" + text, mid)


# -- the engine --------------------------------------------------------------------------------


class DeliveryEngine:
    """Sends what is due. `tick()` does one pass (tests call it with a FakeClock); `run()` loops
    until `stop()`, woken early by `kick()` (a committed alert's outbox message does that)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        *,
        secret_key: str = "",
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.settings = settings
        self.secret_key = secret_key or settings.resolved_secret_key()
        self.token = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        _live_engines.add(self.token)
        self.limiter = RateLimiter(dict(settings.notify_rate_limits), clock)
        self._smtp: SmtpPool | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._apprise_sem = asyncio.Semaphore(APPRISE_CONCURRENCY)
        self._alert_created: dict[int, datetime] = {}
        self.sent = 0
        self.failed = 0

    # lifecycle ------------------------------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        self.stop()
        _live_engines.discard(self.token)
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            await asyncio.get_running_loop().run_in_executor(None, smtp.close)

    async def run(self, stopping: Any = None) -> None:
        """Loop until stopped (or `stopping()` returns True); errors are logged, never fatal."""
        while not self._stopping and not (stopping is not None and stopping()):
            try:
                busy = await self.tick()
            except Exception:  # noqa: BLE001 - the sender must survive anything
                log.exception("notify delivery pass failed")
                busy = 0
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    # one pass -------------------------------------------------------------------------------

    async def tick(self, max_rounds: int = 1000) -> int:
        """Recover abandoned claims, then claim, send and mark batches until nothing is due (or
        the rate limits stop it). Returns how many deliveries were attempted."""
        await self.recover()
        done = 0
        for _ in range(max_rounds):
            batch = await self.claim()
            if not batch:
                break
            await self.deliver(batch)
            done += len(batch)
        return done

    async def recover(self) -> int:
        """Put deliveries claimed by an engine that is gone (or whose lease ran out) back in the
        queue; they are sent again with the same key."""
        now = self.clock.now()
        lease = now - timedelta(seconds=self.settings.notify_claim_lease_seconds)
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(
                    select(Delivery.id, Delivery.claimed_by, Delivery.claimed_at).where(
                        Delivery.state == DeliveryState.SENDING
                    )
                )
            ).all()
            stale = [
                r.id
                for r in rows
                if r.claimed_by != self.token
                and (
                    r.claimed_at is None
                    or as_utc(r.claimed_at) <= lease
                    or _claimer_gone(r.claimed_by or "")
                )
            ]
            if not stale:
                return 0
            for start in range(0, len(stale), 500):
                await db.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_(stale[start : start + 500]),
                        Delivery.state == DeliveryState.SENDING,
                    )
                    .values(
                        state=DeliveryState.QUEUED,
                        next_attempt_at=now,
                        claimed_by=None,
                        claimed_at=None,
                        last_error="The sender stopped before recording the outcome; "
                        "sent again with the same message id.",
                    )
                    .execution_options(synchronize_session=False)
                )
            await db.commit()
        log.warning("re-queued %d deliveries left in flight by a stopped sender", len(stale))
        return len(stale)

    async def claim(self) -> list[Outgoing]:
        now = self.clock.now()
        providers = {
            ch: self.limiter.available(ch)
            for ch in ("email", "sms", *sorted(service.APPRISE_CHANNELS))
        }
        open_channels = [ch for ch, n in providers.items() if n > 0]
        if not open_channels:
            return []
        async with self.sessionmaker() as db:
            stmt = (
                select(Delivery.id, Delivery.channel)
                .where(
                    Delivery.state == DeliveryState.QUEUED,
                    Delivery.next_attempt_at <= now,
                    Delivery.channel.in_(open_channels),
                    Delivery.acknowledged_at.is_(None),
                )
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(self.settings.notify_batch)
            )
            if db.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await db.execute(stmt)).all()
            picked: list[int] = []
            for r in rows:
                if providers.get(r.channel, 0) > 0:
                    providers[r.channel] -= 1
                    self.limiter.take(r.channel, 1)
                    picked.append(r.id)
            if not picked:
                await db.rollback()
                return []
            await db.execute(
                update(Delivery)
                .where(Delivery.id.in_(picked), Delivery.state == DeliveryState.QUEUED)
                .values(
                    state=DeliveryState.SENDING,
                    claimed_by=self.token,
                    claimed_at=now,
                    attempts=Delivery.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            got = (
                await db.execute(
                    select(
                        Delivery.id,
                        Delivery.alert_id,
                        Delivery.channel,
                        Delivery.address,
                        Delivery.subject,
                        Delivery.body,
                        Delivery.key,
                        Delivery.attempts,
                        Alert.status,
                        Alert.created_at,
                    )
                    .join(Alert, Alert.id == Delivery.alert_id)
                    .where(
                        Delivery.id.in_(picked),
                        Delivery.claimed_by == self.token,
                        Delivery.state == DeliveryState.SENDING,
                    )
                )
            ).all()
            await db.commit()
        self._alert_created = {r.alert_id: r.created_at for r in got}
        return [
            Outgoing(
                id=r.id,
                alert_id=r.alert_id,
                channel=r.channel,
                address=r.address,
                subject=r.subject,
                body=r.body,
                key=r.key,
                status=r.status,
                attempts=r.attempts,
            )
            for r in got
        ]

    def full_body(self, item: Outgoing) -> str:
        """The message text with its acknowledgement link (the same on every attempt)."""
        created = self._alert_created.get(item.alert_id) or self.clock.now()
        expires = service.ack_expiry(created, self.settings.notify_ack_link_hours)
        link = service.ack_url(
            self.settings.public_url, service.ack_token(self.secret_key, item.id, expires)
        )
        if item.channel == "sms":
            return f"{item.body} Reply ACK to acknowledge, or open {link}"
        return f"{item.body}\n\nAcknowledge that you received this: {link}\n"

    async def deliver(self, batch: Sequence[Outgoing]) -> None:
        outcomes = await asyncio.gather(*(self._send_one(item) for item in batch))
        await self.mark(list(zip(batch, outcomes, strict=True)))

    async def _send_one(self, item: Outgoing) -> Outcome:
        try:
            body = self.full_body(item)
            if item.channel == "email":
                if self._smtp is None:
                    self._smtp = SmtpPool(self.settings)
                msg = build_email(self.settings, item, body, self.clock.now())
                return await self._smtp.send(msg)
            if item.channel == "sms":
                if not self.settings.notify_sms_url:
                    return Outcome(False, error="No SMS gateway is configured (notify_sms_url).")
                number = urllib.parse.quote(item.address, safe="")
                url = self.settings.notify_sms_url.replace("{number}", number)
                return await self._apprise(url, item, body)
            if item.channel in service.APPRISE_CHANNELS:
                return await self._apprise(item.address, item, body)
            return Outcome(False, error=f"Unknown channel '{item.channel}'.")
        except Exception as exc:  # noqa: BLE001 - one bad delivery must not stop the batch
            log.exception("delivery %s failed unexpectedly", item.id)
            return Outcome(False, error=f"Unexpected error: {exc!r}"[:500])

    async def _apprise(self, url: str, item: Outgoing, body: str) -> Outcome:
        import apprise

        scheme = url.split("://", 1)[0].lower()
        if scheme in {"json", "jsons", "form", "forms", "xml", "xmls"}:
            # webhook-style providers get the delivery key as an idempotency header
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}+X-Idempotency-Key={urllib.parse.quote(item.key)}"
        obj = apprise.Apprise()
        if not obj.add(url):
            return Outcome(False, error="Not a valid notification address (Apprise URL).")
        async with self._apprise_sem:
            ok = await obj.async_notify(body=body, title=item.subject)
        if ok:
            return Outcome(True, provider_id=item.key)
        return Outcome(False, error=f"The {scheme} provider refused or could not be reached.")

    async def mark(self, results: Sequence[tuple[Outgoing, Outcome]]) -> None:
        now = self.clock.now()
        sent, retry, failed = [], [], []
        for item, outcome in results:
            if outcome.ok:
                sent.append({"b_id": item.id, "b_pid": outcome.provider_id[:300]})
            elif item.attempts < self.settings.notify_max_attempts:
                retry.append(
                    {
                        "b_id": item.id,
                        "b_err": outcome.error[:2000],
                        "b_next": now
                        + timedelta(seconds=backoff_seconds(self.settings, item.attempts)),
                    }
                )
            else:
                failed.append({"b_id": item.id, "b_err": outcome.error[:2000]})
        self.sent += len(sent)
        self.failed += len(failed)
        t = Delivery.__table__  # Core executemany: one UPDATE statement per outcome kind
        assert isinstance(t, Table)
        mine = (
            (t.c.id == bindparam("b_id"))
            & (t.c.state == DeliveryState.SENDING)
            & (t.c.claimed_by == self.token)
        )
        async with self.sessionmaker() as db:
            if sent:
                await db.execute(
                    update(t)
                    .where(mine)
                    .values(
                        state=DeliveryState.SENT,
                        sent_at=now,
                        provider_message_id=bindparam("b_pid"),
                        last_error=None,
                        claimed_by=None,
                    ),
                    sent,
                )
            if retry:
                await db.execute(
                    update(t)
                    .where(mine)
                    .values(
                        state=DeliveryState.QUEUED,
                        next_attempt_at=bindparam("b_next"),
                        last_error=bindparam("b_err"),
                        claimed_by=None,
                    ),
                    retry,
                )
            if failed:
                await db.execute(
                    update(t)
                    .where(mine)
                    .values(
                        state=DeliveryState.FAILED,
                        failed_at=now,
                        next_attempt_at=None,
                        last_error=bindparam("b_err"),
                        claimed_by=None,
                    ),
                    failed,
                )
                await self._fall_back(db, [int(str(f["b_id"])) for f in failed], now)
            await self._settle_requests(db, {item.alert_id for item, _ in results})
            await db.commit()

    async def _fall_back(self, db: AsyncSession, failed_ids: list[int], now: datetime) -> None:
        """Queue each failed recipient's next channel (the next standby rank), if any."""
        rows = (
            await db.execute(
                select(
                    Delivery.alert_id, Delivery.recipient_kind, Delivery.recipient_id, Delivery.rank
                ).where(Delivery.id.in_(failed_ids))
            )
        ).all()
        for r in rows:
            nxt = (
                await db.execute(
                    select(Delivery.id)
                    .where(
                        Delivery.alert_id == r.alert_id,
                        Delivery.recipient_kind == r.recipient_kind,
                        Delivery.recipient_id == r.recipient_id,
                        Delivery.rank > r.rank,
                        Delivery.state == DeliveryState.STANDBY,
                        Delivery.acknowledged_at.is_(None),
                    )
                    .order_by(Delivery.rank)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if nxt is not None:
                await db.execute(
                    update(Delivery)
                    .where(Delivery.id == nxt, Delivery.state == DeliveryState.STANDBY)
                    .values(state=DeliveryState.QUEUED, next_attempt_at=now)
                    .execution_options(synchronize_session=False)
                )

    async def _settle_requests(self, db: AsyncSession, alert_ids: set[int]) -> None:
        """Escalation notification requests (incidents.NotificationRequest) follow their alert:
        'sent' once any recipient was reached, 'failed' when every channel of every recipient
        failed."""
        from watchfloor.incidents.models import NotificationRequest

        alerts = (
            await db.execute(
                select(Alert.id, Alert.idempotency_key).where(
                    Alert.id.in_(alert_ids), Alert.idempotency_key.like("notify-request-%")
                )
            )
        ).all()
        for alert_id, key in alerts:
            try:
                request_id = int(str(key).removeprefix("notify-request-"))
            except ValueError:
                continue
            counts = dict(
                (
                    await db.execute(
                        select(Delivery.state, func.count())
                        .where(Delivery.alert_id == alert_id)
                        .group_by(Delivery.state)
                    )
                ).all()
            )
            reached = counts.get(DeliveryState.SENT, 0) + counts.get(DeliveryState.DELIVERED, 0)
            pending = sum(
                counts.get(s, 0)
                for s in (DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.STANDBY)
            )
            status = "sent" if reached else ("failed" if not pending else None)
            if status:
                await db.execute(
                    update(NotificationRequest)
                    .where(NotificationRequest.id == request_id)
                    .values(status=status)
                    .execution_options(synchronize_session=False)
                )


def _claimer_gone(claimed_by: str) -> bool:
    """Whether the engine that claimed a row is certainly gone: an engine of this process that
    was closed, or a process on this host that no longer runs."""
    host, _, rest = claimed_by.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host != _HOST or not pid_text.isdigit():
        return False  # another host: only the lease can tell
    pid = int(pid_text)
    if pid == os.getpid():
        return claimed_by not in _live_engines
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


__all__ = ["DeliveryEngine", "Outcome", "Outgoing", "SmtpPool", "backoff_seconds"]
