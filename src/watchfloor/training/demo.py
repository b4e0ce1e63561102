"""Demo data of the training domain, loaded by `watchfloor demo` after the demo organisation.

Every active person gets completions of the courses their role requires, drawn with generators
seeded by facility code and employee id (the same data on every machine). Facilities differ, as
they do in life: about 15% are fully current, 40% keep up well (a few due soon, the odd one
overdue), 25% are slipping and 20% are far behind (a fifth overdue, a tenth never trained). The
demo staff's vetting (some expired) comes from the organisation's demo loader and is shown
beside it.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.clock import Clock
from watchfloor.people.models import Person
from watchfloor.rollout.deadlines import add_months
from watchfloor.sites.models import Facility
from watchfloor.training.models import (
    CompletionSource,
    TrainingCompletion,
    TrainingCourse,
    TrainingRequirement,
)
from watchfloor.training.service import expires_on

ACTOR = "system:demo"


def _tier(roll: float) -> tuple[float, float, float]:
    """A facility's shares of (never, overdue, due soon) by how well it keeps up."""
    if roll < 0.15:
        return 0.0, 0.0, 0.0  # fully current
    if roll < 0.55:
        return 0.01, 0.02, 0.06  # keeps up
    if roll < 0.80:
        return 0.05, 0.08, 0.10  # slipping
    return 0.10, 0.18, 0.10  # far behind


async def load_demo_training(db: AsyncSession, clock: Clock) -> int:
    """Add the demo's training data once (a second run adds nothing); returns how many rows were
    added. The caller commits."""
    if (await db.execute(select(TrainingCompletion.id).limit(1))).first() is not None:
        return 0
    now = clock.now()
    today = now.date()
    courses = {c.id: c for c in (await db.execute(select(TrainingCourse))).scalars().all()}
    required: dict[str, list[int]] = {}
    for role, cid in (
        await db.execute(select(TrainingRequirement.role, TrainingRequirement.course_id))
    ).all():
        required.setdefault(role, []).append(cid)
    people = (
        await db.execute(
            select(Person.id, Person.employee_id, Person.role, Facility.code)
            .join(Facility, Facility.id == Person.facility_id)
            .where(Person.active.is_(True))
        )
    ).all()
    rows = []
    for pid, emp, role, fac_code in people:
        never, overdue, soon = _tier(random.Random(f"training-{fac_code}").random())
        rng = random.Random(f"training-{emp}")
        for cid in sorted(required.get(role, [])):
            course = courses[cid]
            roll = rng.random()
            if roll < never:
                continue  # never done
            if roll < never + overdue:  # overdue: expired 1 to 200 days ago
                expiry = today - timedelta(days=rng.randint(1, 200))
            elif roll < never + overdue + soon:  # due soon: expires in the next 1 to 28 days
                expiry = today + timedelta(days=rng.randint(1, 28))
            else:  # current
                months_left = rng.randint(2, max(2, course.refresh_months - 1))
                expiry = add_months(now, months_left).date() + timedelta(days=rng.randint(0, 27))
            done = add_months(now - (now.date() - expiry), -course.refresh_months).date()
            if done > today:
                done = today
            rows.append(
                {
                    "person_id": pid,
                    "course_id": cid,
                    "completed_on": done,
                    "expires_on": expires_on(done, course.refresh_months),
                    "source": CompletionSource.ENTERED.value,
                    "import_id": None,
                    "note": "",
                    "recorded_by": ACTOR,
                    "recorded_at": now,
                }
            )
    for start in range(0, len(rows), 2000):
        await db.execute(insert(TrainingCompletion), rows[start : start + 2000])
    return len(rows)
