"""assessments tables

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 18:25:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assessment_standards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("edition", sa.String(length=60), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("loaded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_standards")),
    )
    op.create_table(
        "assessment_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("areas", sa.JSON(), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_templates")),
        sa.UniqueConstraint("code", name=op.f("uq_assessment_templates_code")),
    )
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("directive_ref", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("scheduled_for", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("assessor", sa.String(length=200), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("floor_area_sqft", sa.BigInteger(), nullable=True),
        sa.Column("factor_scores", sa.JSON(), nullable=False),
        sa.Column("fsl_total", sa.Integer(), nullable=True),
        sa.Column("fsl_computed", sa.String(length=8), nullable=True),
        sa.Column("intangible_adjustment", sa.Integer(), nullable=False),
        sa.Column("agency_level", sa.Boolean(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("fsl_level", sa.String(length=8), nullable=True),
        sa.Column("standard_name", sa.String(length=280), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_assessments_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["assessment_templates.id"],
            name=op.f("fk_assessments_template_id_assessment_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessments_completed_at"), ["completed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_assessments_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assessments_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_assessments_template_id"), ["template_id"], unique=False
        )

    op.create_table(
        "assessment_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("area", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("closing_note", sa.Text(), nullable=False),
        sa.Column("closed_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_assessment_findings_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_assessment_findings_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_findings")),
    )
    with op.batch_alter_table("assessment_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessment_findings_assessment_id"), ["assessment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_assessment_findings_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assessment_findings_status"), ["status"], unique=False)

    op.create_table(
        "assessment_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_name", sa.String(length=100), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["assessment_findings.id"],
            name=op.f("fk_assessment_attachments_finding_id_assessment_findings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_attachments")),
        sa.UniqueConstraint("stored_name", name=op.f("uq_assessment_attachments_stored_name")),
    )
    with op.batch_alter_table("assessment_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessment_attachments_finding_id"), ["finding_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("assessment_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessment_attachments_finding_id"))

    op.drop_table("assessment_attachments")
    with op.batch_alter_table("assessment_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessment_findings_status"))
        batch_op.drop_index(batch_op.f("ix_assessment_findings_facility_id"))
        batch_op.drop_index(batch_op.f("ix_assessment_findings_assessment_id"))

    op.drop_table("assessment_findings")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessments_template_id"))
        batch_op.drop_index(batch_op.f("ix_assessments_status"))
        batch_op.drop_index(batch_op.f("ix_assessments_facility_id"))
        batch_op.drop_index(batch_op.f("ix_assessments_completed_at"))

    op.drop_table("assessments")
    op.drop_table("assessment_templates")
    op.drop_table("assessment_standards")
