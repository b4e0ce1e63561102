"""REST API of alarms: the active alarm queue and the alarm rules.

Reading needs `alarms:read`; organisation rules are visible to anyone holding it, a facility's
overrides only within scope. Writing an organisation rule needs `alarm_rules:write` across the
organisation; a facility override needs it at that facility.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from watchfloor.alarms import service
from watchfloor.alarms.models import AlarmRule
from watchfloor.alarms.schemas import AlarmOut, RuleCreate, RuleOut, RuleUpdate
from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.problems import NotFound
from watchfloor.schemas import Page
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["alarms"])

RuleId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Alarm rule id.")]
FacilityQuery = Annotated[
    str | None, Query(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
]


async def _facility_for(db: DB, principal: Principal, code: str, perm: Perm) -> Facility:
    facility = await sites.get_facility(db, code)
    principal.require(perm, facility_id=facility.id, region_id=facility.region_id)
    return facility


async def _rule_for(
    db: DB, principal: Principal, rule_id: int, *, write: bool
) -> tuple[AlarmRule, Facility | None]:
    principal.require_anywhere(Perm.ALARMS_READ)
    rule, facility = await service.get_rule(db, rule_id)
    if facility is not None and not principal.allows(
        Perm.ALARMS_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"There is no alarm rule {rule_id}.")
    if write:
        if facility is None:
            principal.require_org(Perm.RULES_WRITE)
        else:
            principal.require(
                Perm.RULES_WRITE, facility_id=facility.id, region_id=facility.region_id
            )
    return rule, facility


@router.get("/alarms", response_model=Page[AlarmOut])
async def list_alarms(
    db: DB,
    principal: CurrentPrincipal,
    facility: FacilityQuery = None,
    priority: Annotated[int | None, Query(ge=1, le=4)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[AlarmOut]:
    """The active alarm queue in the caller's scope (alarms cancelled by their sender stay until
    an operator confirms them): P1 first, then oldest first."""
    principal.require_anywhere(Perm.ALARMS_READ)
    facility_id = None
    if facility:
        facility_id = (await _facility_for(db, principal, facility, Perm.ALARMS_READ)).id
    items, total = await service.list_active_alarms(
        db,
        principal.scope(Perm.ALARMS_READ),
        facility_id=facility_id,
        priority=priority,
        limit=limit,
        offset=offset,
    )
    return Page[AlarmOut](items=items, total=total)


@router.get("/alarm-rules", response_model=list[RuleOut])
async def list_rules(
    db: DB, principal: CurrentPrincipal, facility: FacilityQuery = None
) -> list[RuleOut]:
    """Organisation rules and the facility overrides in scope (with `facility`: the rules that
    can apply there — an override replaces the organisation rule with the same key)."""
    principal.require_anywhere(Perm.ALARMS_READ)
    facility_id = None
    if facility:
        facility_id = (await _facility_for(db, principal, facility, Perm.ALARMS_READ)).id
    return await service.list_rules(db, principal.scope(Perm.ALARMS_READ), facility_id=facility_id)


@router.post("/alarm-rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
async def create_rule(
    body: RuleCreate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> RuleOut:
    """Add an organisation rule, or (with `facility_code`) a facility override."""
    principal.require_anywhere(Perm.RULES_WRITE)
    facility = None
    if body.facility_code:
        facility = await _facility_for(db, principal, body.facility_code, Perm.RULES_WRITE)
    else:
        principal.require_org(Perm.RULES_WRITE)
    rule = await service.create_rule(db, clock, principal, body, facility)
    await db.commit()
    return service.rule_out(rule, facility)


@router.get("/alarm-rules/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: RuleId, db: DB, principal: CurrentPrincipal) -> RuleOut:
    rule, facility = await _rule_for(db, principal, rule_id, write=False)
    return service.rule_out(rule, facility)


@router.patch("/alarm-rules/{rule_id}", response_model=RuleOut)
async def update_rule(
    rule_id: RuleId, body: RuleUpdate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> RuleOut:
    rule, facility = await _rule_for(db, principal, rule_id, write=True)
    rule = await service.update_rule(db, clock, principal, rule, body)
    await db.commit()
    return service.rule_out(rule, facility)


@router.delete("/alarm-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(
    rule_id: RuleId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Delete a rule (the default organisation rules can only be disabled)."""
    rule, _facility = await _rule_for(db, principal, rule_id, write=True)
    await service.delete_rule(db, clock, principal, rule)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
