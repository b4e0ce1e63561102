"""Fixtures of the panic tests: two facilities, people, and logged-in browser-like clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pyotp
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.auth import service as auth_service
from watchfloor.auth.models import User
from watchfloor.clock import FakeClock
from watchfloor.people.models import Person
from watchfloor.sites.models import Facility, Organisation, Region, Zone

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def panic_sites(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> dict[str, int]:
    """Facilities PAN-1 (zone LOBBY) and PAN-2; ids by code (zone as "PAN-1/LOBBY")."""
    now = clock.now()
    async with sessionmaker() as db:
        org = Organisation(code="ORG", name="Agency", created_at=now, updated_at=now)
        region = Region(code="R", name="R", organisation=org, created_at=now, updated_at=now)
        f1 = Facility(
            code="PAN-1", name="Office One", region=region, created_at=now, updated_at=now
        )
        f2 = Facility(
            code="PAN-2", name="Office Two", region=region, created_at=now, updated_at=now
        )
        zone = Zone(
            facility=f1, code="LOBBY", name="Lobby", kind="lobby", created_at=now, updated_at=now
        )
        db.add_all([org, region, f1, f2, zone])
        await db.commit()
        return {"PAN-1": f1.id, "PAN-2": f2.id, "PAN-1/LOBBY": zone.id}


class Person_:
    """A logged-in person: their own cookie jar and CSRF header."""

    def __init__(self, client: httpx.AsyncClient, csrf: str, user_id: int, username: str) -> None:
        self.client = client
        self.headers = {"X-CSRF-Token": csrf}
        self.user_id = user_id
        self.username = username

    async def post(self, url: str, json: object) -> httpx.Response:
        return await self.client.post(url, json=json, headers=self.headers)

    async def put(self, url: str, json: object) -> httpx.Response:
        return await self.client.put(url, json=json, headers=self.headers)


LogIn = Callable[..., Awaitable[Person_]]


@pytest.fixture
async def log_in(app, sessionmaker, clock, panic_sites) -> AsyncIterator[LogIn]:  # type: ignore[no-untyped-def]
    """log_in(username, grants=[(role, ScopeSpec)], person_at=CODE|None) -> a logged-in Person_."""
    clients: list[httpx.AsyncClient] = []

    async def _log_in(
        username: str,
        grants: list[tuple[str, auth_service.ScopeSpec]],
        *,
        person_at: str | None = None,
    ) -> Person_:
        secret = pyotp.random_base32()
        async with sessionmaker() as db:
            user = await auth_service.create_user(
                db,
                clock,
                "system:test",
                username=username,
                password=PASSWORD,
                display_name=username.title(),
                grants=grants,
                totp_secret=secret,
            )
            if person_at:
                now = clock.now()
                person = Person(
                    facility_id=panic_sites[person_at],
                    employee_id=f"E-{username}",
                    given_name=username.title(),
                    family_name="Tester",
                    contacts=[],
                    created_at=now,
                    updated_at=now,
                )
                db.add(person)
                await db.flush()
                (await db.get(User, user.id)).person_id = person.id  # type: ignore[union-attr]
            await db.commit()
            user_id = user.id
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001 + len(clients)))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        r = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf_token"]
        totp = pyotp.TOTP(secret)
        r = await client.post(
            "/api/v1/auth/mfa",
            json={"code": totp.generate_otp(totp.timecode(clock.now()))},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.text
        return Person_(client, csrf, user_id, username)

    yield _log_in
    for c in clients:
        await c.aclose()


@pytest.fixture
async def staff(log_in: LogIn) -> Person_:
    """Ana: staff at PAN-1 (her only grant), with codes 1234 (cancel) and 9876 (duress)."""
    ana = await log_in("ana", [("staff", auth_service.ScopeSpec.facility("PAN-1"))])
    r = await ana.put("/api/v1/panic/codes", {"cancel_code": "1234", "duress_code": "9876"})
    assert r.status_code == 200, r.text
    return ana
