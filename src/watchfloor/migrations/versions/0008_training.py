"""training tables

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = watchfloor.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    courses = op.create_table(
        "training_courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("refresh_months", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_courses")),
        sa.UniqueConstraint("code", name=op.f("uq_training_courses_code")),
    )
    op.create_table(
        "training_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", UTC_DT, nullable=False),
        sa.Column("imported_by", sa.String(length=160), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("facility_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_imports")),
    )
    with op.batch_alter_table("training_imports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_imports_imported_at"), ["imported_at"], unique=False
        )
    requirements = op.create_table(
        "training_requirements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["training_courses.id"],
            name=op.f("fk_training_requirements_course_id_training_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_requirements")),
    )
    with op.batch_alter_table("training_requirements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_requirements_course_id"), ["course_id"], unique=False
        )
        batch_op.create_index(
            "ix_training_requirements_role_course", ["role", "course_id"], unique=True
        )
    op.create_table(
        "training_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent_at", UTC_DT, nullable=False),
        sa.Column("sent_by", sa.String(length=160), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("due_soon", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_training_reminders_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_reminders")),
    )
    with op.batch_alter_table("training_reminders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_reminders_facility_day", ["facility_id", "day"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_training_reminders_sent_at"), ["sent_at"], unique=False
        )
    op.create_table(
        "training_completions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("recorded_by", sa.String(length=160), nullable=False),
        sa.Column("recorded_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["training_courses.id"],
            name=op.f("fk_training_completions_course_id_training_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["training_imports.id"],
            name=op.f("fk_training_completions_import_id_training_imports"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_training_completions_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_completions")),
    )
    with op.batch_alter_table("training_completions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_completions_course_expires", ["course_id", "expires_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_training_completions_import_id"), ["import_id"], unique=False
        )
        batch_op.create_index(
            "ix_training_completions_person_course_date",
            ["person_id", "course_id", "completed_on"],
            unique=True,
        )

    from watchfloor.training.catalogue import COURSES, REQUIREMENTS

    now = datetime(2026, 12, 5, 13, 0, tzinfo=UTC)
    op.bulk_insert(
        courses,
        [
            {
                "id": i,
                "code": code,
                "name": name,
                "description": description,
                "refresh_months": months,
                "position": i,
                "active": True,
                "created_at": now,
                "updated_at": now,
                "updated_by": "system:migration",
            }
            for i, (code, name, months, description) in enumerate(COURSES, start=1)
        ],
    )
    ids = {code: i for i, (code, *_rest) in enumerate(COURSES, start=1)}
    op.bulk_insert(
        requirements,
        [
            {"role": role, "course_id": ids[code], "created_at": now, "created_by": "system"}
            for code, roles in REQUIREMENTS.items()
            for role in roles
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # the ids above were given explicitly: move the sequence past them
        op.execute(
            "SELECT setval(pg_get_serial_sequence('training_courses', 'id'), "
            "(SELECT MAX(id) FROM training_courses))"
        )


def downgrade() -> None:
    op.drop_table("training_completions")
    op.drop_table("training_reminders")
    op.drop_table("training_requirements")
    op.drop_table("training_imports")
    op.drop_table("training_courses")
