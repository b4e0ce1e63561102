"""Recipient groups: named lists of people and response units, of a facility or of the whole
organisation. Every change is audited."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.clock import Clock
from watchfloor.notify.models import NotifyGroup, NotifyGroupMember
from watchfloor.notify.schemas import GroupIn, GroupOut, GroupUpdate
from watchfloor.people.models import Person
from watchfloor.problems import Conflict, InvalidInput
from watchfloor.sites.models import Facility, ResponseUnit


def visible(scope: Scope) -> object:
    """Groups a scope may see: organisation groups need an organisation-wide grant."""
    if scope.everything:
        return NotifyGroup.id.is_not(None)
    fac = select(Facility.id).where(
        or_(Facility.id.in_(scope.facility_ids), Facility.region_id.in_(scope.region_ids))
    )
    return NotifyGroup.facility_id.in_(fac)


async def list_groups(db: AsyncSession, scope: Scope) -> list[NotifyGroup]:
    return list(
        (
            await db.execute(
                select(NotifyGroup).where(visible(scope)).order_by(NotifyGroup.name, NotifyGroup.id)  # type: ignore[arg-type]
            )
        )
        .scalars()
        .all()
    )


async def members(
    db: AsyncSession, group_ids: Sequence[int]
) -> dict[int, tuple[list[str], list[str]]]:
    found: dict[int, tuple[list[str], list[str]]] = {g: ([], []) for g in group_ids}
    if not group_ids:
        return found
    rows = (
        await db.execute(
            select(NotifyGroupMember.group_id, Person.employee_id)
            .join(Person, Person.id == NotifyGroupMember.person_id)
            .where(NotifyGroupMember.group_id.in_(group_ids))
            .order_by(Person.employee_id)
        )
    ).all()
    for gid, emp in rows:
        found[gid][0].append(emp)
    urows = (
        await db.execute(
            select(NotifyGroupMember.group_id, Facility.code, ResponseUnit.code)
            .join(ResponseUnit, ResponseUnit.id == NotifyGroupMember.unit_id)
            .join(Facility, Facility.id == ResponseUnit.facility_id)
            .where(NotifyGroupMember.group_id.in_(group_ids))
            .order_by(Facility.code, ResponseUnit.code)
        )
    ).all()
    for gid, fcode, ucode in urows:
        found[gid][1].append(f"{fcode}/{ucode}")
    return found


async def group_out(db: AsyncSession, group: NotifyGroup) -> GroupOut:
    m = (await members(db, [group.id]))[group.id]
    facility = await db.get(Facility, group.facility_id) if group.facility_id else None
    return GroupOut(
        group_id=group.id,
        name=group.name,
        facility=facility.code if facility else None,
        description=group.description,
        people=m[0],
        units=m[1],
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


async def _resolve_members(
    db: AsyncSession, principal: Principal, perm: str, people: list[str], units: list[str]
) -> tuple[list[int], list[int]]:
    """Person and unit ids for the codes; each must exist and be inside the caller's scope
    (one outside is reported as unknown, so the scope is not probed)."""
    person_ids: list[int] = []
    if people:
        rows = (
            await db.execute(
                select(Person.id, Person.employee_id, Facility.id, Facility.region_id)
                .join(Facility, Facility.id == Person.facility_id)
                .where(Person.employee_id.in_(set(people)))
            )
        ).all()
        ok = {
            r.employee_id: r[0]
            for r in rows
            if principal.allows(perm, facility_id=r[2], region_id=r[3])  # type: ignore[arg-type]
        }
        missing = sorted(set(people) - set(ok))
        if missing:
            raise InvalidInput(f"Unknown people: {', '.join(missing[:10])}.")
        person_ids = sorted(set(ok.values()))
    unit_ids: list[int] = []
    for ref in sorted(set(units)):
        fcode, _, ucode = ref.partition("/")
        row = (
            await db.execute(
                select(ResponseUnit.id, Facility.id, Facility.region_id)
                .join(Facility, Facility.id == ResponseUnit.facility_id)
                .where(Facility.code == fcode, ResponseUnit.code == ucode)
            )
        ).first()
        if row is None or not principal.allows(perm, facility_id=row[1], region_id=row[2]):  # type: ignore[arg-type]
            raise InvalidInput(f"Unknown response unit '{ref}'.")
        unit_ids.append(row[0])
    return person_ids, unit_ids


async def _set_members(
    db: AsyncSession, group_id: int, person_ids: list[int], unit_ids: list[int]
) -> None:
    await db.execute(delete(NotifyGroupMember).where(NotifyGroupMember.group_id == group_id))
    for pid in person_ids:
        db.add(NotifyGroupMember(group_id=group_id, person_id=pid))
    for uid in unit_ids:
        db.add(NotifyGroupMember(group_id=group_id, unit_id=uid))
    await db.flush()


async def _name_taken(
    db: AsyncSession, facility_id: int | None, name: str, not_id: int = 0
) -> bool:
    cond = (
        NotifyGroup.facility_id.is_(None)
        if facility_id is None
        else NotifyGroup.facility_id == facility_id
    )
    found = await db.scalar(
        select(NotifyGroup.id).where(cond, NotifyGroup.name == name, NotifyGroup.id != not_id)
    )
    return found is not None


async def create_group(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    perm: str,
    data: GroupIn,
    facility: Facility | None,
) -> NotifyGroup:
    if await _name_taken(db, facility.id if facility else None, data.name):
        raise Conflict(f"A group named '{data.name}' exists already.")
    person_ids, unit_ids = await _resolve_members(db, principal, perm, data.people, data.units)
    now = clock.now()
    group = NotifyGroup(
        facility_id=facility.id if facility else None,
        name=data.name,
        description=data.description,
        created_at=now,
        updated_at=now,
    )
    db.add(group)
    await db.flush()
    await _set_members(db, group.id, person_ids, unit_ids)
    await audit.record(
        db,
        clock,
        principal,
        "notify.group.create",
        target_type="notify_group",
        target_id=group.id,
        facility_id=group.facility_id,
        details={"name": group.name, "people": data.people, "units": data.units},
    )
    return group


async def update_group(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    perm: str,
    group: NotifyGroup,
    data: GroupUpdate,
) -> NotifyGroup:
    changes: dict[str, object] = {}
    if data.name is not None and data.name != group.name:
        if await _name_taken(db, group.facility_id, data.name, group.id):
            raise Conflict(f"A group named '{data.name}' exists already.")
        changes["name"] = [group.name, data.name]
        group.name = data.name
    if data.description is not None and data.description != group.description:
        changes["description"] = True
        group.description = data.description
    if data.people is not None or data.units is not None:
        current = (await members(db, [group.id]))[group.id]
        people = data.people if data.people is not None else current[0]
        units = data.units if data.units is not None else current[1]
        person_ids, unit_ids = await _resolve_members(db, principal, perm, people, units)
        await _set_members(db, group.id, person_ids, unit_ids)
        changes["people"], changes["units"] = people, units
    group.updated_at = clock.now()
    await audit.record(
        db,
        clock,
        principal,
        "notify.group.update",
        target_type="notify_group",
        target_id=group.id,
        facility_id=group.facility_id,
        details=changes,
    )
    await db.flush()
    return group


async def delete_group(
    db: AsyncSession, clock: Clock, principal: Principal, group: NotifyGroup
) -> None:
    await audit.record(
        db,
        clock,
        principal,
        "notify.group.delete",
        target_type="notify_group",
        target_id=group.id,
        facility_id=group.facility_id,
        details={"name": group.name},
    )
    await db.execute(delete(NotifyGroupMember).where(NotifyGroupMember.group_id == group.id))
    await db.delete(group)
    await db.flush()
