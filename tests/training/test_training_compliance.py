"""The scorecard seam: facility_compliance over active staff and their required courses — gap
(high) above training_gap_share overdue or never, under review (medium) for any overdue, never or
due soon, in place when all current, nothing for a facility with no staff under a requirement —
computed set-based for thousands of facility ids at once."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update

from watchfloor.people.models import Person
from watchfloor.training import service

ALL_MGR = ("ASR", "DEESC", "FIRSTAID", "SITAWARE", "EMERG")


async def test_statuses(db, clock, estate, record) -> None:  # type: ignore[no-untyped-def]
    fac = estate["facilities"]
    # Boston: everything current → in place
    await record("B-STAFF", "ASR", date(2025, 10, 1))
    for c in ALL_MGR:
        await record("B-MGR", c, date(2025, 10, 1))
    # Phoenix: its one staff member due soon → under review
    await record("P-STAFF", "ASR", date(2025, 1, 20))
    # New York: nothing done → gap
    got = await service.facility_compliance(
        db, list(fac.values()), clock.now(), due_soon_days=30, gap_share=0.10
    )
    assert (got[fac["BOS-FO"]].status, got[fac["BOS-FO"]].priority) == ("in_place", "low")
    assert (got[fac["PHX-CH"]].status, got[fac["PHX-CH"]].priority) == ("under_review", "medium")
    assert (got[fac["NYC-FO"]].status, got[fac["NYC-FO"]].priority) == ("gap", "high")
    text, link = got[fac["NYC-FO"]].reasons[0]
    assert text == "Never done: 12 of 12 required trainings" and link == "/training?facility=NYC-FO"
    assert got[fac["PHX-CH"]].reasons[0][0] == "Due soon: 1 of 1 required trainings"

    # New York: 11 of 12 current, 1 never → 8% ≤ 10% → under review, not gap
    for c in ("ASR", "DEESC", "FIRSTAID", "SITAWARE", "EMERG", "STB"):
        await record("N-GUARD", c, date(2025, 10, 1))
    for c in ALL_MGR:
        await record("N-MGR", c, date(2025, 10, 1))
    got = await service.facility_compliance(
        db, [fac["NYC-FO"]], clock.now(), with_reasons=False, due_soon_days=30, gap_share=0.10
    )
    assert got[fac["NYC-FO"]].status == "under_review" and got[fac["NYC-FO"]].reasons == []


async def test_no_staff_under_a_requirement_is_not_tracked(db, clock, estate) -> None:  # type: ignore[no-untyped-def]
    fac = estate["facilities"]
    await db.execute(update(Person).where(Person.facility_id == fac["PHX-CH"]).values(active=False))
    await db.commit()
    got = await service.facility_compliance(db, [fac["PHX-CH"]], clock.now())
    assert got == {}


async def test_thousands_of_facility_ids_in_chunks(db, clock, estate) -> None:  # type: ignore[no-untyped-def]
    ids = list(range(1, 12_001))  # most do not exist: they are simply not tracked
    got = await service.facility_compliance(db, ids, clock.now(), with_reasons=False)
    assert set(got) == set(estate["facilities"].values())
