"""REST API of the response-time targets (e.g. P1 acknowledged within 15 s in 95% of cases) that
the response-time report (`GET /api/v1/reports/response-times`) measures against.

Reading them needs `alarms:read` anywhere; changing one needs `escalation:manage` across the
whole organisation (targets are organisation-wide). Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.incidents import reports
from watchfloor.incidents.models import ResponseTarget
from watchfloor.schemas import StrictModel

router = APIRouter(tags=["incidents"])

Measure = Literal["acknowledge", "dispatch", "on_scene"]
PriorityPath = Annotated[int, Path(ge=1, le=4, description="1 (life safety) to 4 (information).")]
MeasurePath = Annotated[Measure, Path(description="acknowledge, dispatch or on_scene.")]


class TargetIn(StrictModel):
    seconds: int = Field(ge=1, le=86_400, description="Within this many seconds (1 s to 24 h).")
    percent: int = Field(ge=1, le=100, description="In at least this share of incidents.")


class TargetOut(BaseModel):
    priority: int
    measure: str
    seconds: int
    percent: int


def _out(target: ResponseTarget) -> TargetOut:
    return TargetOut(
        priority=target.priority,
        measure=target.measure,
        seconds=target.seconds,
        percent=target.percent,
    )


@router.get("/response-targets", response_model=list[TargetOut])
async def list_targets(db: DB, principal: CurrentPrincipal) -> list[TargetOut]:
    """Every response-time target, by priority then measure."""
    principal.require_anywhere(Perm.ALARMS_READ)
    return [_out(t) for t in await reports.list_targets(db)]


@router.put("/response-targets/{priority}/{measure}", response_model=TargetOut)
async def put_target(
    priority: PriorityPath,
    measure: MeasurePath,
    body: TargetIn,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> TargetOut:
    """Set the target of a priority and measure (created if missing). The response-time report
    measures against it from then on. Needs `escalation:manage` for the whole organisation."""
    principal.require_org(Perm.ESCALATION_MANAGE)
    target, _created = await reports.set_target(
        db,
        clock,
        principal,
        priority=priority,
        measure=measure,
        seconds=body.seconds,
        percent=body.percent,
    )
    await db.commit()
    return _out(target)
