"""Fixtures for the console page tests: a seeded organisation and a browser-like log-in."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
import pyotp
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import FakeClock

from .seed import PASSWORD, seed_org, seed_users

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


@pytest.fixture
async def seeded(sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    """The organisation (three facilities); tests that read pages use API tokens."""
    async with sessionmaker() as session:
        await seed_org(session, clock)
        await session.commit()


@pytest.fixture
async def accounts(
    seeded: None, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    """User accounts for the log-in tests (argon2 hashing makes these slower to create)."""
    async with sessionmaker() as session:
        await seed_users(session, clock)
        await session.commit()


Login = Callable[..., Awaitable[str]]


@pytest.fixture
def login(accounts: None, client: httpx.AsyncClient, clock: FakeClock) -> Login:
    """Log in through the pages as a browser would; returns the session's CSRF token."""

    async def _login(username: str, totp_secret: str, password: str = PASSWORD) -> str:
        page = await client.get("/login")
        assert page.status_code == 200
        resp = await client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"].startswith("/login/mfa")
        mfa = await client.get(resp.headers["location"])
        code = pyotp.TOTP(totp_secret).at(clock.now())
        done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
        assert done.status_code == 303, done.text
        clock.advance(seconds=31)  # the next log-in gets a fresh TOTP step
        home = await client.get("/")
        assert home.status_code == 200
        return csrf_of(home.text)

    return _login
