"""Migration 0008 creates exactly the tables the models describe, and seeds the catalogue and
the role requirements."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from watchfloor.db import Base, import_all_models
from watchfloor.training.catalogue import COURSES, REQUIREMENTS
from watchfloor.training.models import TrainingCourse, TrainingRequirement

TABLES = {
    "training_courses",
    "training_requirements",
    "training_completions",
    "training_imports",
    "training_reminders",
}


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


async def test_catalogue_and_requirements_are_seeded(db) -> None:  # type: ignore[no-untyped-def]
    codes = (await db.execute(select(TrainingCourse.code))).scalars().all()
    assert set(codes) == {c[0] for c in COURSES}
    n = await db.scalar(select(func.count()).select_from(TrainingRequirement))
    assert n == sum(len(v) for v in REQUIREMENTS.values())
    # a course added later gets a fresh id (the sequence moved past the seeded ids)
    from datetime import UTC, datetime

    now = datetime(2026, 1, 5, tzinfo=UTC)
    db.add(TrainingCourse(code="NEW", name="New", refresh_months=12, created_at=now,
                          updated_at=now))  # fmt: skip
    await db.commit()
