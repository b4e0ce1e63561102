"""The demo simulator reuses one named token: each start revokes the simulator tokens minted
before it, so `watchfloor demo` restarts do not pile up working device tokens."""

from __future__ import annotations

from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.auth import service as auth_service
from watchfloor.auth.models import ApiToken
from watchfloor.simulate import SIMULATOR_TOKEN_NAME, mint_simulator_token


async def test_each_start_leaves_one_working_simulator_token(client, db, clock, make_token) -> None:  # type: ignore[no-untyped-def]
    # an older simulator token (before tokens were named) and an unrelated device token
    await auth_service.create_token(
        db,
        clock,
        "system:simulate",
        name="simulator 2026-01-01 10:00",
        role="device",
        scope=auth_service.ScopeSpec.org(),
    )
    await db.commit()
    other = await make_token("device", org=True, name="door-feed")

    secrets = []
    for _ in range(3):
        secrets.append(await mint_simulator_token(db, clock))
        await db.commit()
        clock.advance(seconds=60)

    tokens = (await db.scalars(select(ApiToken).order_by(ApiToken.id))).all()
    active_sim = [t for t in tokens if t.revoked_at is None and t.created_by == "system:simulate"]
    assert [t.name for t in active_sim] == [SIMULATOR_TOKEN_NAME]
    assert sum(1 for t in tokens if t.name == SIMULATOR_TOKEN_NAME) == 3
    assert next(t for t in tokens if t.name == "door-feed").revoked_at is None

    # only the newest secret works; the unrelated token still does
    body = {"events": [{"device": "X/Y", "type": "device.heartbeat", "occurred_at": "x"}]}
    for secret, works in zip(secrets, (False, False, True), strict=True):
        r = await client.post(
            "/api/v1/events/batch", json=body, headers={"Authorization": f"Bearer {secret}"}
        )
        assert (r.status_code != 401) is works, (works, r.status_code, r.text)
    r = await client.post("/api/v1/events/batch", json=body, headers=other)
    assert r.status_code != 401

    revokes = (
        await db.scalars(select(AuditRecord).where(AuditRecord.action == "token.revoke"))
    ).all()
    assert len(revokes) == 3  # the old-style one, then each superseded demo-simulator token
