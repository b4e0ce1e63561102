"""The training domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from watchfloor.auth.principal import SYSTEM
from watchfloor.people.models import Person
from watchfloor.training import service


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """A completion (and an import, and a reminder) for each facility's person; return the path
    values naming A's completion. Courses and requirements are organisation-wide: their path
    values name the seeded ones (editing them needs an organisation-wide grant)."""
    found: dict[str, Any] = {}
    for side in (a, b):
        rec = await service.record_completion(
            db, clock, SYSTEM, employee_id=side.employee_id, course_code="ASR",
            completed_on=date(2024, 1, 2),
        )  # fmt: skip
        await service.import_completions(
            db, clock, SYSTEM,
            f"employee_id,course_code,completed_on\n{side.employee_id},FIRSTAID,2024-02-03\n".encode(),
            filename=f"{side.code}.csv", max_bytes=10_000, max_rows=10,
        )  # fmt: skip
        person = (
            await db.execute(select(Person).where(Person.employee_id == side.employee_id))
        ).scalar_one()
        await service.send_reminder(db, clock, SYSTEM, person.facility, due_soon_days=30)
        if side is a:
            found = {"completion_id": rec.id, "course_code": "ASR", "role": "staff"}
    await db.commit()
    return found
