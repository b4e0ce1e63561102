"""Console pages of facility security assessments.

- `/assessments`: every facility in scope with its next assessment (overdue and due soon first),
  the assessments under way, and a form to schedule one;
- `/assessments/{id}`: one assessment: the checklist by area with its answers, the FSL
  calculator (each factor, the total, the level, the intangible adjustment and its
  justification), the findings with their evidence, the PDF report;
- `/assessments/findings`: findings across facilities with filters, a chart and the CSV export.

Reading needs `assessments:read` at the facility (anything outside the caller's scope is a 404);
every form needs `assessments:write` there. The forms call the same service functions as the API.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from watchfloor.assessments import api as assessments_api
from watchfloor.assessments import fsl, report, service
from watchfloor.assessments.models import (
    AREA_LABELS,
    Answer,
    Area,
    Assessment,
    AssessmentKind,
    FindingStatus,
    Severity,
)
from watchfloor.assessments.schemas import (
    AssessmentCreate,
    AssessmentUpdate,
    FindingCreate,
    FindingUpdate,
)
from watchfloor.auth.principal import Principal
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import Problem
from watchfloor.sites import service as sites_service
from watchfloor.sites.models import Facility
from watchfloor.web.perms import ASSESSMENTS_READ, ASSESSMENTS_WRITE
from watchfloor.web.routes import (
    PagePrincipal,
    error_page,
    form_str,
    redirect,
    render,
    shell,
)

router = APIRouter(include_in_schema=False)

STATUS_LABELS = {
    "overdue": "Overdue",
    "due_soon": "Due soon",
    "scheduled": "Scheduled",
    "ok": "Up to date",
    "in_progress": "In progress",
    "completed": "Completed",
}
ANSWER_LABELS = {
    Answer.YES: "Yes",
    Answer.PARTIAL: "Partly",
    Answer.NO: "No",
    Answer.NOT_APPLICABLE: "N/A",
}


def _parse_id(value: str) -> int | None:
    """A positive id that fits the 32-bit id columns, else None (the page answers 404)."""
    if not value.isdigit() or not 0 < len(value) < 11:
        return None
    number = int(value)
    return number if 0 < number <= 2_147_483_647 else None


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        return f"{where}: {first['msg']}"
    if isinstance(exc, Problem):
        return exc.detail
    return str(exc)


def _back(url: str, **params: str) -> Response:
    return redirect(url + ("?" + urlencode(params) if params else ""))


def _int_or_none(form: FormData, name: str) -> int | str | None:
    """An integer form field: None when blank; the raw text when not a number (pydantic then
    names the field in its error)."""
    raw = form_str(form, name, 20).replace(",", "")
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def _date_or_none(form: FormData, name: str) -> str | None:
    raw = form_str(form, name, 20)
    return raw or None


async def _in_scope(
    db: Any, principal: Principal, assessment_id: int
) -> tuple[Assessment, Facility] | None:
    a = await db.get(Assessment, assessment_id)
    if a is None:
        return None
    facility = await db.get(Facility, a.facility_id)
    if facility is None or not principal.allows(
        ASSESSMENTS_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        return None
    return a, facility


def _can_write(principal: Principal, facility: Facility) -> bool:
    return principal.allows(
        ASSESSMENTS_WRITE, facility_id=facility.id, region_id=facility.region_id
    )


# ---------------------------------------------------------------------------- list


@router.get("/assessments")
async def assessments_page(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(ASSESSMENTS_READ)
    if scope.empty:
        return error_page(
            request, 403, "No assessments", "Your roles do not include assessments.", base
        )
    now = clock.now()
    due = await service.due_list(db, scope, now, due_soon_days=settings.assessments_due_soon_days)
    rows, total = await service.list_assessments(db, scope, limit=200)
    counts = await service.open_finding_counts(db, [a.id for a in rows])
    facilities = {e.facility.id: e.facility for e in due}
    write_scope = principal.scope(ASSESSMENTS_WRITE)
    schedulable: list[Facility] = []
    if not write_scope.empty:
        schedulable = list(
            (
                await db.scalars(
                    sites_service.facility_query(write_scope).order_by(Facility.code).limit(5000)
                )
            ).all()
        )
    summary = {k: sum(1 for e in due if e.status == k) for k in ("overdue", "due_soon")}
    ctx = {
        **base,
        "nav": "assessments",
        "due": due,
        "summary": summary,
        "items": [(a, facilities.get(a.facility_id), counts.get(a.id, 0)) for a in rows],
        "total": total,
        "schedulable": schedulable,
        "labels": STATUS_LABELS,
        "today": now.date().isoformat(),
        "error": request.query_params.get("error", "")[:300],
    }
    return render(request, "assessments_list.html", ctx)


@router.post("/assessments")
async def assessment_create(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    try:
        when = _date_or_none(form, "scheduled_for")
        body = AssessmentCreate.model_validate(
            {
                "facility": form_str(form, "facility_code", 40),
                "kind": form_str(form, "kind", 20) or AssessmentKind.RECURRING,
                "directive_ref": form_str(form, "directive_ref", 120),
                "assessor": form_str(form, "assessor", 200),
                **(
                    {
                        "scheduled_for": datetime.combine(
                            date.fromisoformat(when), time(12, 0), tzinfo=UTC
                        )
                    }
                    if when
                    else {}
                ),
            }
        )
        facility = await sites_service.get_facility(db, body.facility)
        principal.require(ASSESSMENTS_WRITE, facility_id=facility.id, region_id=facility.region_id)
        a = await service.create_assessment(db, clock, principal, facility, body)
    except (Problem, ValidationError, ValueError) as exc:
        await db.rollback()
        return _back("/assessments", error=_message(exc))
    await db.commit()
    return redirect(f"/assessments/{a.id}")


# ---------------------------------------------------------------------------- findings


@router.get("/assessments/findings")
async def findings_page(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(ASSESSMENTS_READ)
    if scope.empty:
        return error_page(
            request, 403, "No assessments", "Your roles do not include assessments.", base
        )
    q = request.query_params
    status = q.get("status", "open")
    status = status if status in ("open", "closed", "all") else "open"
    area = q.get("area", "")
    area = area if area in AREA_LABELS else ""
    severity = q.get("severity", "")
    severity = severity if severity in {s.value for s in Severity} else ""
    overdue = q.get("overdue", "") in ("1", "on", "true")
    facility_code = q.get("facility", "")[:40]
    facility_id = None
    if facility_code:
        try:
            f = await sites_service.get_facility(db, facility_code)
        except Problem:
            f = None
        if f is None or not principal.allows(
            ASSESSMENTS_READ, facility_id=f.id, region_id=f.region_id
        ):
            return error_page(request, 404, "No such facility", "There is no such facility.", base)
        facility_id = f.id
    rows, total = await service.list_findings(
        db,
        scope,
        clock.now(),
        facility_id=facility_id,
        status=None if status == "all" else status,
        overdue=overdue,
        area=area or None,
        severity=severity or None,
        limit=500,
    )
    codes: dict[int, Facility] = {}
    for row in rows:
        if row.facility_id not in codes:
            fac = await db.get(Facility, row.facility_id)
            if fac is not None:
                codes[row.facility_id] = fac
    params = {
        k: v
        for k, v in {
            "status": status,
            "area": area,
            "severity": severity,
            "overdue": "true" if overdue else "",
            "facility": facility_code,
        }.items()
        if v
    }
    csv_params = dict(params)
    if csv_params.get("status") == "all":
        csv_params.pop("status")
    ctx = {
        **base,
        "nav": "assessments",
        "rows": rows,
        "total": total,
        "facilities": codes,
        "now": clock.now(),
        "filters": {
            "status": status,
            "area": area,
            "severity": severity,
            "overdue": overdue,
            "facility": facility_code,
        },
        "areas": AREA_LABELS,
        "severities": [s.value for s in Severity],
        "csv_url": "/api/v1/assessments/findings.csv"
        + ("?" + urlencode(csv_params) if csv_params else ""),
        "chart_svg": report.findings_chart_svg(rows) if rows else "",
    }
    return render(request, "assessments_findings.html", ctx)


async def _finding_in_scope(
    db: Any, principal: Principal, finding_id: str
) -> tuple[Any, Facility] | None:
    fid = _parse_id(finding_id)
    if fid is None:
        return None
    try:
        f = await service.get_finding(db, fid)
    except Problem:
        return None
    facility = await db.get(Facility, f.facility_id)
    if facility is None or not principal.allows(
        ASSESSMENTS_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        return None
    return f, facility


@router.post("/assessments/findings/{finding_id}/update")
async def finding_update(
    request: Request, finding_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    """Close (with a closing note) or reopen a finding, or change its owner and due date."""
    form = await request.form()
    found = await _finding_in_scope(db, principal, finding_id)
    if found is None:
        base = await shell(request, db, principal)
        return error_page(request, 404, "No such finding", "There is no such finding.", base)
    f, facility = found
    back = f"/assessments/{f.assessment_id}"
    anchor = f"#finding-{f.id}"
    action = form_str(form, "action", 20)
    try:
        principal.require(ASSESSMENTS_WRITE, facility_id=facility.id, region_id=facility.region_id)
        if action == "close":
            data: dict[str, Any] = {
                "status": FindingStatus.CLOSED,
                "closing_note": form_str(form, "closing_note", 4000),
            }
        elif action == "reopen":
            data = {"status": FindingStatus.OPEN}
        else:
            data = {
                "owner": form_str(form, "owner", 200),
                "due_on": _date_or_none(form, "due_on"),
            }
        await service.update_finding(db, clock, principal, f, FindingUpdate.model_validate(data))
    except (Problem, ValidationError) as exc:
        await db.rollback()
        return _back(back, error=_message(exc))
    await db.commit()
    return redirect(back + anchor)


@router.post("/assessments/findings/{finding_id}/evidence")
async def finding_evidence(
    request: Request,
    finding_id: str,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: PagePrincipal,
) -> Response:
    form = await request.form()
    found = await _finding_in_scope(db, principal, finding_id)
    if found is None:
        base = await shell(request, db, principal)
        return error_page(request, 404, "No such finding", "There is no such finding.", base)
    f, facility = found
    back = f"/assessments/{f.assessment_id}"
    anchor = f"#finding-{f.id}"
    upload = form.get("file")
    try:
        principal.require(ASSESSMENTS_WRITE, facility_id=facility.id, region_id=facility.region_id)
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise service._bad("file", "choose a photo or document to upload")
        data = await assessments_api.read_upload(upload, settings.assessments_attachment_max_bytes)
        await service.add_attachment(
            db,
            clock,
            principal,
            f,
            filename=upload.filename,
            content_type=upload.content_type or "",
            data=data,
            folder=service.attachments_folder(settings),
            max_bytes=settings.assessments_attachment_max_bytes,
        )
    except Problem as exc:
        await db.rollback()
        return _back(back, error=_message(exc))
    await db.commit()
    return redirect(back + anchor)


# ---------------------------------------------------------------------------- one assessment


def _fsl_rows(standard: fsl.Standard, a: Assessment, result: dict[str, Any] | None) -> list[Any]:
    inputs = {"population": a.population, "floor_area_sqft": a.floor_area_sqft}
    rows = []
    for f in standard.factors:
        source = f.derived_from
        derived = source is not None and inputs.get(source) is not None
        score = (result or {}).get("scores", {}).get(f.key)
        if score is None and derived and source is not None:
            score = f.score_for(int(inputs[source] or 0))
        if score is None:
            score = a.factor_scores.get(f.key)
        rows.append(
            {
                "factor": f,
                "derived": derived,
                "source": source,
                "input": inputs.get(source) if source else None,
                "score": score,
                "meaning": f.scores.get(int(score)) if score else "",
            }
        )
    return rows


@router.get("/assessments/{assessment_id}")
async def assessment_page(
    request: Request, assessment_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    aid = _parse_id(assessment_id)
    found = await _in_scope(db, principal, aid) if aid else None
    if found is None:
        return error_page(request, 404, "No such assessment", "There is no such assessment.", base)
    _a, facility = found
    a = await service.get_assessment(db, _a.id)
    detail = await assessments_api.assessment_detail(db, clock, a, facility)
    standard = await service.active_standard(db)
    result = detail.fsl.model_dump() if detail.fsl else None
    findings = detail.findings
    ctx = {
        **base,
        "nav": "assessments",
        "a": detail,
        "facility": facility,
        "standard": standard,
        "standard_json": json.dumps(
            {
                "factors": [
                    {"key": f.key, "derived_from": f.derived_from, "upper_bounds": f.upper_bounds}
                    for f in standard.factors
                ],
                "levels": [b.model_dump() for b in sorted(standard.levels, key=lambda b: b.min)],
                "agency_level": standard.agency_level,
            }
        ),
        "fsl": result,
        "fsl_rows": _fsl_rows(standard, a, result),
        "levels": standard.ordered_levels,
        "limit": standard.max_intangible_adjustment,
        "can_write": _can_write(principal, facility) and a.status != "completed",
        "can_close": _can_write(principal, facility),
        "answers": ANSWER_LABELS,
        "areas": AREA_LABELS,
        "severities": [s.value for s in Severity],
        "labels": STATUS_LABELS,
        "open_count": sum(1 for f in findings if f.status == "open"),
        "closed_count": sum(1 for f in findings if f.status == "closed"),
        "overdue_count": sum(1 for f in findings if f.overdue),
        "chart_svg": report.findings_chart_svg(findings) if findings else "",
        "staff_count": await service.active_staff(db, facility.id),
        "error": request.query_params.get("error", "")[:300],
        "done": request.query_params.get("done", "")[:200],
    }
    return render(request, "assessments_detail.html", ctx)


async def _writable(
    request: Request, db: Any, principal: Principal, assessment_id: str
) -> tuple[Assessment, Facility] | Response:
    aid = _parse_id(assessment_id)
    found = await _in_scope(db, principal, aid) if aid else None
    if found is None:
        base = await shell(request, db, principal)
        return error_page(request, 404, "No such assessment", "There is no such assessment.", base)
    a, facility = found
    if not _can_write(principal, facility):
        base = await shell(request, db, principal)
        return error_page(
            request, 403, "Not allowed", "Your roles do not let you change this assessment.", base
        )
    return await service.get_assessment(db, a.id), facility


@router.post("/assessments/{assessment_id}/answers")
async def assessment_answers(
    request: Request, assessment_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    found = await _writable(request, db, principal, assessment_id)
    if isinstance(found, Response):
        return found
    a, _facility = found
    back = f"/assessments/{a.id}"
    answers: dict[str, Any] = {}
    for key in sorted(service.question_keys(a.template)):
        given = form_str(form, f"answer:{key}", 10)
        note = form_str(form, f"note:{key}", 2000)
        if given:
            answers[key] = {"answer": given, "note": note}
    try:
        body = AssessmentUpdate.model_validate({"answers": answers} if answers else {})
        await service.update_assessment(db, clock, principal, a, body)
    except (Problem, ValidationError) as exc:
        await db.rollback()
        return _back(back, error=_message(exc))
    await db.commit()
    return _back(back, done=f"{len(answers)} answers saved")


@router.post("/assessments/{assessment_id}/fsl")
async def assessment_fsl(
    request: Request, assessment_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    """Save the FSL inputs (population, floor area, factor scores, adjustment, justification)
    and recompute the level; with `complete`, also complete the assessment."""
    form = await request.form()
    found = await _writable(request, db, principal, assessment_id)
    if isinstance(found, Response):
        return found
    a, _facility = found
    back = f"/assessments/{a.id}"
    standard = await service.active_standard(db)
    factors: dict[str, Any] = {}
    for f in standard.factors:
        value = _int_or_none(form, f"factor:{f.key}")
        if f.derived_from is None or value is not None:
            factors[f.key] = value
    data: dict[str, Any] = {
        "population": _int_or_none(form, "population"),
        "floor_area_sqft": _int_or_none(form, "floor_area_sqft"),
        "factors": factors,
        "intangible_adjustment": _int_or_none(form, "intangible_adjustment") or 0,
        "agency_level": form_str(form, "agency_level", 5) in ("1", "on", "true"),
        "justification": form_str(form, "justification", 4000),
        "assessor": form_str(form, "assessor", 200) or a.assessor,
    }
    if form_str(form, "complete", 5):
        data["status"] = "completed"
    try:
        body = AssessmentUpdate.model_validate(data)
        await service.update_assessment(db, clock, principal, a, body)
    except (Problem, ValidationError) as exc:
        await db.rollback()
        return _back(back, error=_message(exc))
    await db.commit()
    done = "Assessment completed" if data.get("status") else "FSL saved"
    return redirect(f"{back}?" + urlencode({"done": done}) + "#fsl")


@router.post("/assessments/{assessment_id}/findings")
async def assessment_add_finding(
    request: Request, assessment_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    aid = _parse_id(assessment_id)
    found = await _in_scope(db, principal, aid) if aid else None
    if found is None:
        base = await shell(request, db, principal)
        return error_page(request, 404, "No such assessment", "There is no such assessment.", base)
    a, facility = found
    back = f"/assessments/{a.id}"
    if not _can_write(principal, facility):
        base = await shell(request, db, principal)
        return error_page(
            request, 403, "Not allowed", "Your roles do not let you record findings here.", base
        )
    try:
        body = FindingCreate.model_validate(
            {
                "area": form_str(form, "area", 40),
                "severity": form_str(form, "severity", 20),
                "description": form_str(form, "description", 4000),
                "owner": form_str(form, "owner", 200),
                "due_on": _date_or_none(form, "due_on"),
            }
        )
        f = await service.add_finding(db, clock, principal, a, body)
    except (Problem, ValidationError) as exc:
        await db.rollback()
        return _back(back, error=_message(exc))
    await db.commit()
    return redirect(f"{back}#finding-{f.id}")


__all__ = ["router", "Area"]
