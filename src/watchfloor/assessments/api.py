"""REST API of the assessments domain: the FSL standard, assessments with their checklist and
FSL, the reassessment schedule, findings with evidence, the PDF report and the CSV export.

Reading needs `assessments:read` at the facility (an assessment or finding outside the caller's
scope is a 404); changing needs `assessments:write` there; loading a standard needs
`assessments:write` across the whole organisation. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile as StarletteUpload

from watchfloor.assessments import fsl, report, service
from watchfloor.assessments.models import (
    Area,
    Assessment,
    AssessmentStatus,
    Finding,
    FindingAttachment,
    FindingStatus,
    Severity,
)
from watchfloor.assessments.schemas import (
    AssessmentCreate,
    AssessmentDetail,
    AssessmentOut,
    AssessmentPage,
    AssessmentUpdate,
    AttachmentOut,
    DueItem,
    FindingCreate,
    FindingOut,
    FindingPage,
    FindingUpdate,
    FSLInput,
    FSLOut,
    StandardIn,
    StandardOut,
)
from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import Perm
from watchfloor.clock import Clock
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import InvalidInput, NotFound
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["assessments"])

BIG = 2_147_483_647  # the ids are 32-bit integers on PostgreSQL
AssessmentId = Annotated[int, Path(ge=1, le=BIG, description="Assessment id.")]
FindingId = Annotated[int, Path(ge=1, le=BIG, description="Finding id.")]
AttachmentId = Annotated[int, Path(ge=1, le=BIG, description="Evidence attachment id.")]
FacilityQuery = Annotated[
    str | None, Query(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
]


async def facility_for(
    db: AsyncSession, principal: Principal, facility_id: int, *, write: bool, what: str
) -> Facility:
    """The facility of an object if the caller may read there (else 404 naming `what`) and,
    for a change, write there (else 403)."""
    facility = await db.get(Facility, facility_id)
    if facility is None or not principal.allows(
        Perm.ASSESSMENTS_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"There is no {what}.")
    if write:
        principal.require(
            Perm.ASSESSMENTS_WRITE, facility_id=facility.id, region_id=facility.region_id
        )
    return facility


async def assessment_for(
    db: AsyncSession, principal: Principal, assessment_id: int, *, write: bool
) -> tuple[Assessment, Facility]:
    principal.require_anywhere(Perm.ASSESSMENTS_WRITE if write else Perm.ASSESSMENTS_READ)
    try:
        a = await service.get_assessment(db, assessment_id)
    except NotFound:
        raise NotFound(f"There is no assessment {assessment_id}.") from None
    facility = await facility_for(
        db, principal, a.facility_id, write=write, what=f"assessment {assessment_id}"
    )
    return a, facility


async def finding_for(
    db: AsyncSession, principal: Principal, finding_id: int, *, write: bool
) -> tuple[Finding, Facility]:
    principal.require_anywhere(Perm.ASSESSMENTS_WRITE if write else Perm.ASSESSMENTS_READ)
    f = await service.get_finding(db, finding_id)
    facility = await facility_for(
        db, principal, f.facility_id, write=write, what=f"finding {finding_id}"
    )
    return f, facility


def attachment_out(att: FindingAttachment) -> AttachmentOut:
    return AttachmentOut(
        id=att.id,
        filename=att.filename,
        content_type=att.content_type,
        size=att.size,
        sha256=att.sha256,
        uploaded_by=att.uploaded_by,
        created_at=att.created_at,
    )


def finding_out(f: Finding, facility_code: str, clock: Clock) -> FindingOut:
    return FindingOut(
        id=f.id,
        assessment_id=f.assessment_id,
        facility=facility_code,
        area=f.area,
        severity=f.severity,
        description=f.description,
        owner=f.owner,
        due_on=f.due_on,
        status=f.status,
        overdue=service.is_overdue(f, clock.now()),
        closing_note=f.closing_note,
        closed_at=f.closed_at,
        created_at=f.created_at,
        attachments=[attachment_out(att) for att in f.attachments],
    )


def _fsl_out(standard: fsl.Standard, a: Assessment) -> FSLOut | None:
    body = service.fsl_of(standard, a)
    return FSLOut.model_validate(body) if body else None


def assessment_out(
    a: Assessment, facility: Facility, standard: fsl.Standard, open_findings: int
) -> AssessmentOut:
    return AssessmentOut(
        id=a.id,
        facility=facility.code,
        facility_name=facility.name,
        template=a.template.code,
        kind=a.kind,
        directive_ref=a.directive_ref,
        status=a.status,
        scheduled_for=a.scheduled_for,
        started_at=a.started_at,
        completed_at=a.completed_at,
        assessor=a.assessor,
        population=a.population,
        floor_area_sqft=a.floor_area_sqft,
        factors=dict(a.factor_scores),
        fsl=_fsl_out(standard, a),
        intangible_adjustment=a.intangible_adjustment,
        agency_level=a.agency_level,
        justification=a.justification,
        open_findings=open_findings,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


async def assessment_detail(
    db: AsyncSession, clock: Clock, a: Assessment, facility: Facility
) -> AssessmentDetail:
    standard = await service.active_standard(db)
    findings, _ = await service.list_findings(
        db, _everything(), clock.now(), assessment_id=a.id, limit=10_000
    )
    open_n = sum(1 for f in findings if f.status == FindingStatus.OPEN)
    base = assessment_out(a, facility, standard, open_n)
    return AssessmentDetail(
        **base.model_dump(),
        answers=dict(a.answers),
        checklist=service.checklist(a),
        findings=[finding_out(f, facility.code, clock) for f in findings],
    )


def _everything() -> Scope:
    return Scope(everything=True)


# --- the standard -------------------------------------------------------------------------


@router.get("/assessments/standard", response_model=StandardOut)
async def get_standard(db: DB, principal: CurrentPrincipal) -> StandardOut:
    """The FSL standard in force: factor scales, level table, reassessment intervals."""
    principal.require_anywhere(Perm.ASSESSMENTS_READ)
    row = await service.active_standard_row(db)
    standard = await service.active_standard(db)
    return StandardOut(
        source="loaded" if row else "default",
        loaded_at=row.created_at if row else None,
        loaded_by=row.loaded_by if row else None,
        standard=standard.model_dump(mode="json"),
    )


@router.put("/assessments/standard", response_model=StandardOut)
async def put_standard(
    body: StandardIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> StandardOut:
    """Load the organisation's own edition of the standard (YAML, validated; see
    docs/assessments.md). Needs `assessments:write` across the organisation."""
    principal.require_org(Perm.ASSESSMENTS_WRITE)
    row = await service.load_standard(db, clock, principal, body.yaml)
    await db.commit()
    return StandardOut(
        source="loaded",
        loaded_at=row.created_at,
        loaded_by=row.loaded_by,
        standard=fsl.parse_standard(row.body).model_dump(mode="json"),
    )


@router.post("/assessments/fsl", response_model=FSLOut)
async def compute_fsl(body: FSLInput, db: DB, principal: CurrentPrincipal) -> FSLOut:
    """Compute an FSL from factor scores without storing anything (the calculator)."""
    principal.require_anywhere(Perm.ASSESSMENTS_READ)
    standard = await service.active_standard(db)
    result = fsl.compute(
        standard,
        body.factors or {},
        population=body.population,
        floor_area_sqft=body.floor_area_sqft,
        adjustment=body.intangible_adjustment or 0,
        justification=body.justification or "",
        agency_level=bool(body.agency_level),
    )
    return FSLOut(standard=service.standard_label(standard), **result.as_dict())


# --- assessments --------------------------------------------------------------------------


@router.get("/assessments", response_model=AssessmentPage)
async def list_assessments(
    db: DB,
    principal: CurrentPrincipal,
    facility: FacilityQuery = None,
    status: AssessmentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AssessmentPage:
    """Assessments in the caller's scope, newest scheduled first."""
    principal.require_anywhere(Perm.ASSESSMENTS_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.ASSESSMENTS_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    rows, total = await service.list_assessments(
        db,
        principal.scope(Perm.ASSESSMENTS_READ),
        facility_id=facility_id,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
    )
    standard = await service.active_standard(db)
    counts = await service.open_finding_counts(db, [a.id for a in rows])
    items = []
    for a in rows:
        fac = await db.get(Facility, a.facility_id)
        assert fac is not None
        items.append(assessment_out(a, fac, standard, counts.get(a.id, 0)))
    return AssessmentPage(items=items, total=total)


@router.get("/assessments/due", response_model=list[DueItem])
async def due(
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    only_due: Annotated[
        bool, Query(description="Leave out facilities whose next assessment is not due yet.")
    ] = False,
) -> list[DueItem]:
    """Every facility in scope with its next assessment: overdue first, then due soon."""
    principal.require_anywhere(Perm.ASSESSMENTS_READ)
    entries = await service.due_list(
        db,
        principal.scope(Perm.ASSESSMENTS_READ),
        clock.now(),
        due_soon_days=settings.assessments_due_soon_days,
    )
    return [
        DueItem(
            facility=e.facility.code,
            facility_name=e.facility.name,
            level=e.level,
            last_completed_at=e.last_completed_at,
            next_due=e.next_due,
            status=e.status,
            open_assessment_id=e.open_assessment.id if e.open_assessment else None,
            open_assessment_scheduled_for=e.open_assessment.scheduled_for
            if e.open_assessment
            else None,
        )
        for e in entries
        if not only_due or e.status != "ok"
    ]


@router.post("/assessments", response_model=AssessmentDetail, status_code=201)
async def create_assessment(
    body: AssessmentCreate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> AssessmentDetail:
    """Schedule an assessment of a facility (recurring, or ad hoc under a directive). FSL inputs
    may be given now or later; population defaults to the facility's staff count."""
    principal.require_anywhere(Perm.ASSESSMENTS_WRITE)
    facility = await sites.get_facility(db, body.facility)
    principal.require(Perm.ASSESSMENTS_WRITE, facility_id=facility.id, region_id=facility.region_id)
    a = await service.create_assessment(db, clock, principal, facility, body)
    await db.commit()
    a = await service.get_assessment(db, a.id)
    return await assessment_detail(db, clock, a, facility)


@router.get("/assessments/findings", response_model=FindingPage)
async def list_findings(
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    facility: FacilityQuery = None,
    status: FindingStatus | None = None,
    overdue: Annotated[bool, Query(description="Only open findings past their due date.")] = False,
    area: Area | None = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FindingPage:
    """Findings in the caller's scope, worst first, then soonest due."""
    rows, total, codes = await _findings(
        db, clock, principal, facility, status, overdue, area, severity, limit, offset
    )
    return FindingPage(
        items=[finding_out(f, codes[f.facility_id], clock) for f in rows], total=total
    )


async def _findings(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    facility: str | None,
    status: FindingStatus | None,
    overdue: bool,
    area: Area | None,
    severity: Severity | None,
    limit: int,
    offset: int,
) -> tuple[Any, int, dict[int, str]]:
    principal.require_anywhere(Perm.ASSESSMENTS_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.ASSESSMENTS_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    rows, total = await service.list_findings(
        db,
        principal.scope(Perm.ASSESSMENTS_READ),
        clock.now(),
        facility_id=facility_id,
        status=status.value if status else None,
        overdue=overdue,
        area=area.value if area else None,
        severity=severity.value if severity else None,
        limit=limit,
        offset=offset,
    )
    codes: dict[int, str] = {}
    for row in rows:
        if row.facility_id not in codes:
            fac = await db.get(Facility, row.facility_id)
            codes[row.facility_id] = fac.code if fac else ""
    return rows, total, codes


@router.get(
    "/assessments/findings.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_findings_csv(
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    facility: FacilityQuery = None,
    status: FindingStatus | None = None,
    overdue: bool = False,
    area: Area | None = None,
    severity: Severity | None = None,
) -> Response:
    """The findings list (same filters) as CSV."""
    rows, _total, codes = await _findings(
        db, clock, principal, facility, status, overdue, area, severity, 100_000, 0
    )
    content = report.findings_csv(rows, codes, clock.now())
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="findings.csv"'},
    )


@router.get("/assessments/findings/{finding_id}", response_model=FindingOut)
async def get_finding(
    finding_id: FindingId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> FindingOut:
    f, facility = await finding_for(db, principal, finding_id, write=False)
    return finding_out(f, facility.code, clock)


@router.patch("/assessments/findings/{finding_id}", response_model=FindingOut)
async def update_finding(
    finding_id: FindingId,
    body: FindingUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> FindingOut:
    """Change a finding; `status: closed` needs a `closing_note`."""
    f, facility = await finding_for(db, principal, finding_id, write=True)
    await service.update_finding(db, clock, principal, f, body)
    await db.commit()
    f = await service.get_finding(db, finding_id)
    return finding_out(f, facility.code, clock)


@router.post(
    "/assessments/findings/{finding_id}/evidence", response_model=AttachmentOut, status_code=201
)
async def upload_evidence(
    finding_id: FindingId,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile | None, File(description="The photo or document.")] = None,
) -> AttachmentOut:
    """Attach a photo or document (JPEG, PNG, WebP, PDF or plain text) to a finding
    (multipart/form-data, field `file`)."""
    f, _facility = await finding_for(db, principal, finding_id, write=True)
    if file is None:
        raise InvalidInput(
            "file: send the photo or document as the multipart field 'file'",
            errors=[{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}],
        )
    data = await read_upload(file, settings.assessments_attachment_max_bytes)
    att = await service.add_attachment(
        db,
        clock,
        principal,
        f,
        filename=file.filename or "evidence",
        content_type=file.content_type or "",
        data=data,
        folder=service.attachments_folder(settings),
        max_bytes=settings.assessments_attachment_max_bytes,
    )
    await db.commit()
    return attachment_out(att)


async def read_upload(file: StarletteUpload, max_bytes: int) -> bytes:
    """The upload's bytes, refusing it as soon as it runs past the limit."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(1024 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise InvalidInput(
                f"file: is larger than the limit of {max_bytes} bytes",
                errors=[{"loc": ["body", "file"], "msg": "too large", "type": "value_error"}],
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.get(
    "/assessments/evidence/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_evidence(
    attachment_id: AttachmentId, db: DB, settings: SettingsDep, principal: CurrentPrincipal
) -> FileResponse:
    """An evidence file, as a download."""
    principal.require_anywhere(Perm.ASSESSMENTS_READ)
    try:
        att = await service.get_attachment(db, attachment_id)
        f = await service.get_finding(db, att.finding_id)
    except NotFound:
        raise NotFound(f"There is no attachment {attachment_id}.") from None
    await facility_for(
        db, principal, f.facility_id, write=False, what=f"attachment {attachment_id}"
    )
    path = service.attachment_path(service.attachments_folder(settings), att.stored_name)
    if not path.is_file():
        raise NotFound(f"The file of attachment {attachment_id} is missing from storage.")
    return FileResponse(
        path,
        media_type=att.content_type,
        filename=att.filename,
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.get("/assessments/{assessment_id}", response_model=AssessmentDetail)
async def get_assessment(
    assessment_id: AssessmentId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> AssessmentDetail:
    """An assessment with its checklist, answers, FSL breakdown and findings."""
    a, facility = await assessment_for(db, principal, assessment_id, write=False)
    return await assessment_detail(db, clock, a, facility)


@router.patch("/assessments/{assessment_id}", response_model=AssessmentDetail)
async def update_assessment(
    assessment_id: AssessmentId,
    body: AssessmentUpdate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> AssessmentDetail:
    """Answer checklist questions, enter FSL inputs, start or complete (`status`)."""
    a, facility = await assessment_for(db, principal, assessment_id, write=True)
    await service.update_assessment(db, clock, principal, a, body)
    await db.commit()
    a = await service.get_assessment(db, assessment_id)
    return await assessment_detail(db, clock, a, facility)


@router.delete("/assessments/{assessment_id}", status_code=204)
async def delete_assessment(
    assessment_id: AssessmentId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """Cancel an assessment that is not completed (completed ones are kept as records)."""
    a, _facility = await assessment_for(db, principal, assessment_id, write=True)
    await service.delete_assessment(db, clock, principal, a)
    await db.commit()
    return Response(status_code=204)


@router.post("/assessments/{assessment_id}/findings", response_model=FindingOut, status_code=201)
async def add_finding(
    assessment_id: AssessmentId,
    body: FindingCreate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> FindingOut:
    """Record a finding (area, severity, description, owner, due date)."""
    a, facility = await assessment_for(db, principal, assessment_id, write=True)
    f = await service.add_finding(db, clock, principal, a, body)
    await db.commit()
    f = await service.get_finding(db, f.id)
    return finding_out(f, facility.code, clock)


@router.get(
    "/assessments/{assessment_id}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def report_pdf(
    assessment_id: AssessmentId,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Response:
    """The assessment report: facility, date, assessor, FSL with its factor table, findings by
    area and severity with a chart, open and closed counts."""
    a, facility = await assessment_for(db, principal, assessment_id, write=False)
    detail = await assessment_detail(db, clock, a, facility)
    standard = await service.active_standard(db)
    content = report.assessment_pdf(detail, facility, standard, clock.now())
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="assessment-{a.id}-{facility.code}.pdf"'
        },
    )
