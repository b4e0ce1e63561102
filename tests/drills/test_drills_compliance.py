"""Compliance with a fake clock at the boundaries: never held, compliant, due soon (within
drills_due_soon_days), overdue strictly after the due time (the last drill's local date and time
plus the interval in calendar months); the scorecard seam's statuses and reasons; the view is
most urgent first and filters by region."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from watchfloor.clock import FakeClock
from watchfloor.drills import service
from watchfloor.drills.models import Drill, DrillAction, DrillRequirement
from watchfloor.drills.service import quick_status, status_for

NY = "America/New_York"
SOON = timedelta(days=14)


async def completed(db: Any, facility_id: int, kind: str, ended: datetime) -> Drill:
    d = Drill(
        facility_id=facility_id,
        kind=kind,
        title="t",
        state="completed",
        planned_at=ended,
        started_at=ended - timedelta(minutes=20),
        ended_at=ended,
        run_by="x",
        partner_agencies=[],
        timings_source="",
        notes="",
        created_at=ended,
        created_by="x",
        updated_at=ended,
    )
    db.add(d)
    await db.flush()
    return d


def test_status_boundaries() -> None:
    last = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST)
    due = datetime(2026, 4, 15, 14, 0, tzinfo=UTC)  # three months later, 10:00 EDT
    assert service.status_for(None, 3, NY, last, SOON) == ("never", None)
    assert service.status_for(last, 3, NY, due - SOON - timedelta(seconds=1), SOON) == (
        "compliant",
        due,
    )
    assert service.status_for(last, 3, NY, due - SOON, SOON) == ("due_soon", due)
    assert service.status_for(last, 3, NY, due, SOON) == ("due_soon", due)  # due, not yet late
    assert service.status_for(last, 3, NY, due + timedelta(seconds=1), SOON) == ("overdue", due)
    # 30 November + 3 months is clamped to the end of February
    end_nov = datetime(2025, 11, 30, 17, 0, tzinfo=UTC)
    _s, clamped = service.status_for(end_nov, 3, NY, end_nov, SOON)
    assert clamped == datetime(2026, 2, 28, 17, 0, tzinfo=UTC)


async def test_facility_compliance_statuses_move_with_the_clock(
    db, estate, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    ids = estate["facilities"]
    nyc, bos, phx = ids["NYC-FO"], ids["BOS-FO"], ids["PHX-CH"]
    # only the quarterly active-shooter requirement, to read the boundaries plainly
    await db.execute(
        update(DrillRequirement)
        .where(DrillRequirement.kind != "active_shooter")
        .values(active=False)
    )
    last = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)
    await completed(db, nyc, "active_shooter", last)
    await completed(db, bos, "evacuation", last)  # not the required kind
    await db.commit()
    due = datetime(2026, 4, 2, 14, 0, tzinfo=UTC)  # 10:00 EDT

    got = await service.facility_compliance(db, [nyc, bos, phx, 999_999], clock.now())
    assert set(got) == {nyc, bos, phx}  # an unknown id is left out (not tracked)
    assert (got[nyc].status, got[nyc].priority) == ("in_place", "low")
    assert (got[bos].status, got[bos].priority) == ("gap", "high")
    assert "never held" in got[bos].reasons[0][0]
    assert got[bos].reasons[0][1] == "/drills/facilities/BOS-FO"

    clock.set(due - timedelta(days=14))
    got = await service.facility_compliance(db, [nyc], clock.now())
    assert (got[nyc].status, got[nyc].priority) == ("under_review", "medium")
    assert "due by 2026-04-02" in got[nyc].reasons[0][0]
    clock.set(due)
    assert (await service.facility_compliance(db, [nyc], clock.now()))[nyc].status == "under_review"
    clock.set(due + timedelta(seconds=1))
    got = await service.facility_compliance(db, [nyc], clock.now())
    assert (got[nyc].status, got[nyc].priority) == ("gap", "high")
    assert "overdue since 2026-04-02" in got[nyc].reasons[0][0]
    # without reasons (the scorecard roll-up) the statuses are the same
    bare = await service.facility_compliance(db, [nyc, bos], clock.now(), with_reasons=False)
    assert bare[nyc].status == "gap" and bare[nyc].reasons == []

    # no active requirement: nothing is tracked
    await db.execute(update(DrillRequirement).values(active=False))
    await db.commit()
    assert await service.facility_compliance(db, [nyc, bos], clock.now()) == {}


async def test_an_overdue_corrective_action_puts_a_facility_under_review(
    db, estate, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    nyc = estate["facilities"]["NYC-FO"]
    now = clock.now()
    for kind in ("active_shooter", "lockdown", "evacuation"):
        d = await completed(db, nyc, kind, now - timedelta(days=1))
    db.add(
        DrillAction(
            drill_id=d.id,
            facility_id=nyc,
            description="Fix",
            owner="Sam",
            due_on=date(2026, 1, 4),
            state="open",
            created_at=now,
            created_by="x",
            updated_at=now,
            updated_by="x",
        )
    )
    await db.commit()
    # 5 January 12:00 UTC is 07:00 on the 5th in New York: the action due on the 4th is overdue
    got = (await service.facility_compliance(db, [nyc], now))[nyc]
    assert (got.status, got.priority) == ("under_review", "medium")
    assert got.reasons[0][0].startswith("1 corrective action overdue")
    assert got.reasons[0][1] == f"/drills/{d.id}"


async def test_many_facilities_take_a_few_queries(db, estate, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    ids = list(estate["facilities"].values()) + list(range(10_000, 11_200))
    statements: list[str] = []
    engine = db.get_bind()

    def count(*args: Any) -> None:
        statements.append(str(args[2])[:40])

    event.listen(engine, "before_cursor_execute", count)
    try:
        got = await service.facility_compliance(db, ids, clock.now(), with_reasons=False)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(got) == 3
    assert len(statements) <= 1 + 3 * 3  # requirements, then 3 queries per chunk of 500 ids


async def test_the_compliance_view_is_most_urgent_first_and_filters_by_region(
    client, make_token, db, estate, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    ids = estate["facilities"]
    now = clock.now()
    await completed(db, ids["NYC-FO"], "active_shooter", now - timedelta(days=100))  # overdue
    await completed(db, ids["BOS-FO"], "active_shooter", now - timedelta(days=80))  # due soon
    await completed(db, ids["PHX-CH"], "active_shooter", now - timedelta(days=10))  # compliant
    await db.commit()
    pm = await make_token("programme_manager", org=True)
    body = (await client.get("/api/v1/drills/compliance", headers=pm)).json()
    statuses = [r["status"] for r in body["rows"]]
    order = ["overdue", "never", "due_soon", "compliant"]
    assert statuses == sorted(statuses, key=order.index)
    assert (
        body["rows"][0]["facility_code"] == "NYC-FO" and body["rows"][0]["kind"] == "active_shooter"
    )
    assert body["counts"] == {"overdue": 1, "never": 6, "due_soon": 1, "compliant": 1}
    east = next(r for r in body["regions"] if r["region_code"] == "EAST")
    assert (east["overdue"], east["due_soon"], east["never"]) == (1, 1, 4)
    west = (await client.get("/api/v1/drills/compliance?region=WEST", headers=pm)).json()
    assert {r["facility_code"] for r in west["rows"]} == {"PHX-CH"}


@given(
    held=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    offset_days=st.floats(min_value=-800, max_value=800),
    months=st.sampled_from([1, 3, 6, 12, 24]),
    tz=st.sampled_from(["America/New_York", "Pacific/Honolulu", "Asia/Kolkata", "UTC"]),
    soon_days=st.sampled_from([0, 14, 30]),
)
def test_the_roll_ups_shortcut_agrees_with_the_calendar(
    held: datetime, offset_days: float, months: int, tz: str, soon_days: int
) -> None:
    last = held.replace(tzinfo=UTC)
    now = last + timedelta(days=offset_days)
    soon = timedelta(days=soon_days)
    quick = quick_status(last, months, now, soon)
    if quick is not None:
        assert quick == status_for(last, months, tz, now, soon)[0]
