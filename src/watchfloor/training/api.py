"""HTTP API of the training domain (thin: parse, authorise, call the service).

Reading needs `training:read` (records, overdue lists and vetting expiry are personal data: a
facility manager sees their own facility's people); entering and deleting completions, importing
LMS exports and sending reminders need `training:manage` where the people work; the course
catalogue and the role requirements are organisation-wide and need `training:manage` with
organisation scope. A person, record or facility outside the caller's scope answers 404. Every
change is audited (an import as one record with its counts).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, UploadFile, status
from fastapi.responses import Response
from sqlalchemy import select

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.people.schemas import EMPLOYEE_ID_PATTERN
from watchfloor.problems import NotFound
from watchfloor.rollout.reports import csv_text
from watchfloor.sites.models import Facility
from watchfloor.training import service
from watchfloor.training.models import TrainingStatus
from watchfloor.training.schemas import (
    CODE_PATTERN,
    CompletionIn,
    CompletionOut,
    CompletionPage,
    Counts,
    CourseIn,
    CourseOut,
    CourseSummary,
    CourseUpdate,
    FacilitySummary,
    ImportOut,
    OverviewOut,
    PersonCourseOut,
    PersonTrainingOut,
    ReminderIn,
    ReminderOut,
    ReminderResult,
    RequirementIn,
    RequirementOut,
    StatusOut,
    StatusPage,
)

router = APIRouter(tags=["training"])

CodeQ = Annotated[str | None, Query(max_length=40, pattern=r"^[^\x00]*$")]
CoursePath = Annotated[str, Path(pattern=CODE_PATTERN, description="Course code.")]
RolePath = Annotated[str, Path(pattern=r"^[a-z_]{1,40}$", description="A Person.role value.")]
EmployeePath = Annotated[str, Path(pattern=EMPLOYEE_ID_PATTERN, description="Employee id.")]
CompletionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Training record id.")]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def read_scope(principal: Principal) -> Scope:
    principal.require_anywhere(Perm.TRAINING_READ)
    return principal.scope(Perm.TRAINING_READ)


def _csv(body: str, name: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def completion_out(c: Any, p: Any, fac: Any, course: Any) -> CompletionOut:
    return CompletionOut(
        id=c.id,
        employee_id=p.employee_id,
        person_name=f"{p.given_name} {p.family_name}",
        facility_code=fac.code,
        course_code=course.code,
        course_name=course.name,
        completed_on=c.completed_on,
        expires_on=c.expires_on,
        source=c.source,
        import_id=c.import_id,
        recorded_by=c.recorded_by,
        recorded_at=c.recorded_at,
        note=c.note,
    )


def status_out(r: service.StatusRow) -> StatusOut:
    p = r.person
    return StatusOut(
        employee_id=p.employee_id,
        person_name=f"{p.given_name} {p.family_name}",
        role=p.role,
        facility_code=r.facility.code,
        facility_name=r.facility.name,
        course_code=r.course.code,
        course_name=r.course.name,
        status=r.status.value,
        expires_on=r.expires_on,
        days_overdue=r.days_overdue,
        vetting_status=p.vetting_status,
        vetting_expires_on=p.vetting_expires_on,
        vetting_expired=r.vetting_expired,
    )


# ---------------------------------------------------------------------------- courses


@router.get("/training/courses", response_model=list[CourseOut])
async def list_courses(db: DB, principal: CurrentPrincipal) -> list[Any]:
    """The course catalogue with each course's refresh interval."""
    read_scope(principal)
    return await service.courses(db)


