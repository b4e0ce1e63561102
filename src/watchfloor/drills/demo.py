"""Demo data of the drills domain, loaded by `watchfloor demo` after the demo organisation.

Every demo facility gets a quarterly active-shooter schedule. Most have held their required drills
(active shooter, lockdown, evacuation) recently; about one in six is overdue on the quarterly drill
and about one in twelve has never held one. Some drills have after-action reports with corrective
actions, a few of them overdue. Deterministic (by facility order) and idempotent: a facility that
already has a drill schedule is left alone.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.clock import Clock
from watchfloor.drills.models import (
    Drill,
    DrillAction,
    DrillParticipant,
    DrillReport,
    DrillSchedule,
)
from watchfloor.rollout.deadlines import zone
from watchfloor.sites.models import Facility

ACTOR = "system:demo"


async def load_demo_drills(db: AsyncSession, clock: Clock) -> int:
    """Add the demo's drills data once (a second run adds nothing); returns how many rows were
    added. The caller commits."""
    now = clock.now()
    done = set((await db.scalars(select(DrillSchedule.facility_id).distinct())).all())
    facilities = (
        await db.execute(select(Facility.id, Facility.timezone).order_by(Facility.id))
    ).all()
    added = 0
    for i, (fid, tz) in enumerate(facilities):
        if fid in done:
            continue
        local_now = now.astimezone(zone(tz))
        anchor = (local_now - timedelta(days=60 + i % 30)).replace(hour=10, minute=0)
        db.add(
            DrillSchedule(
                facility_id=fid,
                kind="active_shooter",
                title="Quarterly active-shooter drill",
                rrule="FREQ=MONTHLY;INTERVAL=3",
                anchor_local=anchor.strftime("%Y-%m-%dT%H:%M"),
                partner_agencies=["Local police"] if i % 4 == 0 else [],
                paused=False,
                created_at=now,
                created_by=ACTOR,
                updated_at=now,
            )
        )
        added += 1
        if i % 12 == 5:
            continue  # never held a drill
        ages = {
            # the quarterly drill: overdue for about one in six facilities
            "active_shooter": 120 + i % 40 if i % 6 == 1 else 10 + (i * 7) % 75,
            "lockdown": 30 + (i * 11) % 300,
            "evacuation": 60 + (i * 13) % 280 if i % 9 != 2 else 400,
        }
        for kind, age in ages.items():
            ended = now - timedelta(days=age, hours=i % 5)
            started = ended - timedelta(minutes=25)
            drill = Drill(
                facility_id=fid,
                kind=kind,
                title=f"{kind.replace('_', ' ').capitalize()} drill",
                state="completed",
                planned_at=started,
                started_at=started,
                ended_at=ended,
                run_by=ACTOR,
                partner_agencies=["Local police", "County EMS"] if kind == "active_shooter"
                and i % 4 == 0 else [],
                seconds_to_locked=40 + (i * 3) % 80 if kind != "evacuation" else None,
                doors_total=6 if kind != "evacuation" else None,
                doors_failed=(1 if i % 7 == 3 else 0) if kind != "evacuation" else None,
                seconds_to_accounted=300 + (i * 17) % 600,
                accounted_share=1.0 if kind != "evacuation" else None,
                safe_count=20 + i % 30,
                need_help_count=0,
                no_answer_count=0,
                seconds_to_evacuated=240 + (i * 19) % 300 if kind == "evacuation" else None,
                timings_source="typed",
                notes="",
                created_at=started,
                created_by=ACTOR,
                updated_at=ended,
            )  # fmt: skip
            db.add(drill)
            await db.flush()
            db.add(
                DrillParticipant(drill_id=drill.id, source="manual", name="Facility security "
                                 "manager", agency="", count=1, answer="", added_by=ACTOR,
                                 added_at=ended)
            )  # fmt: skip
            added += 2
            if kind == "active_shooter" and i % 3 == 0:
                db.add(
                    DrillReport(drill_id=drill.id, worked="Doors locked quickly; staff sheltered "
                                "in place.", gaps="Roll-call answers were slow from the annex.",
                                written_by=ACTOR, written_at=ended, updated_at=ended)
                )  # fmt: skip
                day = ended.astimezone(zone(tz)).date()
                due = day + timedelta(days=30 if i % 2 else 7)
                overdue_one = due < local_now.date()
                db.add(
                    DrillAction(drill_id=drill.id, facility_id=fid,
                                description="Add the annex to the roll-call text list",
                                owner="Facility security manager", due_on=due,
                                state="open" if overdue_one or i % 2 else "done",
                                created_at=ended, created_by=ACTOR, updated_at=ended,
                                updated_by=ACTOR, done_at=None if overdue_one or i % 2 else ended,
                                done_by=None if overdue_one or i % 2 else ACTOR)
                )  # fmt: skip
                added += 2
    await db.flush()
    return added
