"""Demo assessments for the fictional agency: most facilities get a completed assessment (some
recent, some long ago so they show as due or overdue) with findings; a few were never assessed.
Repeatable (a fixed seed) and idempotent (facilities that already have an assessment are left
alone). Called by `watchfloor demo` after the organisation is loaded."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.assessments import service
from watchfloor.assessments.models import (
    AREA_LABELS,
    Answer,
    Area,
    Assessment,
    AssessmentStatus,
    Severity,
)
from watchfloor.assessments.schemas import (
    AnswerIn,
    AssessmentCreate,
    AssessmentUpdate,
    FindingCreate,
)
from watchfloor.clock import Clock
from watchfloor.sites.models import Facility

DEMO_SEED = 1906
FINDINGS = {
    "perimeter": ["Vehicle gate left open after hours", "Fence panel missing on the east side"],
    "access_control": ["Badges of two leavers still active", "Side door propped open"],
    "screening": ["Magnetometer not calibrated this year", "No x-ray for parcels"],
    "surveillance": ["Car-park cameras too dark at night", "Footage kept only 7 days"],
    "alarms": ["Interview-room panic button not reporting", "Panic alarm sounds locally"],
    "lockdown": ["Lobby doors cannot be locked remotely"],
    "emergency_plans": ["Occupant emergency plan two years old"],
    "training": ["A third of staff lack active-shooter training"],
    "interagency": ["No agreement with the local police department"],
    "support": ["Staff unaware of the counselling service"],
}


async def load_demo_assessments(
    db: AsyncSession, clock: Clock, actor: str = "system:demo", *, seed: int = DEMO_SEED
) -> int:
    """Add demo assessments; returns how many were added. The caller commits."""
    now = clock.now()
    facilities = (await db.scalars(select(Facility).order_by(Facility.code))).all()
    done = set((await db.scalars(select(Assessment.facility_id).distinct())).all())
    template = await service.ensure_default_template(db, clock)
    keys = sorted(service.question_keys(template))
    added = 0
    for facility in facilities:
        rng = random.Random(f"{seed}:{facility.code}")  # the same choices on every run
        roll = rng.random()
        if facility.id in done or roll < 0.1:
            continue  # about one in ten was never assessed
        months_ago = rng.choice([1, 2, 4, 8, 11, 13, 20, 30, 35, 38])
        when = now - timedelta(days=30 * months_ago + rng.randint(0, 20))
        a = await service.create_assessment(
            db,
            clock,
            actor,
            facility,
            AssessmentCreate(
                facility=facility.code,
                assessor=rng.choice(["R. Okafor", "J. Lindqvist", "M. Alvarez", "S. Chen"]),
                scheduled_for=when,
            ),
        )
        a = await service.get_assessment(db, a.id)
        answers = {
            k: AnswerIn(answer=rng.choices(list(Answer), weights=[6, 2, 2, 1])[0]) for k in keys
        }
        await service.update_assessment(
            db,
            clock,
            actor,
            a,
            AssessmentUpdate(
                answers=answers,
                factors={
                    "mission_criticality": rng.randint(1, 4),
                    "symbolism": rng.randint(1, 3),
                    "threat_to_tenants": rng.randint(1, 4),
                },
                status=AssessmentStatus.COMPLETED,
            ),
        )
        # the record says when it was done: backdate it (the audit log says when it was loaded)
        a.scheduled_for = a.started_at = a.completed_at = when
        a.created_at = a.updated_at = when
        for area in rng.sample(list(AREA_LABELS), k=rng.randint(0, 4)):
            f = await service.add_finding(db, clock, actor, a, _finding(rng, area, when))
            f.created_at = f.updated_at = when
        added += 1
    await db.flush()
    return added


def _finding(rng: random.Random, area: str, when: datetime) -> FindingCreate:
    return FindingCreate(
        area=Area(area),
        severity=Severity(rng.choices(["critical", "high", "medium", "low"], [1, 3, 4, 3])[0]),
        description=rng.choice(FINDINGS[area]),
        owner=rng.choice(["Facilities", "Security manager", "Regional office", ""]),
        due_on=when.date() + timedelta(days=rng.choice([14, 30, 60, 90, 180])),
    )
