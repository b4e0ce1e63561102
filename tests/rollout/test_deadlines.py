"""Directive deadline arithmetic across time zones and DST, and a task's status at the
boundaries (due soon / late) with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchfloor.clock import FakeClock
from watchfloor.rollout.deadlines import add_months, due_at, local_display, status_of

ISSUED = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST, UTC-5)


def test_hour_deadlines_are_elapsed_hours_whatever_the_time_zone() -> None:
    for tz in ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"):
        assert due_at("immediate", ISSUED, tz) == ISSUED + timedelta(hours=24)
        assert due_at("72h", ISSUED, tz) == ISSUED + timedelta(hours=72)
    # 72 hours straddling the US spring-forward (8 March 2026) are still 72 hours
    issued = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
    assert due_at("72h", issued, "America/New_York") == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def test_two_weeks_is_14_calendar_days_on_the_facility_wall_clock_across_dst() -> None:
    # 10:00 EST on 2 March → 10:00 EDT on 16 March: 14 days minus the hour lost to DST
    due = due_at("2w", ISSUED, "America/New_York")
    assert due == datetime(2026, 3, 16, 14, 0, tzinfo=UTC)
    assert due - ISSUED == timedelta(days=14, hours=-1)
    assert local_display(due, "America/New_York") == "2026-03-16 10:00 EDT"
    # Phoenix keeps no DST: exactly 14 × 24 hours
    assert due_at("2w", ISSUED, "America/Phoenix") - ISSUED == timedelta(days=14)
    # UTC: exactly 14 days
    assert due_at("2w", ISSUED, "UTC") == ISSUED + timedelta(days=14)


def test_thirty_days_across_the_autumn_change_gains_an_hour() -> None:
    issued = datetime(2026, 10, 20, 14, 0, tzinfo=UTC)  # 10:00 EDT
    due = due_at("30d", issued, "America/New_York")
    assert local_display(due, "America/New_York") == "2026-11-19 10:00 EST"
    assert due - issued == timedelta(days=30, hours=1)
    # Europe changes a week earlier than the US: the same instant, a different due instant
    london = due_at("30d", issued, "Europe/London")
    assert local_display(london, "Europe/London") == "2026-11-19 15:00 GMT"


def test_three_months_is_calendar_months_clamped_to_the_month_end() -> None:
    issued = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)  # 12:00 EST on 31 January
    due = due_at("3m", issued, "America/New_York")
    assert local_display(due, "America/New_York") == "2026-04-30 12:00 EDT"
    assert add_months(datetime(2026, 11, 30, 9, 0), 3) == datetime(2027, 2, 28, 9, 0)
    assert add_months(datetime(2027, 11, 29, 9, 0), 3) == datetime(2028, 2, 29, 9, 0)
    # the local date decides: 02:00 UTC on 1 March is still 28 February in Los Angeles
    late_evening = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    due_la = due_at("3m", late_evening, "America/Los_Angeles")
    assert local_display(due_la, "America/Los_Angeles") == "2026-05-28 18:00 PDT"
    assert local_display(due_at("3m", late_evening, "UTC"), "UTC") == "2026-06-01 02:00 UTC"


def test_continuous_measures_have_no_due_date_and_stay_on_track() -> None:
    assert due_at("continuous", ISSUED, "America/New_York") is None
    far = ISSUED + timedelta(days=3650)
    assert status_of("planned", None, far, timedelta(days=3)) == "on_track"


def test_unknown_kind_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        due_at("fortnightish", ISSUED, "UTC")
    with pytest.raises(ValueError):
        due_at("72h", datetime(2026, 3, 2, 15, 0), "UTC")


def test_status_at_the_boundaries_with_a_fake_clock() -> None:
    due = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    soon = timedelta(days=3)
    clock = FakeClock(due - soon - timedelta(microseconds=1))
    assert status_of("planned", due, clock.now(), soon) == "on_track"
    clock.set(due - soon)  # exactly three days before: due soon
    assert status_of("planned", due, clock.now(), soon) == "due_soon"
    clock.set(due)  # at the due instant itself: still due soon, not late
    assert status_of("in_progress", due, clock.now(), soon) == "due_soon"
    clock.advance(microseconds=1)  # a moment after: late
    assert status_of("in_progress", due, clock.now(), soon) == "late"
    assert status_of("done", due, clock.now(), soon) == "done"
    assert status_of("waived", due, clock.now(), soon) == "waived"


async def test_the_sql_status_agrees_with_the_python_rule_at_the_boundaries(
    client, make_token, estate, clock: FakeClock
) -> None:
    pm = await make_token("programme_manager", org=True)
    resp = await client.post(
        "/api/v1/directives",
        json={"title": "Guards", "measures": ["ARMED-OFFICERS"], "selection": {"kind": "all"}},
        headers=pm,
    )
    assert resp.status_code == 201
    issued = clock.now()
    due = issued + timedelta(hours=72)
    for at, expected in [
        (due - timedelta(days=3) - timedelta(seconds=1), "on_track"),
        (due - timedelta(days=3), "due_soon"),
        (due, "due_soon"),
        (due + timedelta(seconds=1), "late"),
    ]:
        clock.set(at)
        board = (await client.get("/api/v1/rollout/board", headers=pm)).json()
        assert board["totals"][expected] == 3, (at, board["totals"])
        tasks = (await client.get("/api/v1/rollout/tasks", headers=pm)).json()["items"]
        assert {t["status"] for t in tasks} == {expected}
