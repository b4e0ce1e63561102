"""rollcall tables

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "roll_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("open_facility_id", sa.Integer(), nullable=True),
        sa.Column("lockdown_id", sa.Integer(), nullable=True),
        sa.Column(
            "incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("started_by", sa.String(length=160), nullable=False),
        sa.Column("started_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=160), nullable=True),
        sa.Column("closed_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("ask_note", sa.String(length=300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_roll_calls_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_roll_calls_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roll_calls")),
        sa.UniqueConstraint("open_facility_id", name=op.f("uq_roll_calls_open_facility_id")),
    )
    with op.batch_alter_table("roll_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_roll_calls_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_roll_calls_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_roll_calls_lockdown_id"), ["lockdown_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_roll_calls_started_at"), ["started_at"], unique=False)

    op.create_table(
        "roll_call_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("roll_call_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=210), nullable=False),
        sa.Column("employee_id", sa.String(length=40), nullable=False),
        sa.Column("phone_digits", sa.String(length=40), nullable=False),
        sa.Column("answer", sa.String(length=12), nullable=False),
        sa.Column("answered_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=True),
        sa.Column("answered_by", sa.String(length=160), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("zone_name", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_roll_call_entries_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["roll_call_id"],
            ["roll_calls.id"],
            name=op.f("fk_roll_call_entries_roll_call_id_roll_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["zones.id"],
            name=op.f("fk_roll_call_entries_zone_id_zones"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roll_call_entries")),
        sa.UniqueConstraint(
            "roll_call_id", "person_id", name=op.f("uq_roll_call_entries_roll_call_id_person_id")
        ),
    )
    with op.batch_alter_table("roll_call_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_roll_call_entries_call_answer", ["roll_call_id", "answer"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_roll_call_entries_phone_digits"), ["phone_digits"], unique=False
        )

    op.create_table(
        "roll_call_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("roll_call_id", sa.Integer(), nullable=False),
        sa.Column("answer", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("answered_by", sa.String(length=160), nullable=True),
        sa.Column("at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["roll_call_entries.id"],
            name=op.f("fk_roll_call_answers_entry_id_roll_call_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["roll_call_id"],
            ["roll_calls.id"],
            name=op.f("fk_roll_call_answers_roll_call_id_roll_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roll_call_answers")),
    )
    with op.batch_alter_table("roll_call_answers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_roll_call_answers_entry_id"), ["entry_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_roll_call_answers_roll_call_id"), ["roll_call_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("roll_call_answers")
    op.drop_table("roll_call_entries")
    op.drop_table("roll_calls")
