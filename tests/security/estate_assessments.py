"""The assessments domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

import hashlib
from typing import Any

from watchfloor.assessments import service
from watchfloor.assessments.models import FindingAttachment
from watchfloor.assessments.schemas import AssessmentCreate, FindingCreate
from watchfloor.sites.models import Facility


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """Add assessments objects for facilities A and B; return the path values naming A's."""
    found: dict[str, Any] = {}
    for side in (a, b):
        facility = await db.get(Facility, side.facility_id)
        assessment = await service.create_assessment(
            db,
            clock,
            "system:test",
            facility,
            AssessmentCreate(
                facility=facility.code,
                assessor=f"{facility.name} assessor",
                factors={"mission_criticality": 2, "symbolism": 2, "threat_to_tenants": 2},
            ),
        )
        finding = await service.add_finding(
            db,
            clock,
            "system:test",
            assessment,
            FindingCreate(
                area="perimeter", severity="high", description=f"{facility.name} fence down"
            ),
        )
        # the row only: the security tests check scope, which is decided before the file is read
        data = f"{facility.name} evidence".encode()
        attachment = FindingAttachment(
            finding_id=finding.id,
            filename=f"{facility.code}-fence.txt",
            content_type="text/plain",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            stored_name=f"estate-{facility.code}",
            uploaded_by="system:test",
            created_at=clock.now(),
        )
        db.add(attachment)
        await db.flush()
        if side is a:
            found = {
                "assessment_id": assessment.id,
                "finding_id": finding.id,
                "attachment_id": attachment.id,
            }
    await db.commit()
    return found
