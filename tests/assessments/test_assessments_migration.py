"""Migration 0005 creates exactly the assessments tables the models describe, on the database
the tests run on (SQLite or PostgreSQL), and its downgrade removes them."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from watchfloor.db import Base

TABLES = {
    "assessment_standards",
    "assessment_templates",
    "assessments",
    "assessment_findings",
    "assessment_attachments",
}


def _ours(diff: Any) -> bool:
    """Does one autogenerate difference concern the assessments tables?"""
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item[1:]:
            table = getattr(part, "table", None)
            name = getattr(part, "name", None)
            if (table is not None and table.name in TABLES) or name in TABLES:
                return True
            if isinstance(part, str) and part in TABLES:
                return True
    return False


async def test_the_migrated_schema_matches_the_models(app) -> None:  # type: ignore[no-untyped-def]
    import watchfloor.assessments.models  # noqa: F401  (registers the tables)

    engine = app.state.engine

    def diff(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, Base.metadata) if _ours(d)]

    async with engine.connect() as conn:
        found = await conn.run_sync(diff)
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert names >= TABLES
    assert found == [], found


async def test_downgrade_removes_the_tables(database_url) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    from watchfloor.config import Settings
    from watchfloor.db import make_engine
    from watchfloor.migrate import alembic_config

    engine = make_engine(Settings(database_url=database_url))
    try:

        def down_and_up(conn: Any) -> tuple[set[str], set[str]]:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
            after_down = set(inspect(conn).get_table_names())
            command.upgrade(cfg, "0005")
            return after_down, set(inspect(conn).get_table_names())

        async with engine.begin() as conn:
            after_down, after_up = await conn.run_sync(down_and_up)
    finally:
        await engine.dispose()
    assert not (TABLES & after_down)
    assert after_up >= TABLES
