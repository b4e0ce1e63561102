"""System health: are the background loops alive, and is the outbox draining?

Every background loop (escalation engine, outbox relay, device supervisor) records a
``SchedulerBeat`` after each tick. A beat older than ``STALL_AFTER`` means that loop has stalled:
escalations would not fire, alarms would not reach the console, silent devices would not be
noticed. Unpublished outbox rows older than ``STALL_AFTER`` mean the bus is not being fed. The
console shows these problems as a banner to every operator, and the escalation engine stops
pinging the external heartbeat URL while there are any.

A loop that has never beaten is not reported (it is not part of this deployment, or has only just
started); pass ``required`` to insist on some.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.bus.models import OutboxMessage
from watchfloor.clock import Clock, as_utc
from watchfloor.incidents.models import SchedulerBeat

STALL_AFTER = timedelta(seconds=10)
WATCHED_LOOPS: dict[str, str] = {
    "escalation": "The escalation scheduler",
    "relay": "The outbox relay (alarms reaching the console and notifications)",
    "supervisor": "Device supervision",
}


@dataclass(frozen=True)
class HealthProblem:
    code: str  # "loop_stalled" | "loop_missing" | "outbox_backlog"
    component: str  # the loop's name, or "outbox"
    message: str  # one sentence an operator can act on
    since: datetime | None  # the last beat / the oldest waiting message

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat() if self.since else None
        return out


async def system_health(
    db: AsyncSession,
    clock: Clock,
    *,
    required: Iterable[str] = (),
    stall_after: timedelta = STALL_AFTER,
) -> list[HealthProblem]:
    """Everything wrong right now (empty when healthy)."""
    now = clock.now()
    problems: list[HealthProblem] = []
    beats = {b.name: b for b in (await db.execute(select(SchedulerBeat))).scalars().all()}
    for name in sorted(set(WATCHED_LOOPS) | set(beats) | set(required)):
        beat = beats.get(name)
        label = WATCHED_LOOPS.get(name, f"The '{name}' loop")
        if beat is None:
            if name in set(required):
                problems.append(
                    HealthProblem("loop_missing", name, f"{label} has not started.", since=None)
                )
            continue
        last = as_utc(beat.last_beat_at)
        age = now - last
        if age > stall_after:
            problems.append(
                HealthProblem(
                    "loop_stalled",
                    name,
                    f"{label} has stalled: its last beat was {int(age.total_seconds())} s ago"
                    + (f" ({beat.process})" if beat.process else "")
                    + ".",
                    since=last,
                )
            )
    waiting, oldest = (
        await db.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.published_at.is_(None),
                OutboxMessage.created_at < now - stall_after,
            )
        )
    ).one()
    if waiting:
        oldest_at = as_utc(oldest) if isinstance(oldest, datetime) else None
        problems.append(
            HealthProblem(
                "outbox_backlog",
                "outbox",
                f"{waiting} bus message{'s' if waiting != 1 else ''} waiting over "
                f"{int(stall_after.total_seconds())} s to be published: alarms and notifications "
                "may be delayed.",
                since=oldest_at,
            )
        )
    return problems
