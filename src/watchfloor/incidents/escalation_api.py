"""REST API of escalation policies and of system health (thin: parse, authorise, call, commit).

Reading policies needs `sites:read` (the organisation's policies are shown to anyone who has it;
a facility's override only inside the caller's scope). Editing the organisation's policies needs
`escalation:manage` across the whole organisation; a facility's override needs it on that
facility. System health needs `sites:read` anywhere (every operator-like role).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, Field, model_validator

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.incidents import escalation as service
from watchfloor.incidents.health import system_health
from watchfloor.incidents.models import EscalationPolicy
from watchfloor.problems import Forbidden
from watchfloor.schemas import CleanStr, StrictModel
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["escalation"])

Target = Literal["watch_floor", "supervisor", "facility_manager", "programme_manager", "guard"]
PriorityPath = Annotated[int, Path(ge=1, le=4, description="1 (life safety) to 4 (information).")]
FacilityCodePath = Annotated[str, Path(pattern=CODE_PATTERN, max_length=40)]
MAX_STEP_SECONDS = 86_400


class PolicyStep(StrictModel):
    after_seconds: int = Field(ge=0, le=MAX_STEP_SECONDS, description="Unacknowledged for N s.")
    target: Target


class PolicyIn(StrictModel):
    name: CleanStr = Field(default="", max_length=200)
    steps: list[PolicyStep] = Field(min_length=1, max_length=10)
    repeat: int = Field(default=0, ge=0, le=10, description="Runs of the chain after the first.")

    @model_validator(mode="after")
    def _ascending(self) -> PolicyIn:
        offsets = [s.after_seconds for s in self.steps]
        if offsets != sorted(offsets):
            raise ValueError("steps must be in ascending order of after_seconds")
        return self


class PolicyStepOut(BaseModel):
    after_seconds: int
    target: str


class PolicyOut(BaseModel):
    priority: int
    facility_code: str | None = Field(description="None for the organisation's policy.")
    source: Literal["organisation", "facility", "built-in"]
    name: str
    steps: list[PolicyStepOut]
    repeat: int
    cycle_seconds: int
    updated_at: datetime | None


class HealthProblemOut(BaseModel):
    code: str
    component: str
    message: str
    since: datetime | None


class SystemHealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    checked_at: datetime
    problems: list[HealthProblemOut]


def _out(policy: EscalationPolicy, facility_code: str | None) -> PolicyOut:
    steps = [PolicyStepOut(**s) for s in policy.steps]
    return PolicyOut(
        priority=policy.priority,
        facility_code=facility_code,
        source="facility" if policy.facility_id is not None else "organisation",
        name=policy.name,
        steps=steps,
        repeat=policy.repeat,
        cycle_seconds=service.cycle_seconds(policy.steps),
        updated_at=policy.updated_at,
    )


def _builtin(priority: int) -> PolicyOut:
    spec = service.DEFAULT_POLICIES[priority]
    return PolicyOut(
        priority=priority,
        facility_code=None,
        source="built-in",
        name=spec["name"],
        steps=[PolicyStepOut(**s) for s in spec["steps"]],
        repeat=spec["repeat"],
        cycle_seconds=service.cycle_seconds(spec["steps"]),
        updated_at=None,
    )


async def _facility(db: DB, principal: Principal, code: str, perm: Perm) -> Facility:
    facility = await sites.get_facility(db, code)
    principal.require(perm, facility_id=facility.id, region_id=facility.region_id)
    return facility


@router.get("/escalation-policies", response_model=list[PolicyOut])
async def list_policies(
    db: DB,
    principal: CurrentPrincipal,
    facility: Annotated[
        str | None,
        Query(
            pattern=CODE_PATTERN,
            max_length=40,
            description="Show the policies in force at this facility (its overrides, else the "
            "organisation's).",
        ),
    ] = None,
) -> list[PolicyOut]:
    """The organisation's escalation policies and the facility overrides in the caller's scope;
    with `facility`, the four policies in force there."""
    principal.require_anywhere(Perm.SITES_READ)
    if facility is not None:
        fac = await _facility(db, principal, facility, Perm.SITES_READ)
        result = []
        for priority in service.DEFAULT_POLICIES:
            policy = await service.effective_policy(db, fac.id, priority)
            if policy is None:
                result.append(_builtin(priority))
            else:
                result.append(_out(policy, fac.code if policy.facility_id else None))
        return result
    scope = principal.scope(Perm.SITES_READ)
    if scope.everything:
        facility_ids = None
    else:
        rows = await db.execute(
            sites.facility_query(scope).with_only_columns(Facility.id, Facility.code)
        )
        facility_ids = [r[0] for r in rows.all()]
    policies = await service.list_policies(db, facility_ids=facility_ids)
    codes = {}
    override_ids = {p.facility_id for p in policies if p.facility_id is not None}
    if override_ids:
        from sqlalchemy import select

        rows2 = await db.execute(
            select(Facility.id, Facility.code).where(Facility.id.in_(override_ids))
        )
        codes = {fid: code for fid, code in rows2.all()}
    org_priorities = {p.priority for p in policies if p.facility_id is None}
    out = [_builtin(p) for p in service.DEFAULT_POLICIES if p not in org_priorities]
    out += [_out(p, codes.get(p.facility_id) if p.facility_id else None) for p in policies]
    out.sort(key=lambda o: (o.facility_code is not None, o.facility_code or "", o.priority))
    return out


@router.put("/escalation-policies/{priority}", response_model=PolicyOut)
async def put_org_policy(
    priority: PriorityPath,
    body: PolicyIn,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> PolicyOut:
    """Replace the organisation's policy for a priority. Running incidents keep the policy they
    opened with."""
    principal.require_org(Perm.ESCALATION_MANAGE)
    policy = await service.set_policy(
        db,
        clock,
        principal,
        facility=None,
        priority=priority,
        name=body.name,
        steps=[s.model_dump() for s in body.steps],
        repeat=body.repeat,
    )
    await db.commit()
    return _out(policy, None)


@router.put("/facilities/{facility_code}/escalation-policies/{priority}", response_model=PolicyOut)
async def put_facility_policy(
    facility_code: FacilityCodePath,
    priority: PriorityPath,
    body: PolicyIn,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> PolicyOut:
    """Set this facility's own policy for a priority (overrides the organisation's there)."""
    fac = await _facility(db, principal, facility_code, Perm.ESCALATION_MANAGE)
    policy = await service.set_policy(
        db,
        clock,
        principal,
        facility=fac,
        priority=priority,
        name=body.name,
        steps=[s.model_dump() for s in body.steps],
        repeat=body.repeat,
    )
    await db.commit()
    return _out(policy, fac.code)


@router.delete(
    "/facilities/{facility_code}/escalation-policies/{priority}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_facility_policy(
    facility_code: FacilityCodePath,
    priority: PriorityPath,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Response:
    """Remove the facility's override: the organisation's policy applies there again."""
    fac = await _facility(db, principal, facility_code, Perm.ESCALATION_MANAGE)
    await service.delete_override(db, clock, principal, facility=fac, priority=priority)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/system/health", response_model=SystemHealthOut)
async def get_system_health(
    db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> SystemHealthOut:
    """Stalled background loops and undelivered bus messages: the console's health banner."""
    if not principal.has_perm_anywhere(Perm.SITES_READ):
        raise Forbidden("System health is shown to operators, guards and managers.")
    problems = await system_health(db, clock)
    return SystemHealthOut(
        status="degraded" if problems else "ok",
        checked_at=clock.now(),
        problems=[HealthProblemOut(**p.as_dict()) for p in problems],
    )
