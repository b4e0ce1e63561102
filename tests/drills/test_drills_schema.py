"""Migration 0007 creates exactly the tables the drills models describe, and seeds the
organisation's required drills."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from watchfloor.db import Base, import_all_models
from watchfloor.drills.models import DrillRequirement

TABLES = {
    "drill_requirements",
    "drill_schedules",
    "drills",
    "drill_participants",
    "drill_reports",
    "drill_actions",
}


async def test_migrated_schema_matches_the_drills_models(app, db) -> None:  # type: ignore[no-untyped-def]
    import_all_models()
    engine = app.state.engine

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)

    def touches(change) -> bool:  # type: ignore[no-untyped-def]
        flat = change if isinstance(change, tuple) else change[0]
        text = repr(flat)
        return any(f"'{t}'" in text or f"{t}." in text or f"_{t}_" in text for t in TABLES)

    mine = [c for c in changes if touches(c)]
    assert not mine, mine
    seeded = {r.kind: r.interval_months for r in (await db.scalars(select(DrillRequirement))).all()}
    assert seeded == {"active_shooter": 3, "lockdown": 12, "evacuation": 12}
