"""Preparedness scorecard: per facility, and rolled up by region and organisation.

Components: the ten assessment areas, "rollout", "device health", "drills" and "training". Each
gets a status — in place / under review / gap (or "not tracked" where nothing measures it yet) —
and a priority (high / medium / low), and carries its reasons, each with a link to what produced
it (a finding list, a task, the device list):

- assessment areas, from the assessments domain's open findings
  (`assessments.service.facility_findings_summary`): an overdue finding, or an open critical or
  high one → gap (high); other open findings → under review (priority from the worst severity);
  none and a completed assessment on file → in place; never assessed → not tracked;
- rollout, from the facility's rollout tasks: any late → gap (high); any not yet closed (in
  progress, due soon, on track) → under review (medium if in progress or due soon, else low);
  every task done or waived → in place; no tasks → not tracked;
- device health, from sites.models.Device.status of panic buttons and doors: a panic button
  offline or in trouble → gap (high); a door offline or in trouble → gap (medium); a device never
  heard from (status unknown) → under review (low); otherwise in place;
- drills and training, from those domains' `service.facility_compliance` (each decides its own
  status, priority and reasons; a facility it says nothing about is "not tracked").

The roll-up counts facilities per status for each component with SQL aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.assessments import service as assessments
from watchfloor.assessments.models import AREA_LABELS
from watchfloor.auth.principal import Scope
from watchfloor.drills import service as drills
from watchfloor.rollout.models import Countermeasure, RolloutTask, TaskState
from watchfloor.rollout.service import status_expr
from watchfloor.sites.models import Device, DeviceKind, DeviceStatus, Facility, Region
from watchfloor.sites.service import scope_filter
from watchfloor.training import service as training

IN_PLACE, UNDER_REVIEW, GAP, NOT_TRACKED = "in_place", "under_review", "gap", "not_tracked"
STATUS_LABELS = {
    IN_PLACE: "In place",
    UNDER_REVIEW: "Under review",
    GAP: "Gap",
    NOT_TRACKED: "Not tracked yet",
}
PRIORITY_LABELS = {"high": "High", "medium": "Medium", "low": "Low"}
ROLLOUT, DEVICES, DRILLS, TRAINING_C = "rollout", "device_health", "drills", "training_compliance"
#: components whose status another domain computes: (its service, why "not tracked", link)
TRACKED_ELSEWHERE: dict[str, tuple[Any, str, str]] = {
    DRILLS: (drills, "No drill is required of this facility or on record.", "/drills"),
    TRAINING_C: (training, "No training is required of this facility's staff.", "/training"),
}
COMPONENT_LABELS: dict[str, str] = {
    **{str(k): v for k, v in AREA_LABELS.items()},
    ROLLOUT: "Countermeasure rollout",
    DEVICES: "Device health",
    DRILLS: "Drills",
    TRAINING_C: "Training compliance",
}
COMPONENTS: list[str] = [ROLLOUT, DEVICES, *[str(k) for k in AREA_LABELS], DRILLS, TRAINING_C]
#: column headings of the roll-up table (the full label is its tooltip)
SHORT_LABELS: dict[str, str] = {
    ROLLOUT: "Rollout",
    DEVICES: "Devices",
    "perimeter": "Perimeter",
    "access_control": "Access",
    "screening": "Screening",
    "surveillance": "Surveillance",
    "alarms": "Alarms",
    "lockdown": "Lockdown",
    "emergency_plans": "Plans",
    "training": "Training (area)",
    "interagency": "Interagency",
    "support": "Support",
    DRILLS: "Drills",
    TRAINING_C: "Training",
}
WATCHED_DEVICES = (DeviceKind.PANIC_BUTTON.value, DeviceKind.DOOR.value)
BAD_DEVICE = (DeviceStatus.OFFLINE.value, DeviceStatus.TROUBLE.value)
SEV_PRIORITY = {"critical": "high", "high": "high", "medium": "medium", "low": "low"}


@dataclass
class Reason:
    text: str
    link: str


@dataclass
class Component:
    key: str
    status: str
    priority: str
    reasons: list[Reason] = field(default_factory=list)

    @property
    def label(self) -> str:
        return COMPONENT_LABELS.get(self.key, self.key)


def _area_component(
    area: str, summary: dict[str, Any] | None, assessed: bool, code: str
) -> Component:
    link = f"/assessments/findings?facility={code}&area={area}"
    if summary and summary.get("open"):
        n, overdue, worst = int(summary["open"]), int(summary.get("overdue", 0)), summary["worst"]
        text = f"{n} open finding(s), worst {worst}" + (f", {overdue} overdue" if overdue else "")
        if overdue or worst in ("critical", "high"):
            return Component(area, GAP, "high", [Reason(text, link)])
        return Component(area, UNDER_REVIEW, SEV_PRIORITY.get(worst, "low"), [Reason(text, link)])
    if assessed:
        return Component(
            area, IN_PLACE, "low", [Reason("No open findings in the latest assessment.", link)]
        )
    return Component(
        area, NOT_TRACKED, "medium", [Reason("No completed assessment of this facility.", link)]
    )


async def facility_scorecard(
    db: AsyncSession, facility: Facility, now: datetime, due_soon: timedelta
) -> list[Component]:
    """Every component of one facility's scorecard, with its reasons (the caller checks scope)."""
    code = facility.code
    summary = (await assessments.facility_findings_summary(db, [facility.id], now)).get(
        facility.id, {}
    )
    assessed = facility.id in await assessments.latest_levels(db, [facility.id])
    comps = [_area_component(str(a), summary.get(str(a)), assessed, code) for a in AREA_LABELS]

    # rollout: the facility's open tasks, late first
    status = status_expr(now, due_soon).label("status")
    rows = (
        await db.execute(
            select(
                RolloutTask.id, RolloutTask.state, status, Countermeasure.name, RolloutTask.due_at
            )
            .join(Countermeasure, Countermeasure.id == RolloutTask.countermeasure_id)
            .where(RolloutTask.facility_id == facility.id)
            .order_by(RolloutTask.due_at)
        )
    ).all()
    tasks_link = f"/rollout/facilities/{code}"
    if not rows:
        comps.append(
            Component(ROLLOUT, NOT_TRACKED, "low", [Reason("No directive covers it.", tasks_link)])
        )
    else:
        late = [r for r in rows if r.status == "late"]
        active = [r for r in rows if r.state == TaskState.IN_PROGRESS or r.status == "due_soon"]
        open_ = [r for r in rows if r.state in (TaskState.PLANNED, TaskState.IN_PROGRESS)]
        if late:
            comp = Component(ROLLOUT, GAP, "high")
            comp.reasons = [
                Reason(
                    f"Late: {r.name} (due {r.due_at:%Y-%m-%d %H:%M} UTC)", f"/rollout/tasks/{r.id}"
                )
                for r in late[:20]
            ]
            if len(late) > 20:
                comp.reasons.append(Reason(f"… and {len(late) - 20} more late", tasks_link))
        elif open_:
            comp = Component(ROLLOUT, UNDER_REVIEW, "medium" if active else "low")
            comp.reasons = [
                Reason(
                    f"{len(open_)} of {len(rows)} task(s) open, none late"
                    + (f"; {len(active)} in progress or due soon" if active else ""),
                    tasks_link,
                )
            ]
        else:
            comp = Component(
                ROLLOUT,
                IN_PLACE,
                "low",
                [Reason(f"All {len(rows)} task(s) done or waived.", tasks_link)],
            )
        comps.append(comp)

    # device health: panic buttons and doors
    devices = (
        await db.execute(
            select(Device.code, Device.name, Device.kind, Device.status)
            .where(Device.facility_id == facility.id, Device.kind.in_(WATCHED_DEVICES))
            .order_by(Device.code)
        )
    ).all()
    dev_link = f"/facilities/{code}#devices"
    bad = [d for d in devices if d.status in BAD_DEVICE]
    unknown = [d for d in devices if d.status == DeviceStatus.UNKNOWN]
    if bad:
        panic = any(d.kind == DeviceKind.PANIC_BUTTON for d in bad)
        comps.append(
            Component(
                DEVICES,
                GAP,
                "high" if panic else "medium",
                [
                    Reason(f"{d.name} ({d.kind.replace('_', ' ')}) is {d.status}", dev_link)
                    for d in bad
                ],
            )
        )
    elif unknown:
        comps.append(
            Component(
                DEVICES,
                UNDER_REVIEW,
                "low",
                [Reason(f"{len(unknown)} device(s) never heard from", dev_link)],
            )
        )
    elif devices:
        comps.append(
            Component(
                DEVICES,
                IN_PLACE,
                "low",
                [Reason(f"{len(devices)} panic buttons and doors online", dev_link)],
            )
        )
    else:
        comps.append(
            Component(
                DEVICES,
                NOT_TRACKED,
                "medium",
                [Reason("No panic buttons or doors registered.", dev_link)],
            )
        )
    for key, (domain, why, link) in TRACKED_ELSEWHERE.items():
        found = (await domain.facility_compliance(db, [facility.id], now)).get(facility.id)
        if found is None:
            comps.append(
                Component(key, NOT_TRACKED, "low", [Reason(why, f"{link}?facility={code}")])
            )
        else:
            reasons = [Reason(text, href) for text, href in found.reasons]
            comps.append(Component(key, found.status, found.priority, reasons))
    order = {k: i for i, k in enumerate(COMPONENTS)}
    return sorted(comps, key=lambda c: order.get(c.key, len(order)))


