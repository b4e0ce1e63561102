"""Tables of the assessments domain: FSL standards, checklist templates, assessments, findings
and their evidence attachments."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from watchfloor.db import Base


class Area(StrEnum):
    PERIMETER = "perimeter"
    ACCESS_CONTROL = "access_control"
    SCREENING = "screening"
    SURVEILLANCE = "surveillance"
    ALARMS = "alarms"
    LOCKDOWN = "lockdown"
    EMERGENCY_PLANS = "emergency_plans"
    TRAINING = "training"
    INTERAGENCY = "interagency"
    SUPPORT = "support"


AREA_LABELS: dict[str, str] = {
    Area.PERIMETER: "Perimeter",
    Area.ACCESS_CONTROL: "Access control",
    Area.SCREENING: "Screening (magnetometers, x-ray)",
    Area.SURVEILLANCE: "Surveillance and sensors",
    Area.ALARMS: "Alarms and panic buttons",
    Area.LOCKDOWN: "Lockdown capability",
    Area.EMERGENCY_PLANS: "Emergency plans",
    Area.TRAINING: "Training",
    Area.INTERAGENCY: "Interagency communication",
    Area.SUPPORT: "Mental-health and post-incident support",
}


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


#: worst first
SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class AssessmentKind(StrEnum):
    RECURRING = "recurring"
    AD_HOC = "ad_hoc"


class AssessmentStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class FindingStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Answer(StrEnum):
    YES = "yes"
    PARTIAL = "partial"
    NO = "no"
    NOT_APPLICABLE = "n/a"


class AssessmentStandard(Base):
    """An edition of the FSL standard loaded by the organisation; the newest one is in force
    (with none loaded, the packaged default is)."""

    __tablename__ = "assessment_standards"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    edition: Mapped[str] = mapped_column(String(60))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    loaded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AssessmentTemplate(Base):
    __tablename__ = "assessment_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # [{"area": "perimeter", "questions": [{"key": "perimeter.fence", "text": "..."}]}]
    areas: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    template_id: Mapped[int] = mapped_column(ForeignKey("assessment_templates.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default=AssessmentKind.RECURRING)
    directive_ref: Mapped[str] = mapped_column(String(120), default="")
    status: Mapped[str] = mapped_column(String(20), default=AssessmentStatus.SCHEDULED, index=True)
    scheduled_for: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None] = mapped_column(index=True)
    assessor: Mapped[str] = mapped_column(String(200), default="")
    # {"perimeter.fence": {"answer": "yes" | "partial" | "no" | "n/a", "note": "..."}}
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # FSL inputs: people at the facility and its floor area (stored on the assessment)
    population: Mapped[int | None] = mapped_column(Integer)
    floor_area_sqft: Mapped[int | None] = mapped_column(BigInteger)
    # factor key -> score as entered (derived factors are recomputed from the inputs)
    factor_scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fsl_total: Mapped[int | None] = mapped_column(Integer)
    fsl_computed: Mapped[str | None] = mapped_column(String(8))
    intangible_adjustment: Mapped[int] = mapped_column(Integer, default=0)
    agency_level: Mapped[bool] = mapped_column(Boolean, default=False)
    justification: Mapped[str] = mapped_column(Text, default="")
    fsl_level: Mapped[str | None] = mapped_column(String(8))
    standard_name: Mapped[str] = mapped_column(String(280), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    template: Mapped[AssessmentTemplate] = relationship(lazy="joined")
    findings: Mapped[list[Finding]] = relationship(
        back_populates="assessment", cascade="all, delete-orphan", order_by="Finding.id"
    )


class Finding(Base):
    __tablename__ = "assessment_findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(
        ForeignKey("assessments.id", ondelete="CASCADE"), index=True
    )
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    area: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200), default="")
    due_on: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20), default=FindingStatus.OPEN, index=True)
    closing_note: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    assessment: Mapped[Assessment] = relationship(back_populates="findings")
    attachments: Mapped[list[FindingAttachment]] = relationship(
        back_populates="finding",
        cascade="all, delete-orphan",
        order_by="FindingAttachment.id",
        lazy="selectin",
    )


class FindingAttachment(Base):
    """Evidence (a photo or document); the bytes live under the attachments folder."""

    __tablename__ = "assessment_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("assessment_findings.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_name: Mapped[str] = mapped_column(String(100), unique=True)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]

    finding: Mapped[Finding] = relationship(back_populates="attachments")
