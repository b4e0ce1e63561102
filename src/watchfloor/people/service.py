"""Staff records: who works where, how to reach them, and whether their vetting is current.

The logic lives here (no HTTP): functions take a session and a clock, flush, and leave the commit
to the caller. Every change writes an audit record in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.clock import Clock
from watchfloor.people.models import Person, VettingStatus
from watchfloor.people.schemas import PersonCreate, PersonOut, PersonUpdate
from watchfloor.problems import Conflict, NotFound
from watchfloor.sites.models import Facility

Actor = Principal | str


@dataclass(frozen=True)
class PeopleFilter:
    """What a list of people is narrowed to; None means "any"."""

    vetting_status: VettingStatus | None = None
    expiring_within_days: int | None = None  # vetting expires between today and today + N days
    active: bool | None = None
    q: str | None = None  # part of a name or an employee id
    facility_id: int | None = None


def vetting_current(person: Person, today: date) -> bool:
    if person.vetting_status != VettingStatus.CLEARED:
        return False
    return person.vetting_expires_on is None or person.vetting_expires_on >= today


def to_out(person: Person, today: date) -> PersonOut:
    return PersonOut(
        id=person.id,
        employee_id=person.employee_id,
        facility_code=person.facility.code,
        given_name=person.given_name,
        family_name=person.family_name,
        job_title=person.job_title,
        role=person.role,
        email=person.email,
        phone=person.phone,
        contacts=list(person.contacts or []),
        vetting_status=person.vetting_status,
        vetting_expires_on=person.vetting_expires_on,
        vetting_current=vetting_current(person, today),
        active=person.active,
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


def _scoped(query: Select[Any], scope: Scope) -> Select[Any]:
    if scope.everything:
        return query
    if scope.empty:
        return query.where(false())
    conditions = []
    if scope.facility_ids:
        conditions.append(Person.facility_id.in_(scope.facility_ids))
    if scope.region_ids:
        conditions.append(
            Person.facility_id.in_(
                select(Facility.id).where(Facility.region_id.in_(scope.region_ids))
            )
        )
    return query.where(or_(*conditions))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_people(
    db: AsyncSession,
    clock: Clock,
    scope: Scope,
    filters: PeopleFilter,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Person], int]:
    """People within `scope` matching `filters`, by family then given name; and the total."""
    query = _scoped(select(Person), scope)
    if filters.facility_id is not None:
        query = query.where(Person.facility_id == filters.facility_id)
    if filters.vetting_status is not None:
        query = query.where(Person.vetting_status == filters.vetting_status.value)
    if filters.expiring_within_days is not None:
        today = clock.now().date()
        query = query.where(
            Person.vetting_expires_on.is_not(None),
            Person.vetting_expires_on >= today,
            Person.vetting_expires_on <= today + timedelta(days=filters.expiring_within_days),
        )
    if filters.active is not None:
        query = query.where(Person.active.is_(filters.active))
    if filters.q:
        pattern = f"%{_escape_like(filters.q.lower())}%"
        query = query.where(
            or_(
                func.lower(Person.given_name).like(pattern, escape="\\"),
                func.lower(Person.family_name).like(pattern, escape="\\"),
                func.lower(Person.employee_id).like(pattern, escape="\\"),
            )
        )
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (
        (
            await db.execute(
                query.order_by(Person.family_name, Person.given_name, Person.employee_id)
                .limit(limit)
                .offset(offset)
            )
        )
        .scalars()
        .all()
    )
    return list(rows), total


async def find_person(db: AsyncSession, employee_id: str) -> Person | None:
    return (
        await db.execute(select(Person).where(Person.employee_id == employee_id))
    ).scalar_one_or_none()


async def get_person(db: AsyncSession, employee_id: str) -> Person:
    person = await find_person(db, employee_id)
    if person is None:
        raise NotFound(f"No person has the employee id '{employee_id}'.")
    return person


def _duplicate(employee_id: str) -> Conflict:
    return Conflict(
        f"A person with the employee id '{employee_id}' already exists. "
        "Employee ids are unique across the organisation; change that record instead."
    )


def _snapshot(person: Person) -> dict[str, Any]:
    return {
        "employee_id": person.employee_id,
        "given_name": person.given_name,
        "family_name": person.family_name,
        "job_title": person.job_title,
        "role": person.role,
        "email": person.email,
        "phone": person.phone,
        "contacts": list(person.contacts or []),
        "vetting_status": person.vetting_status,
        "vetting_expires_on": person.vetting_expires_on,
        "active": person.active,
        "facility_id": person.facility_id,
    }


async def _flush_unique(db: AsyncSession, employee_id: str) -> None:
    """Flush in a savepoint so a racing duplicate becomes a 409, not a broken transaction."""
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise _duplicate(employee_id) from None


async def create_person(
    db: AsyncSession, clock: Clock, actor: Actor, facility: Facility, data: PersonCreate
) -> Person:
    if await find_person(db, data.employee_id) is not None:
        raise _duplicate(data.employee_id)
    now = clock.now()
    person = Person(
        facility_id=facility.id,
        employee_id=data.employee_id,
        given_name=data.given_name,
        family_name=data.family_name,
        job_title=data.job_title,
        role=data.role.value,
        email=data.email or "",
        phone=data.phone,
        contacts=[c.model_dump(mode="json") for c in data.contacts],
        vetting_status=data.vetting_status.value,
        vetting_expires_on=data.vetting_expires_on,
        active=data.active,
        created_at=now,
        updated_at=now,
    )
    person.facility = facility
    db.add(person)
    await _flush_unique(db, data.employee_id)
    await audit.record(
        db,
        clock,
        actor,
        "person.create",
        target_type="person",
        target_id=person.employee_id,
        facility_id=facility.id,
        details=_snapshot(person),
    )
    return person


async def update_person(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    person: Person,
    data: PersonUpdate,
    *,
    new_facility: Facility | None = None,
) -> Person:
    """Apply the fields that were sent; audit what changed (old and new values)."""
    before = _snapshot(person)
    sent = data.model_dump(mode="json", exclude_unset=True, exclude={"facility_code"})
    for name, value in sent.items():
        if name == "email":
            value = value or ""
        elif name == "vetting_expires_on":
            value = date.fromisoformat(value) if value else None
        setattr(person, name, value)
    if new_facility is not None and new_facility.id != person.facility_id:
        person.facility_id = new_facility.id
        person.facility = new_facility
    after = _snapshot(person)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if not changes:
        return person
    person.updated_at = clock.now()
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "person.update",
        target_type="person",
        target_id=person.employee_id,
        facility_id=person.facility_id,
        details={"changes": changes, "from_facility_id": before["facility_id"]},
    )
    return person


async def delete_person(db: AsyncSession, clock: Clock, actor: Actor, person: Person) -> None:
    details = _snapshot(person)
    facility_id = person.facility_id
    await db.delete(person)
    await db.flush()
    await audit.record(
        db,
        clock,
        actor,
        "person.delete",
        target_type="person",
        target_id=details["employee_id"],
        facility_id=facility_id,
        details=details,
    )


async def upsert_person(
    db: AsyncSession,
    clock: Clock,
    facility: Facility,
    data: PersonCreate,
    *,
    known: dict[str, Person] | None = None,
) -> tuple[Person, str]:
    """Create or update the person with `data.employee_id` at `facility` (for bulk imports).

    Returns the person and what happened: "created", "updated" or "unchanged". On an update only
    the fields set in `data` change (and the facility, when the person moved). `known` is a map of
    employee id to Person the caller loaded beforehand: when given, nothing is queried and new
    people are added to it. Writes no audit record: the caller records one for the whole import.
    """
    if known is not None:
        person = known.get(data.employee_id)
    else:
        person = await find_person(db, data.employee_id)
    now = clock.now()
    values = data.model_dump(mode="python")
    if person is None:
        person = Person(
            facility_id=facility.id,
            employee_id=data.employee_id,
            given_name=data.given_name,
            family_name=data.family_name,
            job_title=data.job_title,
            role=data.role.value,
            email=data.email or "",
            phone=data.phone,
            contacts=[c.model_dump(mode="json") for c in data.contacts],
            vetting_status=data.vetting_status.value,
            vetting_expires_on=data.vetting_expires_on,
            active=data.active,
            created_at=now,
            updated_at=now,
        )
        db.add(person)
        if known is not None:
            known[data.employee_id] = person
        return person, "created"
    changed = False
    for name in data.model_fields_set:
        value = values[name]
        if name == "contacts":
            value = [c.model_dump(mode="json") for c in data.contacts]
        elif name == "email":
            value = value or ""
        elif hasattr(value, "value"):
            value = value.value
        if getattr(person, name) != value:
            setattr(person, name, value)
            changed = True
    if person.facility_id != facility.id:
        person.facility_id = facility.id
        changed = True
    if changed:
        person.updated_at = now
    return person, "updated" if changed else "unchanged"


async def bulk_upsert_people(
    db: AsyncSession,
    clock: Clock,
    items: list[tuple[Facility, PersonCreate]],
    *,
    known: dict[str, Person] | None = None,
) -> dict[str, int]:
    """upsert_person for many people at once (imports): existing people are updated in place,
    new ones inserted with one batched statement. Returns counts by "created" / "updated" /
    "unchanged". Writes no audit record (the caller records one for the whole batch)."""
    from sqlalchemy import insert

    if known is None:
        ids = [data.employee_id for _f, data in items]
        rows = await db.execute(select(Person).where(Person.employee_id.in_(ids)))
        known = {p.employee_id: p for p in rows.scalars().all()}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    new_rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    now = clock.now()
    for facility, data in items:
        if data.employee_id in seen:
            raise ValueError(f"employee id {data.employee_id} appears twice in one batch")
        seen.add(data.employee_id)
        if data.employee_id in known:
            _person, what = await upsert_person(db, clock, facility, data, known=known)
            counts[what] += 1
            continue
        new_rows.append(
            {
                "facility_id": facility.id,
                "employee_id": data.employee_id,
                "given_name": data.given_name,
                "family_name": data.family_name,
                "job_title": data.job_title,
                "role": data.role.value,
                "email": data.email or "",
                "phone": data.phone,
                "contacts": [c.model_dump(mode="json") for c in data.contacts],
                "vetting_status": data.vetting_status.value,
                "vetting_expires_on": data.vetting_expires_on,
                "active": data.active,
                "created_at": now,
                "updated_at": now,
            }
        )
    for start in range(0, len(new_rows), 2000):
        await db.execute(insert(Person), new_rows[start : start + 2000])
    counts["created"] = len(new_rows)
    return counts
