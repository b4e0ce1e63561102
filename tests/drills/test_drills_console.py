"""The drills console: the compliance page (most urgent first, tiles, chart), a facility's page
with its forms (plan a drill, add a schedule, refused rules named), a drill run from its page to
its after-action report and corrective actions, and scope on every page."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import select

from watchfloor.clock import FakeClock
from watchfloor.drills.models import Drill, DrillSchedule


def _tiles(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-status="(\w+)">(\d+)<', html)}


def _message(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 303, resp.text
    q = parse_qs(urlparse(resp.headers["location"]).query)
    return {k: v[0] for k, v in q.items()}


async def test_compliance_page_and_chart(
    client: httpx.AsyncClient, make_token, estate, db, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    pm = await make_token("programme_manager", org=True)
    page = await client.get("/drills", headers=pm)
    assert page.status_code == 200
    api = (await client.get("/api/v1/drills/compliance", headers=pm)).json()
    tiles = _tiles(page.text)
    assert {k: tiles[k] for k in api["counts"]} == api["counts"]
    assert tiles["never"] == 9  # 3 facilities × 3 required kinds, none held
    assert "Active shooter" in page.text and "every 3 months" in page.text
    statuses = re.findall(r'<tr class="[^"]*" data-status="(\w+)"', page.text)
    assert statuses == sorted(statuses, key=["overdue", "never", "due_soon", "compliant"].index)
    svg = await client.get("/drills/compliance.svg", headers=pm)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "Never held" in svg.text and "East" in svg.text
    west = await client.get("/drills?region=WEST", headers=pm)
    assert "Phoenix Courthouse" in west.text and "Boston Field Office" not in west.text


async def test_a_drill_from_plan_to_corrective_action_in_the_console(
    client: httpx.AsyncClient, make_token, estate, db, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    fm = await make_token("facility_manager", facility="BOS-FO", name="fm-bos")
    fac = await client.get("/drills/facilities/BOS-FO", headers=fm)
    assert fac.status_code == 200 and "Plan a drill" in fac.text
    # a schedule with a bad rule is refused naming the field; a good one is added
    bad = _message(
        await client.post(
            "/drills/facilities/BOS-FO/schedules",
            headers=fm,
            data={"kind": "evacuation", "rrule": "FREQ=HOURLY", "anchor_local": "2026-02-01T10:00"},
        )
    )
    assert "rrule" in bad["error"] and "daily" in bad["error"]
    ok = _message(
        await client.post(
            "/drills/facilities/BOS-FO/schedules",
            headers=fm,
            data={"kind": "evacuation", "rrule": "FREQ=YEARLY", "anchor_local": "2026-02-01T10:00"},
        )
    )
    assert ok["notice"] == "Schedule added."
    assert (await db.scalars(select(DrillSchedule))).one().rrule == "FREQ=YEARLY"
    fac = await client.get("/drills/facilities/BOS-FO", headers=fm)
    assert "2026-02-01 10:00 EST" in fac.text  # next occurrence in the facility's time zone

    nowhen = _message(
        await client.post(
            "/drills/facilities/BOS-FO/drills",
            headers=fm,
            data={"kind": "evacuation", "planned_local": "tomorrow"},
        )
    )
    assert "planned_at" in nowhen["error"]
    planned = await client.post(
        "/drills/facilities/BOS-FO/drills",
        headers=fm,
        data={"kind": "evacuation", "planned_local": "2026-01-06T09:00"},
    )
    assert planned.status_code == 303
    drill = (await db.scalars(select(Drill))).one()
    url = f"/drills/{drill.id}"
    assert planned.headers["location"].startswith(url)
    page = await client.get(url, headers=fm)
    assert "Start drill now" in page.text and "2026-01-06 09:00 EST" in page.text
    assert _message(await client.post(url, headers=fm, data={"action": "start"}))["notice"]
    clock.advance(minutes=9)
    bad_end = _message(
        await client.post(url, headers=fm, data={"action": "end", "minutes_to_evacuated": "six"})
    )
    assert "minutes_to_evacuated" in bad_end["error"]
    ended = _message(
        await client.post(
            url,
            headers=fm,
            data={
                "action": "end",
                "minutes_to_evacuated": "6",
                "safe_count": "31",
                "no_answer_count": "1",
            },
        )
    )
    assert "ended" in ended["notice"]
    page = await client.get(url, headers=fm)
    assert "6 min 00 s" in page.text and "31 safe" in page.text
    _message(
        await client.post(
            url,
            headers=fm,
            data={"action": "report", "worked": "Fast exit", "gaps": "Door 3 alarm silent"},
        )
    )
    early = _message(
        await client.post(
            url,
            headers=fm,
            data={
                "action": "corrective",
                "description": "Fix alarm",
                "owner": "Sam",
                "due_on": "2026-01-01",
            },
        )
    )
    assert "due_on" in early["error"]
    _message(
        await client.post(
            url,
            headers=fm,
            data={
                "action": "corrective",
                "description": "Fix alarm",
                "owner": "Sam",
                "due_on": "2026-01-12",
            },
        )
    )
    clock.set(clock.now() + timedelta(days=10))  # past 12 January in Boston
    board = await client.get("/drills/actions", headers=fm)
    assert "Fix alarm" in board.text and "Overdue" in board.text
    home = await client.get("/drills", headers=fm)
    assert "Overdue corrective actions" in home.text and _tiles(home.text)["overdue_actions"] == 1
    action_id = re.search(r'data-action="(\d+)"', board.text)
    assert action_id
    moved = _message(
        await client.post(
            f"/drills/actions/{action_id.group(1)}", headers=fm, data={"to": "done", "back": url}
        )
    )
    assert moved["notice"].endswith("Done.")
    page = await client.get(url, headers=fm)
    assert "Door 3 alarm silent" in page.text and "Overdue" not in page.text


async def test_pages_refuse_callers_outside_the_facility(
    client: httpx.AsyncClient, make_token, estate, db, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    pm = await make_token("programme_manager", org=True)
    await client.post(
        "/drills/facilities/NYC-FO/drills",
        headers=pm,
        data={"kind": "tabletop", "planned_local": "2026-01-06T09:00"},
    )
    drill = (await db.scalars(select(Drill))).one()
    phx = await make_token("facility_manager", facility="PHX-CH")
    assert (await client.get("/drills/facilities/NYC-FO", headers=phx)).status_code == 404
    assert (await client.get(f"/drills/{drill.id}", headers=phx)).status_code == 404
    resp = await client.post(f"/drills/{drill.id}", headers=phx, data={"action": "cancel"})
    assert resp.status_code == 404
    assert "New York" not in (await client.get("/drills", headers=phx)).text
    guard = await make_token("guard", facility="NYC-FO")
    assert (await client.get("/drills", headers=guard)).status_code == 403
    anon = await client.get("/drills")
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")
    db.expire_all()
    assert (await db.scalars(select(Drill))).one().state == "planned"