@router.post("/training/courses", response_model=CourseOut, status_code=status.HTTP_201_CREATED)
async def create_course(
    body: CourseIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Add a course (training:manage with organisation scope)."""
    course = await service.create_course(
        db, clock, principal, code=body.code, name=body.name,
        refresh_months=body.refresh_months, description=body.description,
    )  # fmt: skip
    await db.commit()
    return course


@router.patch("/training/courses/{course_code}", response_model=CourseOut)
async def update_course(
    course_code: CoursePath,
    body: CourseUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Change a course's name, description, refresh interval or active flag (organisation
    scope). A new interval applies to completions recorded from now on."""
    course = await service.update_course(
        db, clock, principal, course_code, body.model_dump(exclude_unset=True)
    )
    await db.commit()
    return course


@router.get("/training/courses.csv", response_class=Response)
async def courses_csv(db: DB, principal: CurrentPrincipal) -> Response:
    read_scope(principal)
    rows = [
        [c.code, c.name, c.refresh_months, c.active, c.description, c.updated_at, c.updated_by]
        for c in await service.courses(db)
    ]
    header = ["code", "name", "refresh_months", "active", "description", "updated_at_utc",
              "updated_by"]  # fmt: skip
    return _csv(csv_text(header, rows), "training-courses.csv")


# ---------------------------------------------------------------------------- requirements


@router.get("/training/requirements", response_model=list[RequirementOut])
async def list_requirements(db: DB, principal: CurrentPrincipal) -> list[RequirementOut]:
    """Which courses each role must hold."""
    read_scope(principal)
    return [
        RequirementOut(role=r, course_code=c.code, course_name=c.name)
        for r, c in await service.requirements(db)
    ]


@router.post(
    "/training/requirements", response_model=RequirementOut, status_code=status.HTTP_201_CREATED
)
async def add_requirement(
    body: RequirementIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> RequirementOut:
    """Require a course of a role (organisation scope)."""
    course = await service.add_requirement(db, clock, principal, body.role, body.course_code)
    await db.commit()
    return RequirementOut(role=body.role, course_code=course.code, course_name=course.name)


@router.delete(
    "/training/requirements/{role}/{course_code}", status_code=status.HTTP_204_NO_CONTENT
)
async def remove_requirement(
    role: RolePath, course_code: CoursePath, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Stop requiring a course of a role (organisation scope)."""
    await service.remove_requirement(db, clock, principal, role, course_code)
    await db.commit()
    return Response(status_code=204)


@router.get("/training/requirements.csv", response_class=Response)
async def requirements_csv(db: DB, principal: CurrentPrincipal) -> Response:
    read_scope(principal)
    rows = [[r, c.code, c.name] for r, c in await service.requirements(db)]
    return _csv(csv_text(["role", "course_code", "course_name"], rows), "training-requirements.csv")


# ---------------------------------------------------------------------------- completions


@router.get("/training/completions", response_model=CompletionPage)
async def list_completions(
    db: DB,
    principal: CurrentPrincipal,
    facility: CodeQ = None,
    region: CodeQ = None,
    course: CodeQ = None,
    employee_id: CodeQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> CompletionPage:
    """Training records in your scope, newest first."""
    scope = read_scope(principal)
    f = service.RecordFilter(facility, region, course, employee_id)
    rows, total = await service.list_completions(db, scope, f, limit=limit, offset=offset)
    return CompletionPage(items=[completion_out(*r) for r in rows], total=total)


@router.post(
    "/training/completions", response_model=CompletionOut, status_code=status.HTTP_201_CREATED
)
async def add_completion(
    body: CompletionIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> CompletionOut:
    """Record that a person completed a course on a day; expires_on follows from the course's
    refresh interval."""
    rec = await service.record_completion(
        db, clock, principal, employee_id=body.employee_id, course_code=body.course_code,
        completed_on=body.completed_on, note=body.note,
    )  # fmt: skip
    await db.commit()
    rows, _t = await service.list_completions(
        db, Scope(everything=True), service.RecordFilter(employee_id=body.employee_id), limit=1000
    )
    return next(completion_out(*r) for r in rows if r[0].id == rec.id)


@router.delete("/training/completions/{completion_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_completion(
    completion_id: CompletionId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Remove a record entered by mistake."""
    await service.delete_completion(db, clock, principal, completion_id)
    await db.commit()
    return Response(status_code=204)


@router.get("/training/completions.csv", response_class=Response)
async def completions_csv(
    db: DB,
    principal: CurrentPrincipal,
    facility: CodeQ = None,
    region: CodeQ = None,
    course: CodeQ = None,
) -> Response:
    """Every training record in your scope as CSV."""
    scope = read_scope(principal)
    rows, _t = await service.list_completions(
        db, scope, service.RecordFilter(facility, region, course), limit=10_000_000
    )
    header = ["record_id", "employee_id", "person_name", "facility_code", "course_code",
              "course_name", "completed_on", "expires_on", "source", "import_id", "recorded_by",
              "recorded_at_utc", "note"]  # fmt: skip
    body = csv_text(
        header,
        (
            [
                c.id,
                p.employee_id,
                f"{p.given_name} {p.family_name}",
                fa.code,
                co.code,
                co.name,
                c.completed_on,
                c.expires_on,
                c.source,
                c.import_id,
                c.recorded_by,
                c.recorded_at,
                c.note,
            ]  # fmt: skip
            for c, p, fa, co in rows
        ),
    )
    return _csv(body, "training-records.csv")


# ---------------------------------------------------------------------------- status


@router.get("/training/overdue", response_model=StatusPage)
async def overdue(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    facility: CodeQ = None,
    region: CodeQ = None,
    course: CodeQ = None,
    include_due_soon: bool = False,
    limit: Limit = 200,
    offset: Offset = 0,
) -> StatusPage:
    """Staff behind on a required course: never done first, then the longest expired (and due
    soon with include_due_soon), each with their vetting status and expiry."""
    scope = read_scope(principal)
    statuses = [TrainingStatus.OVERDUE, TrainingStatus.NEVER]
    if include_due_soon:
        statuses.append(TrainingStatus.DUE_SOON)
    now = clock.now()
    rows, total = await service.status_rows(
        db, scope, now, settings.training_due_soon_days,
        service.RecordFilter(facility, region, course), statuses=statuses,
        limit=limit, offset=offset,
    )  # fmt: skip
    return StatusPage(as_of=now, items=[status_out(r) for r in rows], total=total)


@router.get("/training/overdue.csv", response_class=Response)
async def overdue_csv(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    facility: CodeQ = None,
    region: CodeQ = None,
    course: CodeQ = None,
    include_due_soon: bool = True,
) -> Response:
    """The overdue list as CSV (with due soon unless include_due_soon=false)."""
    scope = read_scope(principal)
    statuses = [TrainingStatus.OVERDUE, TrainingStatus.NEVER]
    if include_due_soon:
        statuses.append(TrainingStatus.DUE_SOON)
    rows, _t = await service.status_rows(
        db, scope, clock.now(), settings.training_due_soon_days,
        service.RecordFilter(facility, region, course), statuses=statuses, limit=10_000_000,
    )  # fmt: skip
    header = list(StatusOut.model_fields)
    body = csv_text(header, ([getattr(s, k) for k in header] for s in map(status_out, rows)))
    return _csv(body, "training-overdue.csv")


@router.get("/training/overview", response_model=OverviewOut)
async def overview(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    facility: CodeQ = None,
    region: CodeQ = None,
    course: CodeQ = None,
) -> OverviewOut:
    """Counts by status per course and per facility (most behind first), expired vetting."""
    scope = read_scope(principal)
    ov = await service.overview(
        db, scope, clock.now(), settings.training_due_soon_days,
        service.RecordFilter(facility, region, course),
    )  # fmt: skip
    return OverviewOut(
        as_of=ov.as_of,
        totals=Counts(**ov.totals),
        people=ov.people,
        vetting_expired=ov.vetting_expired,
        by_course=[
            CourseSummary(course_code=c, course_name=n, counts=Counts(**k))
            for c, n, k in ov.by_course
        ],
        facilities=[
            FacilitySummary(
                facility_code=f.code,
                facility_name=f.name,
                region_code=f.region_code,
                counts=Counts(**f.counts),
                vetting_expired=f.vetting_expired,
            )  # fmt: skip
            for f in ov.facilities
        ],
    )


@router.get("/training/people/{employee_id}", response_model=PersonTrainingOut)
async def person_training(
    employee_id: EmployeePath,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> PersonTrainingOut:
    """One person's required courses (most urgent first), records and vetting."""
    read_scope(principal)
    person = await service.person_in_scope(db, principal, Perm.TRAINING_READ, employee_id)
    now = clock.now()
    items = await service.person_training(db, person, now, settings.training_due_soon_days)
    fac = person.facility
    return PersonTrainingOut(
        employee_id=person.employee_id,
        person_name=f"{person.given_name} {person.family_name}",
        role=person.role,
        facility_code=fac.code,
        vetting_status=person.vetting_status,
        vetting_expires_on=person.vetting_expires_on,
        vetting_expired=service.vetting_expired(
            person.vetting_status, person.vetting_expires_on, now.date()
        ),
        courses=[
            PersonCourseOut(
                course_code=pc.course.code,
                course_name=pc.course.name,
                required=pc.required,
                status=pc.status.value if pc.status else None,
                expires_on=pc.expires_on,
                completions=[completion_out(c, person, fac, pc.course) for c in pc.completions],
            )
            for pc in items
        ],
    )


# ---------------------------------------------------------------------------- imports


def import_out(i: Any) -> ImportOut:
    return ImportOut(
        id=i.id, filename=i.filename, sha256=i.sha256, imported_at=i.imported_at,
        imported_by=i.imported_by, rows=i.rows, added=i.added, skipped=i.skipped,
        facility_count=len(i.facility_ids),
    )  # fmt: skip


@router.post("/training/imports", response_model=ImportOut, status_code=status.HTTP_201_CREATED)
async def import_lms(
    file: Annotated[UploadFile, File(description="The LMS export (CSV).")],
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> ImportOut:
    """Import completions from an LMS export (CSV with employee_id, course_code, completed_on).
    Every row is checked first; if any is bad nothing is written and the answer (422) lists each
    bad row with its column, value and why. Rows already on record are skipped."""
    principal.require_anywhere(Perm.TRAINING_MANAGE)
    data = await file.read(settings.training_import_max_bytes + 1)
    outcome = await service.import_completions(
        db, clock, principal, data, filename=file.filename or "",
        max_bytes=settings.training_import_max_bytes, max_rows=settings.training_import_max_rows,
    )  # fmt: skip
    await db.commit()
    imp = (await service.list_imports(db, Scope(everything=True), limit=1))[0]
    assert imp.id == outcome.import_id
    return import_out(imp)


@router.get("/training/imports", response_model=list[ImportOut])
async def list_imports(db: DB, principal: CurrentPrincipal) -> list[ImportOut]:
    """Import history, newest first (imports touching only facilities in your scope)."""
    scope = read_scope(principal)
    return [import_out(i) for i in await service.list_imports(db, scope)]


@router.get("/training/imports.csv", response_class=Response)
async def imports_csv(db: DB, principal: CurrentPrincipal) -> Response:
    scope = read_scope(principal)
    header = list(ImportOut.model_fields)
    rows = (
        [getattr(o, k) for k in header]
        for o in map(import_out, await service.list_imports(db, scope, limit=100_000))
    )
    return _csv(csv_text(header, rows), "training-imports.csv")


# ---------------------------------------------------------------------------- reminders


async def facility_for(db: Any, principal: Principal, perm: Perm, code: str) -> Facility:
    facility = (
        await db.execute(select(Facility).where(Facility.code == code[:40]))
    ).scalar_one_or_none()
    if facility is None or not principal.allows(
        perm, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"No facility has the code '{code}'.")
    return facility


@router.post("/training/reminders", response_model=list[ReminderResult])
async def send_reminders(
    body: ReminderIn, db: DB, clock: ClockDep, settings: SettingsDep, principal: CurrentPrincipal
) -> list[ReminderResult]:
    """Send the reminder digest now to the facility's security managers (or to every facility
    in your scope with staff behind). At most one per facility per day: a facility already
    reminded today is reported, not sent again."""
    principal.require_anywhere(Perm.TRAINING_MANAGE)
    if body.facility_code:
        facilities = [await facility_for(db, principal, Perm.TRAINING_MANAGE, body.facility_code)]
    else:
        facilities = await service.facilities_behind(
            db, principal.scope(Perm.TRAINING_MANAGE), clock.now(), settings.training_due_soon_days
        )
    out = []
    for fac in facilities:
        r = await service.send_reminder(
            db, clock, principal, fac, due_soon_days=settings.training_due_soon_days,
            public_url=settings.public_url, trigger="manual",
        )  # fmt: skip
        out.append(ReminderResult(**r.__dict__))
    await db.commit()
    return out


def reminder_out(r: Any, f: Any) -> ReminderOut:
    return ReminderOut(
        facility_code=f.code, day=r.day, sent_at=r.sent_at, sent_by=r.sent_by,
        trigger=r.trigger, overdue=r.overdue, due_soon=r.due_soon, recipients=r.recipients,
        alert_id=r.alert_id,
    )  # fmt: skip


@router.get("/training/reminders", response_model=list[ReminderOut])
async def list_reminders(db: DB, principal: CurrentPrincipal) -> list[ReminderOut]:
    """Reminders sent, newest first."""
    scope = read_scope(principal)
    return [reminder_out(r, f) for r, f in await service.list_reminders(db, scope)]


@router.get("/training/reminders.csv", response_class=Response)
async def reminders_csv(db: DB, principal: CurrentPrincipal) -> Response:
    scope = read_scope(principal)
    header = list(ReminderOut.model_fields)
    rows = (
        [getattr(o, k) for k in header]
        for o in (
            reminder_out(r, f) for r, f in await service.list_reminders(db, scope, limit=100_000)
        )
    )
    return _csv(csv_text(header, rows), "training-reminders.csv")
