"""REST API of the audit domain (thin: parse, authorise, call the service, return).

Reading the log, or verifying it, is itself recorded in it ("audit.read").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel
from sqlalchemy import select

from watchfloor.audit import service
from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep
from watchfloor.schemas import CleanStr, OutModel, Page
from watchfloor.sites.models import Facility
from watchfloor.sites.service import get_facility

router = APIRouter(tags=["audit"])


def _to_utc(value: datetime | None) -> datetime | None:
    """Query times without an offset are UTC; ones with an offset are converted to UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


UtcTime = Annotated[datetime, AfterValidator(_to_utc)]


class AuditRecordOut(OutModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    facility_id: int | None
    facility_code: str | None = None
    ip: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class FindingOut(BaseModel):
    record_id: int
    problem: str


class VerifyOut(BaseModel):
    records: int
    intact: bool
    findings: list[FindingOut]


@router.get("/audit", response_model=Page[AuditRecordOut], summary="Read the audit log")
async def read_audit_log(
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    action: Annotated[
        CleanStr | None,
        Query(
            max_length=80,
            description="An action ('person.update'), or a prefix ending in '.' ('person.').",
        ),
    ] = None,
    actor: Annotated[
        CleanStr | None,
        Query(max_length=160, description="Who acted, e.g. 'user:alice' or 'token:door-feed'."),
    ] = None,
    facility: Annotated[
        CleanStr | None, Query(max_length=40, description="Only records of this facility (code).")
    ] = None,
    since: Annotated[UtcTime | None, Query(description="From this time (inclusive, UTC).")] = None,
    until: Annotated[UtcTime | None, Query(description="Before this time (exclusive).")] = None,
    before_id: Annotated[
        int | None,
        Query(
            ge=1,
            le=2**31 - 1,
            description="Only records older than this id: pass the last id of a page to get "
            "the next page (stable while new records arrive).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Page[AuditRecordOut]:
    """Newest first. Organisation-wide readers see every record; region- or facility-scoped
    readers see the records of their facilities only."""
    principal.require_anywhere(Perm.AUDIT_READ)
    facility_id = None
    if facility:
        found = await get_facility(db, facility)
        principal.require(Perm.AUDIT_READ, facility_id=found.id, region_id=found.region_id)
        facility_id = found.id
    scope = principal.scope(Perm.AUDIT_READ)
    query = service.AuditQuery(
        action=action,
        actor=actor,
        facility_id=facility_id,
        since=since,
        until=until,
        before_id=before_id,
    )
    rows, total = await service.search(
        db,
        query,
        facility_ids=None if scope.everything else scope.facility_ids,
        region_ids=() if scope.everything else scope.region_ids,
        limit=limit,
        offset=offset,
    )
    ids = {r.facility_id for r in rows if r.facility_id is not None}
    codes: dict[int, str] = {}
    if ids:
        result = await db.execute(select(Facility.id, Facility.code).where(Facility.id.in_(ids)))
        codes = {fid: code for fid, code in result.all()}
    items = [
        AuditRecordOut.model_validate(r).model_copy(
            update={"facility_code": codes.get(r.facility_id) if r.facility_id else None}
        )
        for r in rows
    ]
    await service.record(
        db,
        clock,
        principal,
        "audit.read",
        target_type="audit_log",
        facility_id=facility_id,
        details={
            "operation": "list",
            "filters": {
                "action": action,
                "actor": actor,
                "facility": facility,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "before_id": before_id,
                "limit": limit,
                "offset": offset,
            },
            "returned": len(items),
        },
    )
    await db.commit()
    return Page(items=items, total=total)


@router.get("/audit/verify", response_model=VerifyOut, summary="Check the audit chain")
async def verify_audit_log(db: DB, clock: ClockDep, principal: CurrentPrincipal) -> VerifyOut:
    """Walk the whole hash chain and name every altered, deleted or re-ordered record.
    Needs an organisation-wide role that may read the audit log."""
    principal.require_org(Perm.AUDIT_READ)
    count, findings = await service.verify(db)
    out = VerifyOut(
        records=count,
        intact=not findings,
        findings=[FindingOut(record_id=f.record_id, problem=f.problem) for f in findings],
    )
    await service.record(
        db,
        clock,
        principal,
        "audit.read",
        target_type="audit_log",
        details={
            "operation": "verify",
            "records": count,
            "intact": out.intact,
            "findings": len(findings),
        },
    )
    await db.commit()
    return out
