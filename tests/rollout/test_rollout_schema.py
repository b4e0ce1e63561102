"""Migration 0006 creates exactly the tables the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watchfloor.db import Base, import_all_models

TABLES = {"countermeasures", "directives", "rollout_tasks", "rollout_task_events"}


async def test_migrated_schema_matches_the_models(app) -> None:  # type: ignore[no-untyped-def]
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
        return any(t in text for t in TABLES)

    mine = [c for c in changes if touches(c)]
    assert not mine, mine
