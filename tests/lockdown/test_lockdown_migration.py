"""Migration 0002 creates the lockdown tables exactly as the models describe them."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watchfloor.db import Base, import_all_models

MINE = {"lockdowns", "lockdown_doors", "lockdown_triggers"}


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table":
        return name in MINE
    table = getattr(obj, "table", None)
    return table is None or table.name in MINE


async def test_the_migrated_schema_matches_the_models(app) -> None:  # type: ignore[no-untyped-def]
    import_all_models()

    def _diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"include_object": _include, "compare_type": True}
        )
        return list(compare_metadata(context, Base.metadata))

    async with app.state.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []
