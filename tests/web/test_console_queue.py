"""The watch-floor queue, the incident page and console actions (server-rendered pages)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.clock import FakeClock
from watchfloor.incidents.models import Incident

from .conftest import Login
from .console_seed import add_incident
from .seed import MANAGER_TOTP

ROW_RE = re.compile(r'<tr class="qrow[^"]*" data-id="(\d+)" data-priority="(\d)"')


async def _incidents(maker: async_sessionmaker[AsyncSession], clock: FakeClock) -> dict[str, int]:
    async with maker() as db:
        made = {
            "dal_p2": await add_incident(
                db, clock, "DAL-FO", 2, "Door forced: lobby", age_seconds=600, device_code="DOOR-1"
            ),
            "dal_p3": await add_incident(db, clock, "DAL-FO", 3, "Camera trouble", age_seconds=900),
            "bos_p1": await add_incident(
                db, clock, "BOS-DC", 1, "Panic button pressed", age_seconds=5
            ),
            "phx_p2_old": await add_incident(
                db, clock, "PHX-CH", 2, "Glass break", age_seconds=1200
            ),
            "dal_closed": await add_incident(
                db, clock, "DAL-FO", 1, "Old panic", age_seconds=9000, status="closed"
            ),
        }
        await db.commit()
        return {k: v.id for k, v in made.items()}


async def test_queue_lists_open_incidents_p1_first_then_oldest(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    ids = await _incidents(sessionmaker, clock)
    headers = await make_token("operator", org=True)
    page = await client.get("/watch", headers=headers)
    assert page.status_code == 200
    order = [int(i) for i, _ in ROW_RE.findall(page.text)]
    assert order == [ids["bos_p1"], ids["phx_p2_old"], ids["dal_p2"], ids["dal_p3"]]
    assert ids["dal_closed"] not in order
    # P1 shown with an icon and a word, not only a colour; facility local time; device named
    assert "Life safety" in page.text
    assert "Lobby front door" in page.text
    assert 'data-tz="America/New_York"' in page.text
    assert "Sound OFF" in page.text  # the visible toggle browsers need before sound


async def test_queue_shows_only_incidents_in_scope(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    ids = await _incidents(sessionmaker, clock)
    headers = await make_token("facility_manager", facility="DAL-FO")
    rows = await client.get("/watch/rows", headers=headers)
    assert rows.status_code == 200
    order = [int(i) for i, _ in ROW_RE.findall(rows.text)]
    assert order == [ids["dal_p2"], ids["dal_p3"]]
    assert "Boston" not in rows.text and "Panic button pressed" not in rows.text
    # another facility's incident page answers like a missing one
    other = await client.get(f"/incidents/{ids['bos_p1']}", headers=headers)
    assert other.status_code == 404
    assert "Panic button pressed" not in other.text
    mine = await client.get(f"/incidents/{ids['dal_p2']}", headers=headers)
    assert mine.status_code == 200
    assert "Door forced: lobby" in mine.text and "Dallas on-site security" in mine.text


async def test_queue_refused_without_alarm_role(
    client: httpx.AsyncClient, seeded: None, make_token
) -> None:
    headers = await make_token("responder", org=True)
    page = await client.get("/watch", headers=headers)
    assert page.status_code == 403
    assert (await client.get("/watch/rows", headers=headers)).status_code == 403
    assert (await client.get("/watch/stream", headers=headers)).status_code == 403
    anonymous = await client.get("/watch")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")


async def test_unknown_incident_is_a_page_not_a_crash(
    client: httpx.AsyncClient, seeded: None, make_token
) -> None:
    headers = await make_token("operator", org=True)
    assert (await client.get("/incidents/999999", headers=headers)).status_code == 404
    assert (await client.get("/incidents/-1", headers=headers)).status_code == 404
    assert (await client.get("/incidents/abc", headers=headers)).status_code in (404, 422)
    assert (
        await client.get("/incidents/99999999999999999999999", headers=headers)
    ).status_code in (
        404,
        422,
    )


async def test_acknowledge_with_the_session_form_and_csrf(
    client: httpx.AsyncClient, login: Login, sessionmaker, clock: FakeClock
) -> None:
    ids = await _incidents(sessionmaker, clock)
    csrf = await login("dallas", MANAGER_TOTP)
    target = ids["dal_p2"]
    # without the CSRF token the cookie alone is refused
    refused = await client.post(f"/incidents/{target}/action", data={"action": "acknowledge"})
    assert refused.status_code == 403
    done = await client.post(
        f"/incidents/{target}/action",
        data={"action": "acknowledge", "csrf_token": csrf, "next": "/watch"},
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/watch?done=")
    async with sessionmaker() as db:
        incident = await db.get(Incident, target)
        assert incident is not None
        assert incident.status == "acknowledged"
        assert incident.acknowledged_by == "user:dallas"
    # the keyboard path: fetch with JSON answer; acknowledging twice is a clear conflict
    again = await client.post(
        f"/incidents/{target}/action",
        data={"action": "acknowledge", "csrf_token": csrf},
        headers={"Accept": "application/json"},
    )
    assert again.status_code == 409
    assert "already acknowledged" in again.json()["message"]
    # another facility's incident cannot be acted on
    other = await client.post(
        f"/incidents/{ids['bos_p1']}/action",
        data={"action": "acknowledge", "csrf_token": csrf},
        headers={"Accept": "application/json"},
    )
    assert other.status_code == 404
    page = await client.get(f"/incidents/{target}")
    assert "Acknowledged" in page.text and "user:dallas" in page.text


async def test_incident_actions_note_dispatch_close(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    ids = await _incidents(sessionmaker, clock)
    headers = {**await make_token("operator", org=True), "Accept": "application/json"}
    target = ids["dal_p2"]
    url = f"/incidents/{target}/action"
    note = await client.post(
        url, data={"action": "note", "text": "<b>Called</b> the lobby"}, headers=headers
    )
    assert note.status_code == 200, note.text
    empty = await client.post(url, data={"action": "dispatch"}, headers=headers)
    assert empty.status_code == 422
    sent = await client.post(url, data={"action": "dispatch", "unit": "SEC"}, headers=headers)
    assert sent.status_code == 200, sent.text
    clock.advance(seconds=45)
    onscene = await client.post(url, data={"action": "on_scene", "unit": "SEC"}, headers=headers)
    assert onscene.status_code == 200, onscene.text
    no_cause = await client.post(
        url, data={"action": "close", "disposition": "false_alarm"}, headers=headers
    )
    assert no_cause.status_code == 422
    bad = await client.post(url, data={"action": "close", "disposition": "nope"}, headers=headers)
    assert bad.status_code == 422
    unknown = await client.post(url, data={"action": "explode"}, headers=headers)
    assert unknown.status_code == 422
    page = await client.get(f"/incidents/{target}", headers=headers)
    assert "&lt;b&gt;Called&lt;/b&gt; the lobby" in page.text  # notes are escaped
    assert "Dallas on-site security" in page.text
    closed = await client.post(
        url,
        data={"action": "close", "disposition": "false_alarm", "cause": "wind"},
        headers=headers,
    )
    assert closed.status_code == 200, closed.text
    rows = await client.get("/watch/rows", headers=headers)
    assert f'data-id="{target}"' not in rows.text


async def test_guard_of_one_facility_cannot_act_elsewhere_and_viewer_cannot_act(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    ids = await _incidents(sessionmaker, clock)
    viewer = {**await make_token("programme_manager", org=True), "Accept": "application/json"}
    page = await client.get(f"/incidents/{ids['dal_p2']}", headers=viewer)
    assert page.status_code == 200
    assert "not let you act" in page.text
    refused = await client.post(
        f"/incidents/{ids['dal_p2']}/action", data={"action": "acknowledge"}, headers=viewer
    )
    assert refused.status_code == 403


async def test_health_banner_shows_a_stalled_scheduler_to_every_operator(
    client: httpx.AsyncClient, seeded: None, sessionmaker, clock: FakeClock, make_token
) -> None:
    from datetime import timedelta

    from watchfloor.incidents.models import SchedulerBeat

    headers = await make_token("operator", facility="BOS-DC")
    healthy = await client.get("/watch", headers=headers)
    assert "System problem" not in healthy.text
    async with sessionmaker() as db:
        db.add(
            SchedulerBeat(
                name="escalation",
                last_beat_at=clock.now() - timedelta(seconds=45),
                process="host:1",
            )
        )
        await db.commit()
    page = await client.get("/watch", headers=headers)
    assert "System problem" in page.text and "stalled" in page.text
    rows = await client.get("/watch/rows", headers=headers)  # the live refresh carries it too
    assert "System problem" in rows.text
