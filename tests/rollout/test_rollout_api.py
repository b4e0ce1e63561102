"""Directives, tasks, waivers, the board and the scorecard through the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.clock import FakeClock
from watchfloor.rollout.models import Directive, RolloutTask

PROBLEM = "application/problem+json"


async def _issue(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"title": "Overhaul of all field offices", "selection": {"kind": "all"}, **body}
    return await client.post("/api/v1/directives", json=payload, headers=headers)


async def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_catalogue_is_seeded_with_the_overhaul_measures(client, make_token, estate) -> None:
    pm = await make_token("programme_manager", org=True)
    resp = await client.get("/api/v1/countermeasures", headers=pm)
    assert resp.status_code == 200
    by_code = {m["code"]: m for m in resp.json()}
    assert len(by_code) == 15
    assert by_code["ARMED-OFFICERS"]["deadline"] == "72h"
    assert by_code["DEESCALATION"]["deadline"] == "continuous"
    assert by_code["DEESCALATION"]["review_days"] == 365
    assert {m["deadline"] for m in by_code.values()} == {
        "immediate", "72h", "2w", "30d", "3m", "continuous"
    }  # fmt: skip


async def test_issue_generates_a_task_per_facility_and_measure(
    client, make_token, estate, db, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    preview = await client.post(
        "/api/v1/directives/preview",
        json={"title": "Overhaul", "selection": {"kind": "all"}},
        headers=pm,
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["task_count"] == 3 * 15
    assert await _count(db, Directive) == 0  # a preview writes nothing
    resp = await _issue(client, pm)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["task_count"] == 45 and body["facility_count"] == 3
    assert await _count(db, RolloutTask) == 45
    audit = (
        await db.scalars(
            select(AuditRecord).where(AuditRecord.action == "rollout.directive_issued")
        )
    ).all()
    assert len(audit) == 1 and audit[0].details["tasks"] == 45
    tasks = (await client.get("/api/v1/rollout/tasks?limit=1000", headers=pm)).json()
    armed = [t for t in tasks["items"] if t["measure_code"] == "ARMED-OFFICERS"]
    assert len(armed) == 3
    assert {t["due_at"][:19] for t in armed} == {
        (clock.now() + timedelta(hours=72)).isoformat()[:19]
    }


async def test_bad_directives_name_the_field_and_write_nothing(
    client, make_token, estate, db, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    future = (clock.now() + timedelta(days=2)).isoformat()
    cases = [
        ({"measures": ["ARMED-OFFICERS", "FLYING-CARS"]}, "measures", "FLYING-CARS"),
        ({"issued_at": future}, "issued_at", "future"),
        ({"selection": {"kind": "list", "facilities": []}}, "selection", "at least one"),
        ({"selection": {"kind": "list", "facilities": ["NOPE-1"]}}, "selection", "NOPE-1"),
        ({"selection": {"kind": "region", "regions": ["MARS"]}}, "selection", "MARS"),
        ({"measures": []}, "measures", "at least one"),
    ]
    for body, field, words in cases:
        resp = await _issue(client, pm, **body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"].startswith(PROBLEM)
        problem = resp.json()
        assert any(field in e["loc"] for e in problem["errors"]), problem
        assert words in problem["detail"], problem
    resp = await client.post(
        "/api/v1/directives", json={"title": "x", "selection": {"kind": "everything"}}, headers=pm
    )
    assert resp.status_code == 422
    assert await _count(db, Directive) == 0
    assert await _count(db, RolloutTask) == 0


async def test_facility_manager_sees_only_their_tasks_and_cannot_issue(
    client, make_token, estate
) -> None:
    pm = await make_token("programme_manager", org=True)
    assert (await _issue(client, pm)).status_code == 201
    fm = await make_token("facility_manager", facility="BOS-FO")
    tasks = (await client.get("/api/v1/rollout/tasks?limit=1000", headers=fm)).json()
    assert tasks["total"] == 15
    assert {t["facility_code"] for t in tasks["items"]} == {"BOS-FO"}
    board = (await client.get("/api/v1/rollout/board", headers=fm)).json()
    assert board["totals"]["total"] == 15
    assert [r["key"] for r in board["by_region"]] == ["EAST"]
    resp = await _issue(client, fm, selection={"kind": "list", "facilities": ["BOS-FO"]})
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith(PROBLEM)
    other = (await client.get("/api/v1/rollout/tasks?facility=NYC-FO", headers=pm)).json()
    task_id = other["items"][0]["id"]
    assert (await client.get(f"/api/v1/rollout/tasks/{task_id}", headers=fm)).status_code == 404
    resp = await client.post(
        f"/api/v1/rollout/tasks/{task_id}/move", json={"to": "done"}, headers=fm
    )
    assert resp.status_code == 404
    card = await client.get("/api/v1/scorecard/facilities/NYC-FO", headers=fm)
    assert card.status_code == 404


async def test_move_and_waiver_need_a_second_person(client, make_token, estate, db) -> None:
    pm = await make_token("programme_manager", org=True, name="pm-one")
    pm2 = await make_token("programme_manager", org=True, name="pm-two")
    fm = await make_token("facility_manager", facility="BOS-FO")
    assert (await _issue(client, pm)).status_code == 201
    items = (await client.get("/api/v1/rollout/tasks?facility=BOS-FO", headers=fm)).json()["items"]
    first, second = items[0]["id"], items[1]["id"]

    moved = await client.post(
        f"/api/v1/rollout/tasks/{first}/move", json={"to": "in_progress", "version": 0}, headers=fm
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "in_progress"
    stale = await client.post(
        f"/api/v1/rollout/tasks/{first}/move", json={"to": "done", "version": 0}, headers=fm
    )
    assert stale.status_code == 409
    done = await client.post(f"/api/v1/rollout/tasks/{first}/move", json={"to": "done"}, headers=fm)
    assert done.json()["status"] == "done"
    assert [h["to_state"] for h in done.json()["history"]] == ["in_progress", "done"]

    # the programme manager asks, and may not approve their own request
    asked = await client.post(
        f"/api/v1/rollout/tasks/{second}/waiver", json={"reason": "building closes in May"},
        headers=pm,
    )  # fmt: skip
    assert asked.status_code == 200, asked.text
    own = await client.post(f"/api/v1/rollout/tasks/{second}/waiver/approve", json={}, headers=pm)
    assert own.status_code == 403
    assert "second person" in own.json()["detail"]
    # a facility manager cannot approve at all
    fm_try = await client.post(
        f"/api/v1/rollout/tasks/{second}/waiver/approve", json={}, headers=fm
    )
    assert fm_try.status_code == 403
    ok = await client.post(f"/api/v1/rollout/tasks/{second}/waiver/approve", json={}, headers=pm2)
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "waived"
    assert ok.json()["waiver_approved_by"] == "token:pm-two"
    assert ok.json()["waiver_requested_by"] == "token:pm-one"
    again = await client.post(
        f"/api/v1/rollout/tasks/{second}/move", json={"to": "done"}, headers=fm
    )
    assert again.status_code == 409


async def test_board_counts_equal_a_hand_count(
    client, make_token, estate, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    assert (await _issue(client, pm)).status_code == 201
    items = (await client.get("/api/v1/rollout/tasks?limit=1000", headers=pm)).json()["items"]
    # finish two tasks, then let 4 days pass: immediate and 72-hour measures are late
    for t in items[:2]:
        await client.post(f"/api/v1/rollout/tasks/{t['id']}/move", json={"to": "done"}, headers=pm)
    clock.advance(days=4)
    items = (await client.get("/api/v1/rollout/tasks?limit=1000", headers=pm)).json()["items"]
    board = (await client.get("/api/v1/rollout/board", headers=pm)).json()

    def hand(rows: list[dict[str, Any]]) -> dict[str, int]:
        out = {k: 0 for k in ("late", "due_soon", "on_track", "done", "waived")}
        for r in rows:
            out[r["status"]] += 1
        out["total"] = len(rows)
        return out

    assert board["totals"] == hand(items)
    assert board["totals"]["late"] > 0 and board["totals"]["done"] == 2
    for row in board["by_region"]:
        assert row["counts"] == hand([t for t in items if t["region_code"] == row["key"]])
    for row in board["by_measure"]:
        assert row["counts"] == hand([t for t in items if t["measure_code"] == row["key"]])
    for row in board["by_facility"]:
        assert row["counts"] == hand([t for t in items if t["facility_code"] == row["key"]])
    # late first
    lates = [r["counts"]["late"] for r in board["by_facility"]]
    assert lates == sorted(lates, reverse=True)
    # the list puts late tasks first
    statuses = [t["status"] for t in items]
    assert statuses[: board["totals"]["late"]] == ["late"] * board["totals"]["late"]
    # burn-down: from the issue day to the last due date (3 months), actual up to today
    burn = board["burndown"]
    assert burn[0]["day"] == "2026-01-05"
    assert burn[0]["actual"] == 39 - 2 or burn[0]["actual"] == 39  # 45 minus 6 continuous
    assert burn[4]["actual"] is not None and burn[5]["actual"] is None
    assert burn[-1]["ideal"] == 0


async def test_scorecard_explains_itself(client, make_token, estate, clock: FakeClock) -> None:
    pm = await make_token("programme_manager", org=True)
    assert (await _issue(client, pm)).status_code == 201
    clock.advance(days=2)  # the immediate measures are late
    card = (await client.get("/api/v1/scorecard/facilities/NYC-FO", headers=pm)).json()
    comps = {c["key"]: c for c in card["components"]}
    assert comps["rollout"]["status"] == "gap" and comps["rollout"]["priority"] == "high"
    assert any("Biometric" in r["text"] for r in comps["rollout"]["reasons"])
    assert all(r["link"].startswith("/rollout/tasks/") for r in comps["rollout"]["reasons"])
    assert comps["device_health"]["status"] == "gap"
    assert comps["device_health"]["priority"] == "high"  # a panic button is offline
    assert "Lobby panic button" in comps["device_health"]["reasons"][0]["text"]
    # the organisation's required drills (migration 0007) apply to every facility: none held
    assert comps["drills"]["status"] == "gap" and comps["drills"]["priority"] == "high"
    assert "never held" in comps["drills"]["reasons"][0]["text"]
    bos = {
        c["key"]: c
        for c in (await client.get("/api/v1/scorecard/facilities/BOS-FO", headers=pm)).json()[
            "components"
        ]
    }
    assert bos["device_health"]["status"] == "in_place"
    rollup = (await client.get("/api/v1/scorecard", headers=pm)).json()
    east = next(r for r in rollup["regions"] if r["key"] == "EAST")
    assert east["components"]["device_health"] == {
        "in_place": 1, "under_review": 0, "gap": 1, "not_tracked": 0
    }  # fmt: skip
    assert rollup["organisation"]["components"]["rollout"]["gap"] == 3
    assert rollup["organisation"]["components"]["drills"]["gap"] == 3


async def test_scorecard_areas_come_from_open_findings(
    client, make_token, estate, db, clock: FakeClock
) -> None:
    from datetime import timedelta

    from watchfloor.assessments.models import Assessment, AssessmentTemplate, Finding

    now = clock.now()
    template = (await db.scalars(select(AssessmentTemplate).limit(1))).first()
    if template is None:
        template = AssessmentTemplate(code="T", name="T", areas=[], created_at=now, updated_at=now)
        db.add(template)
        await db.flush()
    nyc, bos = estate["facilities"]["NYC-FO"], estate["facilities"]["BOS-FO"]
    for fid in (nyc, bos):
        db.add(
            Assessment(
                facility_id=fid, template_id=template.id, status="completed",
                scheduled_for=now, completed_at=now - timedelta(days=1), fsl_level="III",
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
    await db.flush()
    a_nyc = (await db.scalars(select(Assessment).where(Assessment.facility_id == nyc))).one()
    db.add_all(
        [
            Finding(assessment_id=a_nyc.id, facility_id=nyc, area="perimeter", severity="medium",
                    description="Fence gap", due_on=(now - timedelta(days=2)).date(),
                    created_at=now, updated_at=now),
            Finding(assessment_id=a_nyc.id, facility_id=nyc, area="screening", severity="low",
                    description="X-ray log", due_on=(now + timedelta(days=20)).date(),
                    created_at=now, updated_at=now),
        ]
    )  # fmt: skip
    await db.commit()
    pm = await make_token("programme_manager", org=True)
    card = (await client.get("/api/v1/scorecard/facilities/NYC-FO", headers=pm)).json()
    comps = {c["key"]: c for c in card["components"]}
    assert comps["perimeter"]["status"] == "gap" and comps["perimeter"]["priority"] == "high"
    assert "1 overdue" in comps["perimeter"]["reasons"][0]["text"]
    assert comps["perimeter"]["reasons"][0]["link"] == (
        "/assessments/findings?facility=NYC-FO&area=perimeter"
    )
    assert comps["screening"]["status"] == "under_review"
    assert comps["screening"]["priority"] == "low"
    assert comps["access_control"]["status"] == "in_place"
    phx = {
        c["key"]: c
        for c in (await client.get("/api/v1/scorecard/facilities/PHX-CH", headers=pm)).json()[
            "components"
        ]
    }
    assert phx["perimeter"]["status"] == "not_tracked"  # never assessed
    rollup = (await client.get("/api/v1/scorecard", headers=pm)).json()
    east = next(r for r in rollup["regions"] if r["key"] == "EAST")["components"]
    assert east["perimeter"] == {"in_place": 1, "under_review": 0, "gap": 1, "not_tracked": 0}
    assert east["screening"] == {"in_place": 1, "under_review": 1, "gap": 0, "not_tracked": 0}
    west = next(r for r in rollup["regions"] if r["key"] == "WEST")["components"]
    assert west["perimeter"] == {"in_place": 0, "under_review": 0, "gap": 0, "not_tracked": 1}
