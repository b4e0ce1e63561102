"""lockdown tables: lockdowns, their doors, and the alarm types that start one

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lockdown_triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("alarm_type", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_lockdown_triggers_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lockdown_triggers")),
        sa.UniqueConstraint(
            "facility_id", "alarm_type", name=op.f("uq_lockdown_triggers_facility_id_alarm_type")
        ),
    )
    with op.batch_alter_table("lockdown_triggers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lockdown_triggers_facility_id"), ["facility_id"], unique=False
        )

    op.create_table(
        "lockdowns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("active_facility_id", sa.Integer(), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("zone_name", sa.String(length=200), nullable=True),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("door_count", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=160), nullable=False),
        sa.Column("started_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lift_requested_by", sa.String(length=160), nullable=True),
        sa.Column("lift_requested_key", sa.String(length=80), nullable=True),
        sa.Column("lift_requested_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.Column("lift_approved_by", sa.String(length=160), nullable=True),
        sa.Column("lift_approved_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=160), nullable=True),
        sa.Column("lifted_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_lockdowns_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_lockdowns_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
            name=op.f("fk_lockdowns_region_id_regions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_lockdowns_zone_id_zones"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lockdowns")),
        sa.UniqueConstraint("active_facility_id", name=op.f("uq_lockdowns_active_facility_id")),
    )
    with op.batch_alter_table("lockdowns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lockdowns_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lockdowns_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lockdowns_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lockdowns_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lockdowns_state"), ["state"], unique=False)

    op.create_table(
        "lockdown_doors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lockdown_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("door_code", sa.String(length=60), nullable=False),
        sa.Column("door_name", sa.String(length=200), nullable=False),
        sa.Column("zone_name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("controller_address", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("commanded_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("alarm_raised", sa.Boolean(), nullable=False),
        sa.Column("unlock_attempts", sa.Integer(), nullable=False),
        sa.Column("unlocked_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_lockdown_doors_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lockdown_id"],
            ["lockdowns.id"],
            name=op.f("fk_lockdown_doors_lockdown_id_lockdowns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lockdown_doors")),
        sa.UniqueConstraint(
            "lockdown_id", "device_id", name=op.f("uq_lockdown_doors_lockdown_id_device_id")
        ),
    )
    with op.batch_alter_table("lockdown_doors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lockdown_doors_lockdown_id"), ["lockdown_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("lockdown_doors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lockdown_doors_lockdown_id"))

    op.drop_table("lockdown_doors")
    with op.batch_alter_table("lockdowns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lockdowns_state"))
        batch_op.drop_index(batch_op.f("ix_lockdowns_started_at"))
        batch_op.drop_index(batch_op.f("ix_lockdowns_request_id"))
        batch_op.drop_index(batch_op.f("ix_lockdowns_incident_id"))
        batch_op.drop_index(batch_op.f("ix_lockdowns_facility_id"))

    op.drop_table("lockdowns")
    with op.batch_alter_table("lockdown_triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lockdown_triggers_facility_id"))

    op.drop_table("lockdown_triggers")
