"""drills tables

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = watchfloor.db.UTCDateTime(timezone=True)

#: the organisation-wide required drills seeded at install (editable through the API)
SEED_REQUIREMENTS = [
    ("active_shooter", 3, "Quarterly active-shooter drill at every facility."),
    ("lockdown", 12, "A lockdown drill once a year."),
    ("evacuation", 12, "An evacuation (fire) drill once a year."),
]


def _fk(table: str, col: str, ref: str, ondelete: str | None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [col], [f"{ref}.id"], name=op.f(f"fk_{table}_{col}_{ref}"), ondelete=ondelete
    )


def upgrade() -> None:
    requirements = op.create_table(
        "drill_requirements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("interval_months", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_requirements")),
        sa.UniqueConstraint("kind", name=op.f("uq_drill_requirements_kind")),
    )
    op.create_table(
        "drill_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("rrule", sa.String(length=300), nullable=False),
        sa.Column("anchor_local", sa.String(length=16), nullable=False),
        sa.Column("partner_agencies", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        _fk("drill_schedules", "facility_id", "facilities", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_schedules")),
    )
    with op.batch_alter_table("drill_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drill_schedules_facility_id"), ["facility_id"], unique=False
        )
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("planned_at", UTC_DT, nullable=False),
        sa.Column("started_at", UTC_DT, nullable=True),
        sa.Column("ended_at", UTC_DT, nullable=True),
        sa.Column("run_by", sa.String(length=160), nullable=False),
        sa.Column("partner_agencies", sa.JSON(), nullable=False),
        sa.Column("lockdown_id", sa.Integer(), nullable=True),
        sa.Column("roll_call_id", sa.Integer(), nullable=True),
        sa.Column("seconds_to_locked", sa.Integer(), nullable=True),
        sa.Column("doors_total", sa.Integer(), nullable=True),
        sa.Column("doors_failed", sa.Integer(), nullable=True),
        sa.Column("seconds_to_accounted", sa.Integer(), nullable=True),
        sa.Column("accounted_share", sa.Float(), nullable=True),
        sa.Column("safe_count", sa.Integer(), nullable=True),
        sa.Column("need_help_count", sa.Integer(), nullable=True),
        sa.Column("no_answer_count", sa.Integer(), nullable=True),
        sa.Column("seconds_to_lifted", sa.Integer(), nullable=True),
        sa.Column("seconds_to_evacuated", sa.Integer(), nullable=True),
        sa.Column("timings_source", sa.String(length=12), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        _fk("drills", "facility_id", "facilities", "CASCADE"),
        _fk("drills", "schedule_id", "drill_schedules", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drills")),
    )
    with op.batch_alter_table("drills", schema=None) as batch_op:
        batch_op.create_index(
            "ix_drills_facility_kind_state", ["facility_id", "kind", "state"], unique=False
        )
    op.create_table(
        "drill_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=210), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("answer", sa.String(length=12), nullable=False),
        sa.Column("added_by", sa.String(length=160), nullable=False),
        sa.Column("added_at", UTC_DT, nullable=False),
        _fk("drill_participants", "drill_id", "drills", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_participants")),
    )
    with op.batch_alter_table("drill_participants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drill_participants_drill_id"), ["drill_id"], unique=False
        )
    op.create_table(
        "drill_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=False),
        sa.Column("worked", sa.Text(), nullable=False),
        sa.Column("gaps", sa.Text(), nullable=False),
        sa.Column("written_by", sa.String(length=160), nullable=False),
        sa.Column("written_at", UTC_DT, nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        _fk("drill_reports", "drill_id", "drills", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_reports")),
        sa.UniqueConstraint("drill_id", name=op.f("uq_drill_reports_drill_id")),
    )
    op.create_table(
        "drill_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("owner", sa.String(length=160), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=False),
        sa.Column("done_at", UTC_DT, nullable=True),
        sa.Column("done_by", sa.String(length=160), nullable=True),
        _fk("drill_actions", "drill_id", "drills", "CASCADE"),
        _fk("drill_actions", "facility_id", "facilities", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_actions")),
    )
    with op.batch_alter_table("drill_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drill_actions_drill_id"), ["drill_id"], unique=False)
        batch_op.create_index(
            "ix_drill_actions_facility_state_due",
            ["facility_id", "state", "due_on"],
            unique=False,
        )

    now = datetime(2026, 12, 5, tzinfo=UTC)
    op.bulk_insert(
        requirements,
        [
            {
                "kind": kind,
                "interval_months": months,
                "active": True,
                "note": note,
                "updated_at": now,
                "updated_by": "system:migration",
            }
            for kind, months, note in SEED_REQUIREMENTS
        ],
    )


def downgrade() -> None:
    op.drop_table("drill_actions")
    op.drop_table("drill_reports")
    op.drop_table("drill_participants")
    op.drop_table("drills")
    op.drop_table("drill_schedules")
    op.drop_table("drill_requirements")
