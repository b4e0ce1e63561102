"""rollout tables

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 18:25:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = watchfloor.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    countermeasures = op.create_table(
        "countermeasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("area", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("deadline", sa.String(length=12), nullable=False),
        sa.Column("review_days", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_countermeasures")),
        sa.UniqueConstraint("code", name=op.f("uq_countermeasures_code")),
    )
    op.create_table(
        "directives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("issued_at", UTC_DT, nullable=False),
        sa.Column("issued_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.Column("facility_count", sa.Integer(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("last_due_at", UTC_DT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directives")),
    )
    with op.batch_alter_table("directives", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directives_issued_at"), ["issued_at"], unique=False)
    op.create_table(
        "rollout_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("directive_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("countermeasure_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("due_at", UTC_DT, nullable=True),
        sa.Column("review_days", sa.Integer(), nullable=True),
        sa.Column("closed_at", UTC_DT, nullable=True),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("waiver_reason", sa.String(length=500), nullable=False),
        sa.Column("waiver_requested_by", sa.String(length=160), nullable=True),
        sa.Column("waiver_requested_at", UTC_DT, nullable=True),
        sa.Column("waiver_approved_by", sa.String(length=160), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["countermeasure_id"],
            ["countermeasures.id"],
            name=op.f("fk_rollout_tasks_countermeasure_id_countermeasures"),
        ),
        sa.ForeignKeyConstraint(
            ["directive_id"],
            ["directives.id"],
            name=op.f("fk_rollout_tasks_directive_id_directives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_rollout_tasks_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_tasks")),
    )
    with op.batch_alter_table("rollout_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rollout_tasks_directive_facility_measure",
            ["directive_id", "facility_id", "countermeasure_id"],
            unique=True,
        )
        batch_op.create_index(
            "ix_rollout_tasks_facility_state_due",
            ["facility_id", "state", "due_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_rollout_tasks_measure_state_due",
            ["countermeasure_id", "state", "due_at", "closed_at"],
            unique=False,
        )
    op.create_table(
        "rollout_task_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_DT, nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("from_state", sa.String(length=12), nullable=False),
        sa.Column("to_state", sa.String(length=12), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["rollout_tasks.id"],
            name=op.f("fk_rollout_task_events_task_id_rollout_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_task_events")),
    )
    with op.batch_alter_table("rollout_task_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rollout_task_events_task_id"), ["task_id"], unique=False
        )

    from watchfloor.rollout.catalogue import SEED

    now = datetime(2026, 11, 25, tzinfo=UTC)
    op.bulk_insert(
        countermeasures,
        [
            {
                "code": m["code"],
                "name": m["name"],
                "area": m["area"],
                "description": m["description"],
                "deadline": m["deadline"],
                "review_days": m.get("review_days"),
                "position": i,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for i, m in enumerate(SEED, start=1)
        ],
    )


def downgrade() -> None:
    op.drop_table("rollout_task_events")
    op.drop_table("rollout_tasks")
    op.drop_table("directives")
    op.drop_table("countermeasures")
