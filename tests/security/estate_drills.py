"""The drills domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from watchfloor.auth.principal import SYSTEM
from watchfloor.drills import service
from watchfloor.drills.schemas import ActionIn, DrillIn, EndIn, ParticipantIn, ScheduleIn


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """For each facility: a schedule and a completed tabletop drill with a participant and a
    corrective action (named after the facility); return the path values naming A's objects."""
    found: dict[str, Any] = {}
    for side in (a, b):
        label = "Alfa" if side is a else "Bravo"
        schedule = await service.create_schedule(
            db,
            clock,
            SYSTEM,
            ScheduleIn(
                facility_code=side.code,
                kind="active_shooter",
                title=f"{label} quarterly drill",
                rrule="FREQ=MONTHLY;INTERVAL=3",
                anchor_local=(clock.now() + timedelta(days=7)).strftime("%Y-%m-%dT10:00"),
            ),
        )
        drill, _f = await service.plan_drill(
            db,
            clock,
            SYSTEM,
            DrillIn(
                facility_code=side.code,
                kind="tabletop",
                planned_at=clock.now(),
                title=f"{label} tabletop",
            ),
        )
        await service.start_drill(db, clock, SYSTEM, drill.id)
        await service.end_drill(db, clock, SYSTEM, drill.id, EndIn())
        await service.add_participant(
            db, clock, SYSTEM, drill.id, ParticipantIn(source="manual", name=f"{label} Person")
        )
        action = await service.add_action(
            db,
            clock,
            SYSTEM,
            drill.id,
            ActionIn(description=f"{label} fix", owner=f"{label} Owner", due_on="2030-01-01"),
        )
        if side is a:
            found = {
                "drill_id": drill.id,
                "schedule_id": schedule.id,
                "action_id": action.id,
                "drill_kind": "tabletop",
            }
    await db.commit()
    return found
