"""REST API of the people domain (thin: parse, authorise, call the service, return)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.people import service
from watchfloor.people.models import Person, VettingStatus
from watchfloor.people.schemas import EMPLOYEE_ID_PATTERN, PersonCreate, PersonOut, PersonUpdate
from watchfloor.problems import NotFound
from watchfloor.schemas import CleanStr, Page
from watchfloor.sites.models import Facility
from watchfloor.sites.service import get_facility

router = APIRouter(tags=["people"])

FacilityCode = Annotated[
    str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
EmployeeIdPath = Annotated[str, Path(pattern=EMPLOYEE_ID_PATTERN)]
VettingQuery = Annotated[VettingStatus | None, Query(description="Only this vetting status.")]
ExpiringQuery = Annotated[
    int | None,
    Query(ge=0, le=3650, description="Only people whose vetting expires within this many days."),
]
ActiveQuery = Annotated[bool | None, Query(description="Only active (true) or inactive (false).")]
SearchQuery = Annotated[
    CleanStr | None, Query(max_length=100, description="Part of a name or an employee id.")
]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]

NO_PERSON = "No person has the employee id '{}'."


def _allows(principal: Principal, perm: Perm, facility: Facility) -> bool:
    return principal.allows(perm, facility_id=facility.id, region_id=facility.region_id)


def _require(principal: Principal, perm: Perm, facility: Facility) -> None:
    principal.require(perm, facility_id=facility.id, region_id=facility.region_id)


async def _readable_person(db: DB, principal: Principal, employee_id: str) -> Person:
    """The person, if the caller may read people at their facility; otherwise a 404 that does
    not tell a caller outside the facility whether the employee id exists."""
    person = await service.find_person(db, employee_id)
    if person is None or not _allows(principal, Perm.PEOPLE_READ, person.facility):
        raise NotFound(NO_PERSON.format(employee_id))
    return person


@router.get("/people", response_model=Page[PersonOut], summary="Search staff records")
async def search_people(
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    facility: Annotated[
        CleanStr | None, Query(max_length=40, description="Only this facility (its code).")
    ] = None,
    vetting_status: VettingQuery = None,
    expiring_within_days: ExpiringQuery = None,
    active: ActiveQuery = None,
    q: SearchQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PersonOut]:
    """Staff records across every facility the caller may read people at."""
    principal.require_anywhere(Perm.PEOPLE_READ)
    facility_id = None
    if facility:
        found = await get_facility(db, facility)
        _require(principal, Perm.PEOPLE_READ, found)
        facility_id = found.id
    filters = service.PeopleFilter(
        vetting_status=vetting_status,
        expiring_within_days=expiring_within_days,
        active=active,
        q=q,
        facility_id=facility_id,
    )
    rows, total = await service.list_people(
        db, clock, principal.scope(Perm.PEOPLE_READ), filters, limit=limit, offset=offset
    )
    today = clock.now().date()
    return Page(items=[service.to_out(p, today) for p in rows], total=total)


@router.get(
    "/facilities/{code}/people", response_model=Page[PersonOut], summary="Staff of a facility"
)
async def list_facility_people(
    code: FacilityCode,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    vetting_status: VettingQuery = None,
    expiring_within_days: ExpiringQuery = None,
    active: ActiveQuery = None,
    q: SearchQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PersonOut]:
    facility = await get_facility(db, code)
    _require(principal, Perm.PEOPLE_READ, facility)
    filters = service.PeopleFilter(
        vetting_status=vetting_status,
        expiring_within_days=expiring_within_days,
        active=active,
        q=q,
        facility_id=facility.id,
    )
    rows, total = await service.list_people(
        db, clock, principal.scope(Perm.PEOPLE_READ), filters, limit=limit, offset=offset
    )
    today = clock.now().date()
    return Page(items=[service.to_out(p, today) for p in rows], total=total)


@router.post(
    "/facilities/{code}/people",
    response_model=PersonOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a staff record",
)
async def create_person(
    code: FacilityCode,
    body: PersonCreate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> PersonOut:
    facility = await get_facility(db, code)
    _require(principal, Perm.PEOPLE_WRITE, facility)
    person = await service.create_person(db, clock, principal, facility, body)
    await db.commit()
    return service.to_out(person, clock.now().date())


@router.get("/people/{employee_id}", response_model=PersonOut, summary="One staff record")
async def get_person(
    employee_id: EmployeeIdPath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> PersonOut:
    person = await _readable_person(db, principal, employee_id)
    return service.to_out(person, clock.now().date())


@router.patch("/people/{employee_id}", response_model=PersonOut, summary="Change a staff record")
async def update_person(
    employee_id: EmployeeIdPath,
    body: PersonUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> PersonOut:
    person = await _readable_person(db, principal, employee_id)
    _require(principal, Perm.PEOPLE_WRITE, person.facility)
    new_facility = None
    if body.facility_code is not None:
        new_facility = await get_facility(db, body.facility_code)
        _require(principal, Perm.PEOPLE_WRITE, new_facility)
    person = await service.update_person(
        db, clock, principal, person, body, new_facility=new_facility
    )
    await db.commit()
    return service.to_out(person, clock.now().date())


@router.delete(
    "/people/{employee_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove a staff record",
)
async def delete_person(
    employee_id: EmployeeIdPath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    person = await _readable_person(db, principal, employee_id)
    _require(principal, Perm.PEOPLE_WRITE, person.facility)
    await service.delete_person(db, clock, principal, person)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
