"""Dead-letter view and the rules editor."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

import httpx
from sqlalchemy import select

from watchfloor.alarms.defaults import ensure_defaults
from watchfloor.alarms.models import AlarmRule
from watchfloor.clock import FakeClock
from watchfloor.events.models import DeadLetter

from .console_seed import add_dead_letter


async def test_dead_letters_escape_raw_payload_and_are_scoped(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    async with sessionmaker() as db:
        evil = await add_dead_letter(
            db,
            clock,
            '{"type": "<script>alert(1)</script>", "device": "DOOR-1"}',
            "Unknown event type '<script>alert(1)</script>'",
            "DAL-FO",
        )
        boston = await add_dead_letter(db, clock, "not json at all", "Invalid JSON", "BOS-DC")
        orphan = await add_dead_letter(db, clock, "\x00binary", "Unknown facility", None)
        await db.commit()
    org = await make_token("operator", org=True)
    page = await client.get("/dead-letters", headers=org)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "not json at all" in page.text and "Unknown facility" in page.text
    dallas = await make_token("facility_manager", facility="DAL-FO")
    mine = await client.get("/dead-letters", headers=dallas)
    assert mine.status_code == 200
    assert "not json at all" not in mine.text and "Unknown facility" not in mine.text
    assert "alert(1)" in mine.text
    # resolving: out of scope answers like missing; in scope is recorded
    assert (
        await client.post(f"/dead-letters/{boston.id}/resolve", headers=dallas)
    ).status_code == 404
    assert (
        await client.post(f"/dead-letters/{orphan.id}/resolve", headers=dallas)
    ).status_code == 404
    done = await client.post(f"/dead-letters/{evil.id}/resolve", headers=dallas)
    assert done.status_code == 303
    async with sessionmaker() as db:
        letter = await db.get(DeadLetter, evil.id)
        assert letter is not None and letter.resolved_at is not None
    after = await client.get("/dead-letters", headers=dallas)
    assert "alert(1)" not in after.text  # resolved ones are hidden by default
    shown = await client.get("/dead-letters?resolved=1", headers=dallas)
    assert "alert(1)" in shown.text
    staff = await make_token("staff", facility="DAL-FO")
    assert (await client.get("/dead-letters", headers=staff)).status_code == 403


async def test_rules_page_lists_and_edits_for_allowed_roles(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    async with sessionmaker() as db:
        await ensure_defaults(db, clock)
        await db.commit()
        rule = (
            (
                await db.execute(
                    select(AlarmRule).where(
                        AlarmRule.facility_id.is_(None), AlarmRule.event_type == "glass.break"
                    )
                )
            )
            .scalars()
            .first()
        )
        assert rule is not None
    operator = await make_token("operator", org=True)
    page = await client.get("/rules", headers=operator)
    assert page.status_code == 200
    assert "panic.pressed" in page.text and "glass.break" in page.text
    assert f'action="/rules/{rule.id}"' not in page.text  # operators read, they do not edit
    refused = await client.post(f"/rules/{rule.id}", data={"priority": "3"}, headers=operator)
    assert refused.status_code == 403
    admin = await make_token("admin", org=True)
    page = await client.get("/rules", headers=admin)
    assert f'action="/rules/{rule.id}"' in page.text
    bad = await client.post(
        f"/rules/{rule.id}",
        data={"priority": "3", "enabled": "on", "conditions": "{not json"},
        headers=admin,
    )
    assert bad.status_code == 303 and "JSON" in unquote_plus(bad.headers["location"])
    wrong = await client.post(
        f"/rules/{rule.id}",
        data={"priority": "9", "enabled": "on", "conditions": "{}"},
        headers=admin,
    )
    assert "Priority" in wrong.headers["location"]
    saved = await client.post(
        f"/rules/{rule.id}",
        data={"priority": "3", "conditions": '{"schedule": "outside_hours"}'},
        headers=admin,
    )
    assert saved.status_code == 303
    assert re.search(r"saved", saved.headers["location"])
    async with sessionmaker() as db:
        fresh = await db.get(AlarmRule, rule.id)
        assert fresh is not None
        assert fresh.priority == 3 and fresh.enabled is False
        assert fresh.conditions.get("schedule") == "outside_hours"
    missing = await client.post("/rules/999999", data={"priority": "1"}, headers=admin)
    assert missing.status_code == 404
