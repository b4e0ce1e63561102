"""Fixtures of the auth tests: a small organisation, users, and log-in over the API."""

from __future__ import annotations

import pyotp
import pytest
from auth_helpers import PASSWORD, TestUser, seed_sites
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.auth import service
from watchfloor.clock import FakeClock


@pytest.fixture
async def sites(sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> dict[str, int]:
    async with sessionmaker() as db:
        ids = await seed_sites(db, clock)
        await db.commit()
    return ids


@pytest.fixture
def make_user(sessionmaker, clock, sites):  # type: ignore[no-untyped-def]
    """make_user(username, grants=[(role, ScopeSpec)], totp=True) -> TestUser."""

    async def _make(
        username: str,
        grants: list[tuple[str, service.ScopeSpec]] | None = None,
        *,
        totp: bool = True,
        password: str = PASSWORD,
    ) -> TestUser:
        secret = pyotp.random_base32() if totp else None
        async with sessionmaker() as db:
            user = await service.create_user(
                db,
                clock,
                "system:test",
                username=username,
                password=password,
                display_name=username.title(),
                grants=grants or [],
                totp_secret=secret,
            )
            await db.commit()
        return TestUser(id=user.id, username=user.username, totp_secret=secret)

    return _make


@pytest.fixture
def admin(make_user):  # type: ignore[no-untyped-def]
    async def _make(username: str = "root") -> TestUser:
        user: TestUser = await make_user(username, [("admin", service.ScopeSpec.org())])
        return user

    return _make
