"""The demo's drills: a quarterly active-shooter schedule at every facility, a mix of compliant,
overdue and never-held facilities, reports with corrective actions; loading twice adds nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from watchfloor.auth.principal import Scope
from watchfloor.clock import FakeClock
from watchfloor.drills import service
from watchfloor.drills.demo import load_demo_drills
from watchfloor.drills.models import DrillAction, DrillSchedule
from watchfloor.sites.models import Facility, Organisation, Region


async def test_demo_drills_are_varied_and_idempotent(db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    now = clock.now()
    org = Organisation(code="DEMO", name="Demo", created_at=now, updated_at=now)
    region = Region(code="R", name="Region", organisation=org, created_at=now, updated_at=now)
    db.add_all([org, region])
    for i in range(24):
        db.add(Facility(code=f"F-{i:02d}", name=f"Facility {i}", region=region,
                        timezone="America/Chicago", created_at=now, updated_at=now))  # fmt: skip
    await db.commit()
    added = await load_demo_drills(db, clock)
    await db.commit()
    assert added > 24
    assert await load_demo_drills(db, clock) == 0
    assert await db.scalar(select(func.count()).select_from(DrillSchedule)) == 24
    entries = await service.compliance(db, Scope(everything=True), now, timedelta(days=14))
    seen = {e.status for e in entries}
    assert {"overdue", "never", "compliant"} <= seen
    actions = await service.list_actions(db, Scope(everything=True), now)
    assert actions and any(o for _a, _f, o in actions)
    assert await db.scalar(select(func.count()).select_from(DrillAction)) == len(actions)
