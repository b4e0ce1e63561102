"""Schedules: RFC 5545 rules on the facility's wall clock, across DST changes; rules that do not
parse, never fire again or fire more often than daily are refused naming `rrule`; a paused
schedule shows no next occurrences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from drills_site import problem

from watchfloor.clock import FakeClock
from watchfloor.drills import service
from watchfloor.problems import InvalidInput

NY = "America/New_York"


def test_a_quarterly_drill_stays_at_ten_local_across_dst_changes() -> None:
    # anchored 10:00 on 15 January (EST, UTC-5); April and July are EDT (UTC-4); October EDT;
    # the next January is EST again
    after = datetime(2026, 1, 1, tzinfo=UTC)
    got = service.next_occurrences("FREQ=MONTHLY;INTERVAL=3", "2026-01-15T10:00", NY, after, 5)
    assert got == [
        datetime(2026, 1, 15, 15, 0, tzinfo=UTC),
        datetime(2026, 4, 15, 14, 0, tzinfo=UTC),
        datetime(2026, 7, 15, 14, 0, tzinfo=UTC),
        datetime(2026, 10, 15, 14, 0, tzinfo=UTC),
        datetime(2027, 1, 15, 15, 0, tzinfo=UTC),
    ]


def test_a_weekly_drill_across_the_spring_change_keeps_its_wall_clock_time() -> None:
    # DST starts 8 March 2026 in New York: Saturdays at 09:00 local are 14:00 then 13:00 UTC
    after = datetime(2026, 3, 1, tzinfo=UTC)
    got = service.next_occurrences("FREQ=WEEKLY;BYDAY=SA", "2026-03-07T09:00", NY, after, 2)
    assert got == [
        datetime(2026, 3, 7, 14, 0, tzinfo=UTC),
        datetime(2026, 3, 14, 13, 0, tzinfo=UTC),
    ]
    # a daily rule is exactly daily on the wall clock (23 hours apart in UTC that night)
    daily = service.next_occurrences("FREQ=DAILY", "2026-03-07T09:00", NY, after, 2)
    assert (daily[1] - daily[0]).total_seconds() == 23 * 3600
    service.check_rule("FREQ=DAILY", "2026-03-07T09:00", NY, after)  # daily is allowed


@pytest.mark.parametrize(
    ("rule", "anchor", "why"),
    [
        ("FREQ=SOMETIMES", "2026-01-15T10:00", "not a valid"),
        ("", "2026-01-15T10:00", "one RRULE"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "2026-01-15T10:00", "one RRULE"),
        ("FREQ=MINUTELY;INTERVAL=30", "2026-01-15T10:00", "more often than daily"),
        ("FREQ=DAILY;BYHOUR=8,20", "2026-01-15T10:00", "more often than daily"),
        ("FREQ=MONTHLY;COUNT=2", "2025-01-15T10:00", "no occurrence after now"),
        ("FREQ=MONTHLY", "2026-13-01T10:00", "YYYY-MM-DD"),
    ],
)
def test_rules_that_cannot_be_a_drill_schedule_are_refused(
    rule: str, anchor: str, why: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        service.check_rule(rule, anchor, NY, datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    assert why in info.value.detail
    assert info.value.errors and info.value.errors[0]["loc"][-1] in ("rrule", "anchor_local")


async def test_a_paused_schedule_shows_no_next_occurrence_and_resumes(
    client, make_token, estate, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    fm = await make_token("facility_manager", facility="PHX-CH")
    made = await client.post(
        "/api/v1/drills/schedules",
        json={
            "facility_code": "PHX-CH",
            "kind": "active_shooter",
            "rrule": "FREQ=MONTHLY;INTERVAL=3",
            "anchor_local": "2026-02-02T09:30",
            "partner_agencies": ["Phoenix PD"],
        },
        headers=fm,
    )
    assert made.status_code == 201, made.text
    s = made.json()
    assert s["timezone"] == "America/Phoenix" and s["partner_agencies"] == ["Phoenix PD"]
    assert s["next_occurrences"][0] == "2026-02-02T16:30:00Z"  # Phoenix: UTC-7, no DST
    url = f"/api/v1/drills/schedules/{s['id']}"
    paused = (await client.patch(url, json={"paused": True}, headers=fm)).json()
    assert paused["paused"] is True and paused["next_occurrences"] == []
    problem(await client.patch(url, json={"paused": "maybe"}, headers=fm), 422)
    resumed = (await client.patch(url, json={"paused": False}, headers=fm)).json()
    assert len(resumed["next_occurrences"]) == 4
    listed = (await client.get("/api/v1/drills/schedules?facility=PHX-CH", headers=fm)).json()
    assert [x["id"] for x in listed] == [s["id"]]
