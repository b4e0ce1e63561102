"""The rollout domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from watchfloor.auth.principal import SYSTEM
from watchfloor.rollout import service
from watchfloor.rollout.models import RolloutTask
from watchfloor.rollout.schemas import DirectiveIn, FacilitySelection


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """A directive for each facility (one measure each) with a pending waiver on A's task;
    return the path values naming A's directive and task."""
    found: dict[str, Any] = {}
    for side in (a, b):
        directive = await service.issue_directive(
            db,
            clock,
            SYSTEM,
            DirectiveIn(
                title="Guards on site",
                measures=["ARMED-OFFICERS"],
                selection=FacilitySelection(kind="list", facilities=[side.code]),
            ),
            max_tasks=10,
        )
        task = (
            await db.scalars(select(RolloutTask).where(RolloutTask.directive_id == directive.id))
        ).one()
        if side is a:
            await service.request_waiver(db, clock, SYSTEM, task.id, "probe the waiver")
            found = {"directive_id": directive.id, "task_id": task.id}
    await db.commit()
    return found
