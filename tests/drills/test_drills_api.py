"""The drills API: plan, run and end a drill with typed timings, participants, the after-action
report and its corrective actions; bad input is a 422 problem naming the field and writes
nothing; callers without the role or outside the facility's scope are refused; every change is
audited; every table exports as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from drills_site import fields, problem
from sqlalchemy import func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.clock import FakeClock
from watchfloor.drills.models import Drill, DrillSchedule


async def count(db: Any, model: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def _plan(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {
        "facility_code": "BOS-FO",
        "kind": "evacuation",
        "planned_at": "2026-01-06T15:00:00Z",
        **body,
    }
    resp = await client.post("/api/v1/drills", json=payload, headers=headers)
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def test_an_evacuation_drill_runs_with_typed_timings_and_an_after_action_report(
    client, make_token, estate, db, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    fm = await make_token("facility_manager", facility="BOS-FO", name="fm-bos")
    drill = await _plan(client, fm, partner_agencies=["Boston Fire"])
    assert drill["state"] == "planned" and drill["uses_lockdown"] is False
    url = f"/api/v1/drills/{drill['id']}"
    clock.advance(days=1, hours=3)
    started = (await client.post(url + "/start", headers=fm)).json()
    assert started["state"] == "running" and started["lockdown_id"] is None
    assert started["run_by"] == "token:fm-bos"
    clock.advance(minutes=12)
    timings = {
        "seconds_to_evacuated": 420,
        "seconds_to_accounted": 600,
        "safe_count": 40,
        "need_help_count": 0,
        "no_answer_count": 2,
    }
    ended = await client.post(
        url + "/end", json={"notes": "Stairwell B slow", "timings": timings}, headers=fm
    )
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert body["state"] == "completed" and body["timings_source"] == "typed"
    assert body["seconds_to_evacuated"] == 420 and body["safe_count"] == 40
    problem(await client.post(url + "/end", headers=fm), 409)  # already ended

    ext = await client.post(
        url + "/participants",
        headers=fm,
        json={"source": "external", "name": "Engine 7", "agency": "Boston Fire", "count": 4},
    )
    assert ext.status_code == 201, ext.text
    bad = problem(
        await client.post(
            url + "/participants", headers=fm, json={"source": "external", "name": "Crew"}
        ),
        422,
    )
    assert fields(bad) == ["agency"]
    report = await client.put(
        url + "/report",
        headers=fm,
        json={"worked": "Wardens swept every floor", "gaps": "Slow stairwell"},
    )
    assert report.status_code == 200 and report.json()["written_by"] == "token:fm-bos"
    action = await client.post(
        url + "/actions",
        headers=fm,
        json={
            "description": "Re-mark stairwell B",
            "owner": "Dana Facilities",
            "due_on": "2026-02-01",
        },
    )
    assert action.status_code == 201, action.text
    assert action.json()["state"] == "open" and action.json()["overdue"] is False

    detail = (await client.get(url, headers=fm)).json()
    assert [p["name"] for p in detail["participants"]] == ["Engine 7"]
    assert detail["report"]["gaps"] == "Slow stairwell"
    assert [a["description"] for a in detail["actions"]] == ["Re-mark stairwell B"]
    actions = {a.action for a in (await db.scalars(select(AuditRecord))).all()}
    assert {
        "drills.drill_planned",
        "drills.drill_started",
        "drills.drill_ended",
        "drills.participant_added",
        "drills.report_saved",
        "drills.action_added",
    } <= actions


async def test_corrective_actions_are_tracked_tasks_that_go_overdue(
    client, make_token, estate, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    fm = await make_token("facility_manager", facility="BOS-FO", name="fm-bos")
    drill = await _plan(client, fm, planned_at="2026-01-05T14:00:00Z")
    url = f"/api/v1/drills/{drill['id']}"
    await client.post(url + "/start", headers=fm)
    await client.post(url + "/end", headers=fm)
    # the drill was on 5 January (Boston): a due date before it is refused, naming the field
    early = problem(
        await client.post(
            url + "/actions",
            headers=fm,
            json={"description": "x", "owner": "y", "due_on": "2026-01-04"},
        ),
        422,
    )
    assert fields(early) == ["due_on"] and "2026-01-05" in early["detail"]
    later = (
        await client.post(
            url + "/actions",
            headers=fm,
            json={"description": "Fix door closer", "owner": "Sam", "due_on": "2026-01-20"},
        )
    ).json()
    sooner = (
        await client.post(
            url + "/actions",
            headers=fm,
            json={"description": "Retrain wardens", "owner": "Kim", "due_on": "2026-01-10"},
        )
    ).json()
    move = f"/api/v1/drills/actions/{sooner['id']}/move"
    moved = await client.post(move, json={"to": "in_progress"}, headers=fm)
    assert moved.status_code == 200 and moved.json()["state"] == "in_progress"
    # the last moment of 10 January in Boston: not overdue yet; a minute later it is
    clock.set(FakeClock().now().replace(day=11, hour=4, minute=59))
    board = (await client.get("/api/v1/drills/actions", headers=fm)).json()
    assert [(a["id"], a["overdue"]) for a in board] == [(sooner["id"], False), (later["id"], False)]
    clock.advance(minutes=1)
    board = (await client.get("/api/v1/drills/actions", headers=fm)).json()
    assert [(a["id"], a["overdue"]) for a in board][0] == (sooner["id"], True)
    comp = (await client.get("/api/v1/drills/compliance", headers=fm)).json()
    assert [a["id"] for a in comp["overdue_actions"]] == [sooner["id"]]
    done = (await client.post(move, json={"to": "done"}, headers=fm)).json()
    assert done["state"] == "done" and done["done_by"] == "token:fm-bos" and not done["overdue"]
    problem(await client.post(move, json={"to": "open"}, headers=fm), 409)  # done → reopen only
    board = (await client.get("/api/v1/drills/actions", headers=fm)).json()
    assert board[-1]["id"] == sooner["id"]  # done goes last


async def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
    client, make_token, estate, db
) -> None:  # type: ignore[no-untyped-def]
    pm = await make_token("programme_manager", org=True)
    good = {
        "facility_code": "NYC-FO",
        "kind": "active_shooter",
        "rrule": "FREQ=MONTHLY;INTERVAL=3",
        "anchor_local": "2026-01-15T10:00",
    }
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/drills/schedules", {**good, "rrule": "FREQ=FORTNIGHTLY"}, "rrule"),
        ("/api/v1/drills/schedules", {**good, "rrule": "not a rule"}, "rrule"),
        ("/api/v1/drills/schedules", {**good, "rrule": "FREQ=HOURLY"}, "rrule"),
        ("/api/v1/drills/schedules", {**good, "rrule": "FREQ=DAILY;BYHOUR=9,17"}, "rrule"),
        (
            "/api/v1/drills/schedules",
            {**good, "rrule": "FREQ=YEARLY;UNTIL=20250101T000000"},
            "rrule",
        ),
        (
            "/api/v1/drills/schedules",
            {**good, "rrule": "FREQ=MONTHLY;COUNT=1", "anchor_local": "2025-06-01T10:00"},
            "rrule",
        ),
        ("/api/v1/drills/schedules", {**good, "anchor_local": "2026-02-30T10:00"}, "anchor_local"),
        ("/api/v1/drills/schedules", {**good, "kind": "fire_dance"}, "kind"),
        ("/api/v1/drills/schedules", {**good, "facility_code": "NOPE-1"}, "facility_code"),
        (
            "/api/v1/drills",
            {"facility_code": "NYC-FO", "kind": "lockdown", "planned_at": "soon"},
            "planned_at",
        ),
        (
            "/api/v1/drills",
            {"facility_code": "NYC-FO", "kind": "lockdown", "planned_at": "2026-02-01T10:00:00"},
            "planned_at",
        ),
        (
            "/api/v1/drills",
            {"facility_code": "NYC-FO", "kind": "drill", "planned_at": "2026-02-01T10:00:00Z"},
            "kind",
        ),
        (
            "/api/v1/drills",
            {"facility_code": "NOWHERE", "kind": "lockdown", "planned_at": "2026-02-01T10:00:00Z"},
            "facility_code",
        ),
        (
            "/api/v1/drills",
            {"facility_code": 7, "kind": "lockdown", "planned_at": "2026-02-01T10:00:00Z"},
            "facility_code",
        ),
        (
            "/api/v1/drills",
            {
                "facility_code": "NYC-FO",
                "kind": "lockdown",
                "planned_at": "2026-02-01T10:00:00Z",
                "schedule_id": 999,
            },
            "schedule_id",
        ),
    ]
    for url, body, field in cases:
        resp = await client.post(url, json=body, headers=pm)
        got = problem(resp, 422)
        assert field in fields(got), (body, got)
    assert await count(db, DrillSchedule) == 0 and await count(db, Drill) == 0
    bad_req = problem(
        await client.put(
            "/api/v1/drills/requirements/active_shooter", json={"interval_months": 0}, headers=pm
        ),
        422,
    )
    assert fields(bad_req) == ["interval_months"]
    problem(
        await client.put(
            "/api/v1/drills/requirements/fire_dance", json={"interval_months": 3}, headers=pm
        ),
        422,
    )
    # a schedule that is fine is accepted and shows its next occurrences
    ok = await client.post("/api/v1/drills/schedules", json=good, headers=pm)
    assert ok.status_code == 201, ok.text
    assert len(ok.json()["next_occurrences"]) == 4


async def test_callers_without_the_role_or_outside_the_scope_are_refused(
    client, make_token, estate, db
) -> None:  # type: ignore[no-untyped-def]
    pm = await make_token("programme_manager", org=True)
    drill = await _plan(client, pm, facility_code="NYC-FO", kind="tabletop")
    url = f"/api/v1/drills/{drill['id']}"
    other = await make_token("facility_manager", facility="PHX-CH", name="fm-phx")
    problem(await client.get(url, headers=other), 404)
    problem(await client.post(url + "/start", headers=other), 404)
    body = {"facility_code": "NYC-FO", "kind": "tabletop", "planned_at": "2026-02-01T10:00:00Z"}
    assert fields(problem(await client.post("/api/v1/drills", json=body, headers=other), 422)) == [
        "facility_code"
    ]
    listed = (await client.get("/api/v1/drills", headers=other)).json()
    assert listed == []
    comp = (await client.get("/api/v1/drills/compliance", headers=other)).json()
    assert {r["facility_code"] for r in comp["rows"]} == {"PHX-CH"}
    assert "NYC-FO" not in (await client.get("/api/v1/drills.csv", headers=other)).text
    operator = await make_token("operator", org=True)  # drills:read, not drills:manage
    assert (await client.get(url, headers=operator)).status_code == 200
    problem(await client.post(url + "/start", headers=operator), 403)
    guard = await make_token("guard", facility="NYC-FO")  # no drills permission at all
    problem(await client.get(url, headers=guard), 403)
    problem(await client.get(url), 401)
    # requirements: organisation-wide drills:manage only
    fm = await make_token("facility_manager", facility="NYC-FO")
    req = {"interval_months": 6}
    problem(await client.put("/api/v1/drills/requirements/tabletop", json=req, headers=fm), 403)
    ok = await client.put("/api/v1/drills/requirements/tabletop", json=req, headers=pm)
    assert ok.status_code == 200 and ok.json()["interval_months"] == 6
    kinds = {
        r["kind"] for r in (await client.get("/api/v1/drills/requirements", headers=fm)).json()
    }
    assert "tabletop" in kinds
    assert await db.scalar(
        select(AuditRecord.id).where(AuditRecord.action == "drills.requirement_set")
    )


async def test_every_table_exports_as_csv_safe_from_formulas(client, make_token, estate) -> None:  # type: ignore[no-untyped-def]
    pm = await make_token("programme_manager", org=True)
    drill = await _plan(client, pm, title='=HYPERLINK("x")')
    url = f"/api/v1/drills/{drill['id']}"
    await client.post(url + "/start", headers=pm)
    await client.post(url + "/end", headers=pm)
    await client.post(url + "/participants", headers=pm, json={"source": "manual", "name": "Al"})
    await client.put(url + "/report", headers=pm, json={"worked": "ok", "gaps": "-none"})
    await client.post(
        url + "/actions",
        headers=pm,
        json={"description": "@fix", "owner": "Bo", "due_on": "2026-03-01"},
    )
    await client.post(
        "/api/v1/drills/schedules",
        headers=pm,
        json={
            "facility_code": "BOS-FO",
            "kind": "evacuation",
            "rrule": "FREQ=YEARLY",
            "anchor_local": "2026-03-01T09:00",
        },
    )
    for name, expect in (
        ("drills.csv", "'=HYPERLINK"),
        ("drills/participants.csv", "Al"),
        ("drills/reports.csv", "'-none"),
        ("drills/actions.csv", "'@fix"),
        ("drills/schedules.csv", "FREQ=YEARLY"),
        ("drills/requirements.csv", "active_shooter"),
        ("drills/compliance.csv", "never"),
    ):
        resp = await client.get(f"/api/v1/{name}", headers=pm)
        assert resp.status_code == 200, (name, resp.text)
        assert resp.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(resp.text)))
        assert len(rows) >= 2 and expect in resp.text, (name, resp.text[:300])
