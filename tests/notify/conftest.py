"""Fixtures of the notify tests: a real SMTP peer (aiosmtpd), the stand-in SMS carrier, the
site, and a delivery engine on the test's FakeClock."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from watchfloor.config import Settings
from watchfloor.notify.delivery import DeliveryEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notify_site import Site, SmsCarrier, SmtpPeer, build_site  # noqa: E402

SMS_REPLY_TOKEN = "sms-reply-test-token-0123456789"


@pytest.fixture
def smtp_peer() -> Iterator[SmtpPeer]:
    peer = SmtpPeer()
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def sms_carrier() -> Iterator[SmsCarrier]:
    carrier = SmsCarrier()
    carrier.start()
    yield carrier
    carrier.stop()


@pytest.fixture
def settings(settings: Settings, smtp_peer: SmtpPeer, sms_carrier: SmsCarrier) -> Settings:
    return settings.model_copy(
        update={
            "notify_smtp_host": "127.0.0.1",
            "notify_smtp_port": smtp_peer.port,
            "notify_sms_url": sms_carrier.url,
            "notify_sms_reply_token": SMS_REPLY_TOKEN,
            "notify_smtp_timeout_seconds": 5.0,
            "notify_max_attempts": 3,
            "notify_retry_base_seconds": 10.0,
            "public_url": "https://watchfloor.example",
        }
    )


@pytest.fixture
async def site(db, clock) -> Site:  # type: ignore[no-untyped-def]
    return await build_site(db, clock)


@pytest.fixture
async def engine(app, clock) -> AsyncIterator[DeliveryEngine]:  # type: ignore[no-untyped-def]
    eng = DeliveryEngine(
        app.state.sessionmaker, clock, app.state.settings, secret_key=app.state.secret_key
    )
    yield eng
    await eng.close()
