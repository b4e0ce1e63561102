"""notify tables: recipient groups, alerts (with their CAP documents), alert facilities and
deliveries (one per recipient and channel)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watchfloor.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notify_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_notify_groups_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_groups")),
        sa.UniqueConstraint("facility_id", "name", name=op.f("uq_notify_groups_facility_id_name")),
    )
    with op.batch_alter_table("notify_groups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notify_groups_facility_id"), ["facility_id"], unique=False
        )

    op.create_table(
        "notify_alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("identifier", sa.String(length=120), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("msg_type", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("urgency", sa.String(length=20), nullable=False),
        sa.Column("certainty", sa.String(length=20), nullable=False),
        sa.Column(
            "incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("sender", sa.String(length=160), nullable=False),
        sa.Column("headline", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("cap_xml", sa.Text(), nullable=False),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_notify_alerts_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_alerts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notify_alerts_idempotency_key")),
        sa.UniqueConstraint("identifier", name=op.f("uq_notify_alerts_identifier")),
    )
    with op.batch_alter_table("notify_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notify_alerts_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notify_alerts_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_notify_alerts_status"), ["status"], unique=False)

    op.create_table(
        "notify_group_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["notify_groups.id"],
            name=op.f("fk_notify_group_members_group_id_notify_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_notify_group_members_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["response_units.id"],
            name=op.f("fk_notify_group_members_unit_id_response_units"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_group_members")),
    )
    with op.batch_alter_table("notify_group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notify_group_members_group_id"), ["group_id"], unique=False
        )

    op.create_table(
        "notify_alert_facilities",
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["notify_alerts.id"],
            name=op.f("fk_notify_alert_facilities_alert_id_notify_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_notify_alert_facilities_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "facility_id", name=op.f("pk_notify_alert_facilities")),
    )
    with op.batch_alter_table("notify_alert_facilities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notify_alert_facilities_facility_id"), ["facility_id"], unique=False
        )

    op.create_table(
        "notify_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("recipient_kind", sa.String(length=10), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("recipient_name", sa.String(length=220), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=400), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=120), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=300), nullable=True),
        sa.Column("sent_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", watchfloor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_how", sa.String(length=20), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=160), nullable=True),
        sa.Column("created_at", watchfloor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["notify_alerts.id"],
            name=op.f("fk_notify_deliveries_alert_id_notify_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_notify_deliveries_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_deliveries")),
        sa.UniqueConstraint(
            "alert_id",
            "recipient_kind",
            "recipient_id",
            "rank",
            name=op.f("uq_notify_deliveries_alert_id_recipient_kind_recipient_id_rank"),
        ),
        sa.UniqueConstraint("key", name=op.f("uq_notify_deliveries_key")),
    )
    with op.batch_alter_table("notify_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notify_deliveries_alert_id"), ["alert_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notify_deliveries_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notify_deliveries_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_notify_deliveries_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notify_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_state"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_facility_id"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_alert_id"))

    op.drop_table("notify_deliveries")
    with op.batch_alter_table("notify_alert_facilities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_alert_facilities_facility_id"))

    op.drop_table("notify_alert_facilities")
    with op.batch_alter_table("notify_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_group_members_group_id"))

    op.drop_table("notify_group_members")
    with op.batch_alter_table("notify_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_alerts_status"))
        batch_op.drop_index(batch_op.f("ix_notify_alerts_incident_id"))
        batch_op.drop_index(batch_op.f("ix_notify_alerts_created_at"))

    op.drop_table("notify_alerts")
    with op.batch_alter_table("notify_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_groups_facility_id"))

    op.drop_table("notify_groups")
