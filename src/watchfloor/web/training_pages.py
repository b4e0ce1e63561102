"""Console pages of the training domain.

- `/training`: most urgent first — totals, facilities with the most staff behind (and expired
  vetting), the chart of compliance by course (`/training/chart.svg`), the overdue list with each
  person's vetting, forms to record a completion, import an LMS export (with the table of bad
  rows when it is refused) and send the managers' reminder, the import history, the course
  catalogue and the role requirements; filters by facility, region and course; CSV links.
- `/training/people/{employee_id}`: one person's courses, records and vetting.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.datastructures import UploadFile

from watchfloor.auth.principal import Principal
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import Problem
from watchfloor.rollout.deadlines import local_display
from watchfloor.sites.models import Facility, Region
from watchfloor.sites.service import scope_filter
from watchfloor.training import charts, service
from watchfloor.training.models import TrainingCourse, TrainingStatus
from watchfloor.web.perms import TRAINING_MANAGE, TRAINING_READ
from watchfloor.web.routes import (
    SECURITY_HEADERS,
    PagePrincipal,
    back_to,
    clean,
    error_page,
    form_str,
    redirect,
    render,
    shell,
)

router = APIRouter(include_in_schema=False)

#: training status -> the rollout stylesheet's colour class (red, amber, green)
STATUS_CLASS = {"overdue": "late", "never": "late", "due_soon": "due_soon", "current": "done"}


def _filter(request: Request) -> service.RecordFilter:
    q = request.query_params
    return service.RecordFilter(
        facility_code=clean(q.get("facility", ""), 40) or None,
        region_code=clean(q.get("region", ""), 40) or None,
        course_code=clean(q.get("course", ""), 40) or None,
    )


def _query(f: service.RecordFilter) -> str:
    return urlencode(
        {
            k: v
            for k, v in (
                ("facility", f.facility_code),
                ("region", f.region_code),
                ("course", f.course_code),
            )
            if v
        }
    )


def _labels() -> dict[str, Any]:
    return {
        "STATUS_LABELS": {s.value: label for s, label in service.STATUS_LABELS.items()},
        "STATUS_ORDER": [s.value for s in service.STATUS_ORDER],
        "STATUS_CLASS": STATUS_CLASS,
    }


async def _landing_ctx(
    request: Request, db: Any, clock: Any, settings: Any, principal: Principal
) -> dict[str, Any] | None:
    scope = principal.scope(TRAINING_READ)
    if scope.empty:
        return None
    f = _filter(request)
    now = clock.now()
    days = settings.training_due_soon_days
    ov = await service.overview(db, scope, now, days, f)
    rows, total = await service.status_rows(
        db, scope, now, days, f,
        statuses=(TrainingStatus.OVERDUE, TrainingStatus.NEVER, TrainingStatus.DUE_SOON),
        limit=150,
    )  # fmt: skip
    facilities = (
        await db.execute(
            select(Facility.code, Facility.name)
            .where(scope_filter(scope))
            .order_by(Facility.code)
            .limit(2000)
        )
    ).all()
    regions = (
        await db.execute(
            select(Region.code, Region.name)
            .join(Facility, Facility.region_id == Region.id)
            .where(scope_filter(scope))
            .group_by(Region.code, Region.name)
            .order_by(Region.code)
        )
    ).all()
    manage = principal.scope(TRAINING_MANAGE)
    return {
        "nav": "training",
        **_labels(),
        "ov": ov,
        "rows": rows,
        "row_total": total,
        "f": f,
        "query": _query(f),
        "facilities": facilities,
        "regions": regions,
        "courses": await service.courses(db),
        "requirements": await service.requirements(db),
        "imports": await service.list_imports(db, scope, limit=10),
        "reminders": await service.list_reminders(db, scope, limit=10),
        "can_manage": not manage.empty,
        "due_soon_days": days,
        "today": now.date(),
        "notice": clean(request.query_params.get("notice", ""), 300),
        "error": clean(request.query_params.get("error", ""), 300),
        "import_error": "",
        "import_errors": [],
        "import_total_errors": 0,
        "form": {"employee_id": "", "course_code": "", "completed_on": now.date().isoformat()},
    }


@router.get("/training")
async def training_landing(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    ctx = await _landing_ctx(request, db, clock, settings, principal)
    if ctx is None:
        return error_page(
            request, 403, "Not allowed", "Your roles do not include training records.", base
        )
    return render(request, "training_landing.html", {**base, **ctx})


@router.get("/training/chart.svg")
async def training_chart(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    scope = principal.scope(TRAINING_READ)
    if scope.empty:
        return Response(status_code=403)
    ov = await service.overview(
        db, scope, clock.now(), settings.training_due_soon_days, _filter(request)
    )
    return Response(
        charts.by_course_svg(ov.by_course),
        media_type="image/svg+xml",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


@router.get("/training/people/{employee_id}")
async def training_person(
    request: Request,
    employee_id: str,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: PagePrincipal,
) -> Response:
    base = await shell(request, db, principal)
    try:
        person = await service.person_in_scope(db, principal, TRAINING_READ, clean(employee_id, 40))
    except Problem:
        return error_page(request, 404, "No such person", "There is no such person.", base)
    now = clock.now()
    fac = person.facility
    items = await service.person_training(db, person, now, settings.training_due_soon_days)
    ctx = {
        **base,
        **_labels(),
        "nav": "training",
        "person": person,
        "facility": fac,
        "items": items,
        "vetting_expired": service.vetting_expired(
            person.vetting_status, person.vetting_expires_on, now.date()
        ),
        "local": lambda dt: local_display(dt, fac.timezone),
        "courses": await service.courses(db, include_inactive=False),
        "can_manage": principal.allows(
            TRAINING_MANAGE, facility_id=fac.id, region_id=fac.region_id
        ),
        "today": now.date(),
        "notice": clean(request.query_params.get("notice", ""), 300),
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "training_person.html", ctx)


def _back(form: Any, fallback: str = "/training") -> str:
    back = form_str(form, "back", 300)
    return back if back.startswith("/training") and "//" not in back else fallback


def _join(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


@router.post("/training/completions")
async def training_record(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    back = _back(form)
    employee_id = form_str(form, "employee_id", 40)
    course_code = form_str(form, "course_code", 40)
    when = form_str(form, "completed_on", 20)
    parsed = service.parse_date(when) if when else None
    try:
        if not employee_id:
            raise Problem("Employee id: enter the person's employee id.", status=422)
        if parsed is None:
            raise Problem(f"Completed on: '{when}' is not a date (YYYY-MM-DD).", status=422)
        rec = await service.record_completion(
            db, clock, principal, employee_id=employee_id, course_code=course_code,
            completed_on=parsed, note=form_str(form, "note", 300),
        )  # fmt: skip
        course = await db.get(TrainingCourse, rec.course_id)
        course_name = course.name if course is not None else course_code
    except Problem as exc:
        await db.rollback()
        detail = exc.detail
        if exc.status == 404:
            detail = f"Employee id: no person '{employee_id}' in your facilities."
        elif exc.status == 403:
            detail = "Your roles do not allow recording training here."
        return redirect(_join(back, error=detail))
    await db.commit()
    return redirect(
        _join(back, notice=f"Recorded: {course_name} for {employee_id}, completed {parsed}.")
    )


@router.post("/training/import")
async def training_import(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    form = await request.form()
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile):
            raise Problem("Choose the LMS export file (CSV) to import.", status=422)
        data = await upload.read(settings.training_import_max_bytes + 1)
        outcome = await service.import_completions(
            db, clock, principal, data, filename=upload.filename or "",
            max_bytes=settings.training_import_max_bytes,
            max_rows=settings.training_import_max_rows,
        )  # fmt: skip
    except Problem as exc:
        await db.rollback()
        ctx = await _landing_ctx(request, db, clock, settings, principal)
        if ctx is None:
            return error_page(
                request, 403, "Not allowed", "Your roles do not include training records.", base
            )
        ctx["import_error"] = exc.detail
        if isinstance(exc, service.ImportRejected):
            ctx["import_errors"] = exc.row_errors[: service.MAX_ERRORS_SHOWN]
            ctx["import_total_errors"] = exc.total_errors
        return render(request, "training_landing.html", {**base, **ctx}, status_code=exc.status)
    await db.commit()
    notice = (
        f"Imported {upload.filename or 'the file'}: {outcome.added} new records, "
        f"{outcome.skipped} already on record, {outcome.rows} rows."
    )
    return back_to("/training", notice=notice)


@router.post("/training/reminders")
async def training_remind(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    code = form_str(form, "facility_code", 40)
    manage = principal.scope(TRAINING_MANAGE)
    if manage.empty:
        return back_to("/training", error="Your roles do not allow sending reminders.")
    if code:
        facility = (
            await db.execute(select(Facility).where(Facility.code == code))
        ).scalar_one_or_none()
        if facility is None or not principal.allows(
            TRAINING_MANAGE, facility_id=facility.id, region_id=facility.region_id
        ):
            return back_to("/training", error=f"No facility '{code}' here.")
        facilities = [facility]
    else:
        facilities = await service.facilities_behind(
            db, manage, clock.now(), settings.training_due_soon_days
        )
    outcomes = []
    for fac in facilities[:500]:
        outcomes.append(
            await service.send_reminder(
                db,
                clock,
                principal,
                fac,
                due_soon_days=settings.training_due_soon_days,
                public_url=settings.public_url,
                trigger="manual",
            )  # fmt: skip
        )
    await db.commit()
    if len(outcomes) == 1:
        o = outcomes[0]
        notice = f"Reminder for {o.facility_name}: {o.why}."
    else:
        sent = sum(1 for o in outcomes if o.sent)
        notice = f"Reminders: {sent} sent, {len(outcomes) - sent} not needed or already sent today."
    back = _back(form)
    return redirect(_join(back, notice=notice))
