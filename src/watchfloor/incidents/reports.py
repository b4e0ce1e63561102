"""How often each facility, and the watch floor as a whole, met the response-time targets.

For every target (priority, measure, seconds, percent) and every incident of that priority opened
in [since, until):
- acknowledge: seconds from when the incident last needed attention to its acknowledgement. An
  incident still unacknowledged counts as missed once the target time has passed, and is left
  out (pending) before that;
- dispatch / on_scene: seconds from when the incident reached its priority to the first dispatch
  / the first unit on scene; incidents with no dispatch (or no unit on scene) are left out —
  not every alarm needs a unit.
Incidents closed with disposition `test` are left out (they test the path, not the people).
A measure meets its target when `percent_met >= percent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal
from watchfloor.clock import Clock, as_utc
from watchfloor.incidents.models import Disposition, Incident, ResponseTarget
from watchfloor.incidents.schemas import FacilityReport, MeasureResult, ResponseTimeReport
from watchfloor.incidents.service import incident_metrics
from watchfloor.sites.models import Facility


@dataclass
class _Tally:
    measured: int = 0
    met: int = 0


def measure_outcome(
    incident: Incident, measure: str, target_seconds: int, now: datetime
) -> bool | None:
    """True met, False missed, None not measured (pending, or not applicable)."""
    metrics = incident_metrics(incident)
    value = metrics.get(f"{measure}_seconds")
    if value is not None:
        return value <= target_seconds
    if measure == "acknowledge" and incident.acknowledged_at is None:
        start = as_utc(incident.attention_at or incident.opened_at)
        waited = (as_utc(now) - start).total_seconds()
        return False if waited > target_seconds else None
    return None


def _result(target: ResponseTarget, tally: _Tally) -> MeasureResult:
    percent = round(100.0 * tally.met / tally.measured, 2) if tally.measured else None
    return MeasureResult(
        priority=target.priority,
        measure=target.measure,
        target_seconds=target.seconds,
        target_percent=target.percent,
        incidents=tally.measured,
        met=tally.met,
        percent_met=percent,
        meets_target=None if percent is None else percent >= target.percent,
    )


async def response_time_report(
    db: AsyncSession,
    *,
    facilities: Sequence[Facility],
    since: datetime,
    until: datetime,
    now: datetime,
) -> ResponseTimeReport:
    targets = (
        await db.scalars(
            select(ResponseTarget).order_by(ResponseTarget.priority, ResponseTarget.measure)
        )
    ).all()
    by_id = {f.id: f for f in facilities}
    incidents: Sequence[Incident] = []
    if by_id:
        incidents = (
            await db.scalars(
                select(Incident).where(
                    Incident.facility_id.in_(list(by_id)),
                    Incident.opened_at >= since,
                    Incident.opened_at < until,
                    or_(Incident.disposition.is_(None), Incident.disposition != Disposition.TEST),
                )
            )
        ).all()
    per_facility: dict[int, dict[int, _Tally]] = {fid: {} for fid in by_id}
    overall: dict[int, _Tally] = {}
    for incident in incidents:
        for target in targets:
            if target.priority != incident.priority:
                continue
            outcome = measure_outcome(incident, target.measure, target.seconds, now)
            if outcome is None:
                continue
            for tallies in (per_facility[incident.facility_id], overall):
                tally = tallies.setdefault(target.id, _Tally())
                tally.measured += 1
                tally.met += int(outcome)
    reports = [
        FacilityReport(
            facility_code=f.code,
            facility_name=f.name,
            measures=[_result(t, per_facility[f.id].get(t.id, _Tally())) for t in targets],
        )
        for f in sorted(facilities, key=lambda f: f.code)
    ]
    return ResponseTimeReport(
        since=since,
        until=until,
        facilities=reports,
        watch_floor=[_result(t, overall.get(t.id, _Tally())) for t in targets],
    )


MEASURES = ("acknowledge", "dispatch", "on_scene")


async def list_targets(db: AsyncSession) -> list[ResponseTarget]:
    """Every response-time target, by priority then measure."""
    rows = await db.scalars(
        select(ResponseTarget).order_by(ResponseTarget.priority, ResponseTarget.measure)
    )
    return list(rows.all())


async def set_target(
    db: AsyncSession,
    clock: Clock,
    actor: Principal,
    *,
    priority: int,
    measure: str,
    seconds: int,
    percent: int,
) -> tuple[ResponseTarget, bool]:
    """Create or change the target of (priority, measure); audited. Returns (target, created).
    The caller checks the ranges (the API does with its schema) and commits."""
    if measure not in MEASURES or not 1 <= priority <= 4:
        raise ValueError(f"no such target: P{priority} {measure}")
    target = await db.scalar(
        select(ResponseTarget).where(
            ResponseTarget.priority == priority, ResponseTarget.measure == measure
        )
    )
    created = target is None
    before = None if target is None else {"seconds": target.seconds, "percent": target.percent}
    if target is None:
        target = ResponseTarget(
            priority=priority, measure=measure, seconds=seconds, percent=percent
        )
        db.add(target)
    else:
        target.seconds = seconds
        target.percent = percent
    await db.flush()
    after = {"seconds": seconds, "percent": percent}
    if before != after:
        await audit.record(
            db,
            clock,
            actor,
            "response_target.set",
            target_type="response_target",
            target_id=target.id,
            details={"priority": priority, "measure": measure, "before": before, "after": after},
        )
    return target, created


def report_dict(report: ResponseTimeReport) -> dict[str, Any]:
    return report.model_dump(mode="json")