# ---------------------------------------------------------------------------- roll-up


@dataclass
class Rollup:
    as_of: datetime
    organisation: dict[str, dict[str, int]]
    regions: list[tuple[str, str, dict[str, dict[str, int]]]]


def _empty() -> dict[str, dict[str, int]]:
    return {c: {IN_PLACE: 0, UNDER_REVIEW: 0, GAP: 0, NOT_TRACKED: 0} for c in COMPONENTS}


async def rollup(db: AsyncSession, scope: Scope, now: datetime, due_soon: timedelta) -> Rollup:
    """Facilities per status for every component, per region and for the organisation."""
    in_scope = scope_filter(scope)
    regions = (
        await db.execute(
            select(Region.id, Region.code, Region.name, func.count(Facility.id))
            .join(Facility, Facility.region_id == Region.id)
            .where(in_scope)
            .group_by(Region.id, Region.code, Region.name)
            .order_by(Region.code)
        )
    ).all()
    cells: dict[int, dict[str, dict[str, int]]] = {r.id: _empty() for r in regions}
    sizes = {r.id: int(r[3]) for r in regions}

    # rollout: one status per facility (subquery), then facilities per (region, status)
    st = status_expr(now, due_soon)
    per_fac = (
        select(
            RolloutTask.facility_id.label("fid"),
            func.sum(case((st == "late", 1), else_=0)).label("late"),
            func.sum(
                case(
                    (
                        RolloutTask.state.in_(
                            [TaskState.PLANNED.value, TaskState.IN_PROGRESS.value]
                        ),
                        1,
                    ),
                    else_=0,
                )
            ).label("open"),
        )
        .group_by(RolloutTask.facility_id)
        .subquery()
    )
    fac_status = case(
        (per_fac.c.late > 0, GAP), (per_fac.c.open > 0, UNDER_REVIEW), else_=IN_PLACE
    ).label("st")
    for region_id, status, n in (
        await db.execute(
            select(Facility.region_id, fac_status, func.count())
            .join(per_fac, per_fac.c.fid == Facility.id)
            .where(in_scope)
            .group_by(Facility.region_id, fac_status)
        )
    ).all():
        cells[region_id][ROLLOUT][status] += int(n)

    # devices: worst status of panic buttons and doors per facility
    bad = func.sum(case((Device.status.in_(BAD_DEVICE), 1), else_=0))
    unk = func.sum(case((Device.status == DeviceStatus.UNKNOWN.value, 1), else_=0))
    per_dev = (
        select(Device.facility_id.label("fid"), bad.label("bad"), unk.label("unk"))
        .where(Device.kind.in_(WATCHED_DEVICES))
        .group_by(Device.facility_id)
        .subquery()
    )
    dev_status = case(
        (per_dev.c.bad > 0, GAP), (per_dev.c.unk > 0, UNDER_REVIEW), else_=IN_PLACE
    ).label("st")
    for region_id, status, n in (
        await db.execute(
            select(Facility.region_id, dev_status, func.count())
            .join(per_dev, per_dev.c.fid == Facility.id)
            .where(in_scope)
            .group_by(Facility.region_id, dev_status)
        )
    ).all():
        cells[region_id][DEVICES][status] += int(n)

    # assessment areas: from the assessments domain's read functions
    fac_region = dict(
        (await db.execute(select(Facility.id, Facility.region_id).where(in_scope))).all()
    )
    ids = list(fac_region)
    summary = await assessments.facility_findings_summary(db, ids, now) if ids else {}
    levels = await assessments.latest_levels(db, ids) if ids else {}
    assessed_per_region: dict[int, int] = {}
    for fid in levels:
        rid = fac_region.get(fid)
        if rid is not None:
            assessed_per_region[rid] = assessed_per_region.get(rid, 0) + 1
    flagged: dict[tuple[int, str], dict[str, int]] = {}
    for fid, areas in summary.items():
        rid = fac_region.get(fid)
        if rid is None:
            continue
        for area, s in areas.items():
            if area not in cells[rid]:
                continue
            comp = _area_component(area, s, fid in levels, "")
            cells[rid][area][comp.status] += 1
            key = (rid, area)
            flagged.setdefault(key, {"assessed": 0})
            if fid in levels:
                flagged[key]["assessed"] += 1

    # drills and training: each domain's status per facility
    for component, (domain, _why, _link) in TRACKED_ELSEWHERE.items():
        found = await domain.facility_compliance(db, ids, now, with_reasons=False) if ids else {}
        for fid, compliance in found.items():
            rid = fac_region.get(fid)
            if rid is not None and compliance.status != NOT_TRACKED:
                cells[rid][component][compliance.status] += 1

    for rid, comps in cells.items():
        total = sizes[rid]
        for c in COMPONENTS:
            cell = comps[c]
            if c in COMPONENT_LABELS and c not in (ROLLOUT, DEVICES, *TRACKED_ELSEWHERE):
                # assessed facilities with no open finding in the area are "in place"
                assessed = assessed_per_region.get(rid, 0)
                cell[IN_PLACE] = assessed - flagged.get((rid, c), {"assessed": 0})["assessed"]
                cell[NOT_TRACKED] = total - cell[IN_PLACE] - cell[UNDER_REVIEW] - cell[GAP]
            else:
                cell[NOT_TRACKED] = total - cell[IN_PLACE] - cell[UNDER_REVIEW] - cell[GAP]

    org = _empty()
    for comps in cells.values():
        for c, cell in comps.items():
            for k, v in cell.items():
                org[c][k] += v
    return Rollup(
        as_of=now,
        organisation=org,
        regions=[(r.code, r.name, cells[r.id]) for r in regions],
    )


def rollup_priority(cell: dict[str, int]) -> str:
    if cell.get(GAP):
        return "high"
    if cell.get(UNDER_REVIEW):
        return "medium"
    return "low"
