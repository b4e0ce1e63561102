"""API tokens are resolved from a short in-process cache; a revocation still takes effect on the
very next request in this process."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.auth import deps
from watchfloor.auth import service as auth_service
from watchfloor.auth.models import ApiToken
from watchfloor.clock import FakeClock


async def test_revoked_token_is_refused_at_once(
    client: httpx.AsyncClient, make_token, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:  # type: ignore[no-untyped-def]
    admin = await make_token("admin", org=True)
    device = await make_token("device", org=True)
    # used twice: the second answer comes from the cache
    assert (await client.get("/api/v1/auth/me", headers=device)).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=device)).status_code == 200
    async with sessionmaker() as db:
        token_id = (
            await db.execute(select(ApiToken.id).order_by(ApiToken.id.desc()).limit(1))
        ).scalar_one()
    r = await client.delete(f"/api/v1/tokens/{token_id}", headers=admin)
    assert r.status_code == 204
    r = await client.get("/api/v1/auth/me", headers=device)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    # the admin's own token still works
    assert (await client.get("/api/v1/auth/me", headers=admin)).status_code == 200


async def test_revoked_through_the_service_is_refused_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    async with sessionmaker() as db:
        token, secret = await auth_service.create_token(
            db,
            clock,
            "system:test",
            name="feed",
            role="device",
            scope=auth_service.ScopeSpec.org(),
        )
        await db.commit()
        token_id = token.id
    async with sessionmaker() as db:
        first = await deps.principal_from_token(db, clock, secret, None)
        assert first is not None and first.id == token_id
        assert [g.role for g in first.grants] == ["device"]
        assert await deps.principal_from_token(db, clock, secret, None) is not None
    async with sessionmaker() as db:
        await auth_service.revoke_token(db, clock, "system:test", token_id)
        await db.commit()
    async with sessionmaker() as db:
        assert await deps.principal_from_token(db, clock, secret, None) is None
    async with sessionmaker() as db:
        assert await deps.principal_from_token(db, clock, "wf_unknown", None) is None


async def test_last_used_is_recorded(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    async with sessionmaker() as db:
        token, secret = await auth_service.create_token(
            db,
            clock,
            "system:test",
            name="feed",
            role="device",
            scope=auth_service.ScopeSpec.org(),
        )
        await db.commit()
        token_id = token.id
    async with sessionmaker() as db:
        assert await deps.principal_from_token(db, clock, secret, None) is not None
    async with sessionmaker() as db:
        used = await db.get(ApiToken, token_id)
        assert used is not None and used.last_used_at == clock.now()
