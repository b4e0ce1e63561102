"""Expiry and status at the boundaries, with the fake clock: a completion is current through its
expires_on, due soon within training_due_soon_days of it, overdue the day after; no record is
"never". The overdue list puts never-done first, then the longest expired, with vetting beside."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx

from watchfloor.clock import FakeClock
from watchfloor.training import service
from watchfloor.training.models import TrainingStatus as S


def test_expiry_is_calendar_months_after_completion() -> None:
    assert service.expires_on(date(2026, 1, 5), 12) == date(2027, 1, 5)
    assert service.expires_on(date(2026, 1, 31), 1) == date(2026, 2, 28)  # clamped
    assert service.expires_on(date(2027, 12, 15), 24) == date(2029, 12, 15)


def test_status_boundaries() -> None:
    today = date(2026, 3, 1)
    assert service.status_of(None, today, 30) is S.NEVER
    assert service.status_of(today - timedelta(days=1), today, 30) is S.OVERDUE
    assert service.status_of(today, today, 30) is S.DUE_SOON  # valid through today
    assert service.status_of(today + timedelta(days=30), today, 30) is S.DUE_SOON
    assert service.status_of(today + timedelta(days=31), today, 30) is S.CURRENT
    assert service.status_of(today + timedelta(days=5), today, 0) is S.CURRENT


async def _status(client: httpx.AsyncClient, headers: dict[str, str], emp: str) -> dict[str, str]:
    r = await client.get(f"/api/v1/training/people/{emp}", headers=headers)
    assert r.status_code == 200, r.text
    return {c["course_code"]: c["status"] for c in r.json()["courses"] if c["required"]}


async def test_a_completion_moves_from_current_to_due_soon_to_overdue_as_the_clock_runs(
    client: httpx.AsyncClient, make_token, estate, record, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    # 2026-01-05: staff must hold active-shooter response (12 months)
    assert await _status(client, pm, "N-STAFF") == {"ASR": "never"}
    await record("N-STAFF", "ASR", date(2025, 3, 1))  # expires 2026-03-01
    assert (await _status(client, pm, "N-STAFF"))["ASR"] == "current"
    clock.set(datetime(2026, 1, 30, 12, tzinfo=UTC))  # 30 days before expiry
    assert (await _status(client, pm, "N-STAFF"))["ASR"] == "due_soon"
    clock.set(datetime(2026, 1, 29, 23, 59, tzinfo=UTC))  # 31 days before
    assert (await _status(client, pm, "N-STAFF"))["ASR"] == "current"
    clock.set(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))  # the last valid day
    assert (await _status(client, pm, "N-STAFF"))["ASR"] == "due_soon"
    clock.set(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    assert (await _status(client, pm, "N-STAFF"))["ASR"] == "overdue"
    # a newer completion wins
    await record("N-STAFF", "ASR", date(2026, 3, 2))
    assert (await _status(client, pm, "N-STAFF"))["ASR"] == "current"


async def test_overdue_list_is_most_overdue_first_with_vetting_beside(
    client: httpx.AsyncClient, make_token, estate, record, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    await record("N-STAFF", "ASR", date(2024, 6, 1))  # expired 2025-06-01
    await record("B-STAFF", "ASR", date(2024, 12, 1))  # expired 2025-12-01
    await record("P-STAFF", "ASR", date(2025, 1, 20))  # due soon (2026-01-20)
    r = await client.get("/api/v1/training/overdue?course=ASR", headers=pm)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    # never done (the two managers, the guard) first, then the longest expired
    assert [i["status"] for i in items] == ["never"] * 3 + ["overdue", "overdue"]
    assert [i["employee_id"] for i in items[3:]] == ["N-STAFF", "B-STAFF"]
    sam = items[3]
    assert sam["days_overdue"] == (date(2026, 1, 5) - date(2025, 6, 1)).days
    assert sam["vetting_expires_on"] == "2025-12-01" and sam["vetting_expired"] is True
    with_soon = await client.get(
        "/api/v1/training/overdue?course=ASR&include_due_soon=true", headers=pm
    )
    assert with_soon.json()["items"][-1]["employee_id"] == "P-STAFF"
    assert with_soon.json()["items"][-1]["status"] == "due_soon"
    # filters: facility and region
    nyc = (await client.get("/api/v1/training/overdue?facility=NYC-FO", headers=pm)).json()
    assert {i["facility_code"] for i in nyc["items"]} == {"NYC-FO"}
    west = (await client.get("/api/v1/training/overdue?region=WEST", headers=pm)).json()
    assert west["total"] == 0  # Pat is due soon, not overdue


async def test_overview_counts_by_course_and_facility_most_behind_first(
    client: httpx.AsyncClient, make_token, estate, record
) -> None:
    pm = await make_token("programme_manager", org=True)
    for course in ("ASR", "DEESC", "FIRSTAID", "SITAWARE", "EMERG"):
        await record("B-MGR", course, date(2025, 11, 1))
    await record("B-STAFF", "ASR", date(2025, 11, 1))
    r = (await client.get("/api/v1/training/overview", headers=pm)).json()
    # guard 6 + manager 5 + 4 staff x 1 + manager 5
    assert r["totals"]["total"] == 6 + 5 + 1 + 1 + 5 + 1
    assert r["totals"]["current"] == 6
    assert [f["facility_code"] for f in r["facilities"]] == ["NYC-FO", "PHX-CH", "BOS-FO"]
    assert r["facilities"][0]["counts"]["never"] == 12
    assert r["facilities"][0]["vetting_expired"] == 1  # Sam's vetting ran out 2025-12-01
    asr = next(c for c in r["by_course"] if c["course_code"] == "ASR")
    assert asr["counts"] == {"overdue": 0, "never": 4, "due_soon": 0, "current": 2, "total": 6}
