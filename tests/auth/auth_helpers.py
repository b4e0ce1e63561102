"""Helpers of the auth tests (imported by conftest and the test modules)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.clock import Clock, FakeClock
from watchfloor.sites.models import Facility, Organisation, Region

PASSWORD = "correct horse battery staple"


async def seed_sites(db: AsyncSession, clock: Clock) -> dict[str, int]:
    """Org ORG; region EAST (facilities F1, F2); region WEST (facility F3). Returns ids by code."""
    now = clock.now()
    org = Organisation(code="ORG", name="Test agency", created_at=now, updated_at=now)
    db.add(org)
    await db.flush()
    ids: dict[str, int] = {}
    for rcode, fcodes in (("EAST", ("F1", "F2")), ("WEST", ("F3",))):
        region = Region(
            organisation_id=org.id, code=rcode, name=rcode.title(), created_at=now, updated_at=now
        )
        db.add(region)
        await db.flush()
        ids[rcode] = region.id
        for fcode in fcodes:
            fac = Facility(
                region_id=region.id,
                code=fcode,
                name=f"Facility {fcode}",
                kind="field_office",
                timezone="UTC",
                population=0,
                floor_area_sqft=0,
                operating_hours={},
                created_at=now,
                updated_at=now,
            )
            db.add(fac)
            await db.flush()
            ids[fcode] = fac.id
    return ids


@dataclass
class TestUser:
    __test__ = False
    id: int
    username: str
    totp_secret: str | None


def code_at(secret: str, clock: FakeClock, offset: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(clock.now()) + offset)


async def login(
    client: httpx.AsyncClient, user: TestUser, clock: FakeClock, *, password: str = PASSWORD
) -> str:
    """Full log-in (password, then TOTP) on `client`'s cookie jar; returns the CSRF token."""
    r = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": password}
    )
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    assert user.totp_secret
    r = await client.post(
        "/api/v1/auth/mfa",
        json={"code": code_at(user.totp_secret, clock)},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    return str(csrf)
