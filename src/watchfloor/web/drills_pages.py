"""Console pages of the drills domain.

- `/drills`: the compliance view, most urgent first (overdue, never held, due soon, compliant),
  the chart of compliance by region (`/drills/compliance.svg`), overdue corrective actions, drills
  running now, region filter, CSV links;
- `/drills/actions`: the corrective-action board, overdue first, with its moves;
- `/drills/facilities/{code}`: a facility's requirements status, schedules with their next
  occurrences (pause / resume), upcoming drills, history; forms to plan a drill and add a schedule;
- `/drills/{id}`: a drill — start / end / cancel, timings, participants, after-action report and
  corrective actions.

Every page checks drills:read at the facility (out of scope: 404); every form drills:manage.
Times are shown in the facility's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from watchfloor.auth.principal import Principal
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.drills import reports, service
from watchfloor.drills.models import KIND_LABELS, LOCKDOWN_KINDS, DrillKind
from watchfloor.drills.schemas import (
    ActionIn,
    DrillIn,
    EndIn,
    ParticipantIn,
    ReportIn,
    ScheduleIn,
    TimingsIn,
)
from watchfloor.problems import Problem
from watchfloor.rollout.deadlines import local_display, zone
from watchfloor.sites.models import Facility, Region
from watchfloor.sites.service import scope_filter
from watchfloor.web.perms import DRILLS_MANAGE, DRILLS_READ
from watchfloor.web.routes import (
    SECURITY_HEADERS,
    PagePrincipal,
    back_to,
    clean,
    error_page,
    form_str,
    render,
    shell,
)

router = APIRouter(include_in_schema=False)
PAGE_ROWS = 300


def _labels() -> dict[str, Any]:
    return {
        "KIND_LABELS": KIND_LABELS,
        "KINDS": [k.value for k in DrillKind],
        "LOCKDOWN_KINDS": LOCKDOWN_KINDS,
        "C_LABELS": service.STATUS_LABELS,
        "C_ORDER": service.STATUS_ORDER,
        "STATE_LABELS": service.STATE_LABELS,
        "ACTION_LABELS": service.ACTION_LABELS,
        "local": local_display,
        "minsec": _minsec,
    }


def _minsec(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 and int(value) > 0 else None


def _why(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', '')}")
    return "Check the form: " + "; ".join(parts)


async def _refused(db: Any, page: str, why: str) -> Response:
    """Undo the form's work and go back to the page saying why."""
    await db.rollback()
    return back_to(page, error=why)


def _denied(request: Request, base: dict[str, Any]) -> Response:
    return error_page(
        request, 403, "Not allowed", "Your roles do not include the drills pages.", base
    )


async def _regions(db: Any, principal: Principal) -> list[Any]:
    return list(
        (
            await db.execute(
                select(Region.code, Region.name)
                .join(Facility, Facility.region_id == Region.id)
                .where(scope_filter(principal.scope(DRILLS_READ)))
                .group_by(Region.code, Region.name)
                .order_by(Region.name)
            )
        ).all()
    )


# ---------------------------------------------------------------------------- compliance


@router.get("/drills")
async def drills_home(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(DRILLS_READ)
    if scope.empty:
        return _denied(request, base)
    region = clean(request.query_params.get("region", ""), 40) or None
    now = clock.now()
    soon = service.due_soon_delta(settings.drills_due_soon_days)
    entries = await service.compliance(db, scope, now, soon, region_code=region)
    totals, by_region = service.count_by_region(entries)
    actions = await service.list_actions(db, scope, now, open_only=True, region_code=region)
    running = [
        (d, f) for d, f in await service.list_drills(db, scope, limit=50) if d.state == "running"
    ]
    ctx = {
        **base,
        **_labels(),
        "nav": "drills",
        "now": now,
        "region": region or "",
        "regions": await _regions(db, principal),
        "totals": totals,
        "by_region": by_region,
        "rows": entries[:PAGE_ROWS],
        "total_rows": len(entries),
        "overdue_actions": [(a, f) for a, f, o in actions if o][:50],
        "running": running,
        "soon_days": settings.drills_due_soon_days,
        "requirements": await service.requirements(db, active_only=True),
        "query": urlencode({"region": region}) if region else "",
    }
    return render(request, "drills_compliance.html", ctx)


@router.get("/drills/compliance.svg")
async def drills_chart(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    scope = principal.scope(DRILLS_READ)
    if scope.empty:
        return Response(status_code=403)
    region = clean(request.query_params.get("region", ""), 40) or None
    entries = await service.compliance(
        db,
        scope,
        clock.now(),
        service.due_soon_delta(settings.drills_due_soon_days),
        region_code=region,
    )
    _totals, by_region = service.count_by_region(entries)
    return Response(
        reports.compliance_svg(by_region),
        media_type="image/svg+xml",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------------------- actions board


@router.get("/drills/actions")
async def actions_board(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(DRILLS_READ)
    if scope.empty:
        return _denied(request, base)
    rows = await service.list_actions(db, scope, clock.now(), limit=2000)
    ctx = {
        **base,
        **_labels(),
        "nav": "drills",
        "rows": rows,
        "can_manage": principal.has_perm_anywhere(DRILLS_MANAGE),
        "notice": clean(request.query_params.get("notice", ""), 300),
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "drills_actions.html", ctx)


@router.post("/drills/actions/{action_id}")
async def action_move(
    request: Request, action_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    aid = _int(action_id)
    try:
        if aid is None:
            raise Problem("no such action", status=404)
        action, _f = await service.action_in_scope(db, principal, aid)
    except Problem:
        return error_page(request, 404, "No such action", "There is no such action.", base)
    form = await request.form()
    back = form_str(form, "back", 200)
    back = back if back.startswith("/drills") and not back.startswith("//") else "/drills/actions"
    to = form_str(form, "to", 20)
    try:
        await service.move_action(db, clock, principal, aid, to)
    except Problem as exc:
        await db.rollback()
        if exc.status == 404:
            return error_page(request, 404, "No such action", "There is no such action.", base)
        return back_to(back, error=exc.detail)
    await db.commit()
    label = service.ACTION_LABELS.get(to, to)
    return back_to(back, notice=f"Action {action.id}: {label}.")


# ---------------------------------------------------------------------------- facility


async def _facility(db: Any, principal: Principal, code: str) -> Facility | None:
    try:
        return await service.facility_for(db, principal, clean(code, 40))
    except Problem:
        return None


@router.get("/drills/facilities/{facility_code}")
async def facility_page(
    request: Request,
    facility_code: str,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: PagePrincipal,
) -> Response:
    base = await shell(request, db, principal)
    facility = await _facility(db, principal, facility_code)
    if facility is None:
        return error_page(request, 404, "No such facility", "There is no such facility.", base)
    now = clock.now()
    scope = principal.scope(DRILLS_READ)
    soon = service.due_soon_delta(settings.drills_due_soon_days)
    entries = [
        e
        for e in await service.compliance(db, scope, now, soon, region_code=facility.region.code)
        if e.facility_id == facility.id
    ]
    info = zone(facility.timezone)
    schedules = []
    for s, _f in await service.list_schedules(db, scope, facility.id):
        nxt = (
            []
            if s.paused
            else service.next_occurrences(s.rrule, s.anchor_local, facility.timezone, now)
        )
        first = nxt[0].astimezone(info).strftime("%Y-%m-%dT%H:%M") if nxt else ""
        schedules.append((s, nxt, first))
    drills = [d for d, _f in await service.list_drills(db, scope, facility_id=facility.id)]
    local_now = now.astimezone(zone(facility.timezone))
    ctx = {
        **base,
        **_labels(),
        "nav": "drills",
        "facility": facility,
        "entries": entries,
        "schedules": schedules,
        "upcoming": [d for d in drills if d.state in ("planned", "running")],
        "history": [d for d in drills if d.state not in ("planned", "running")],
        "actions": await service.list_actions(db, scope, now, facility_id=facility.id),
        "can_manage": principal.allows(
            DRILLS_MANAGE, facility_id=facility.id, region_id=facility.region_id
        ),
        "default_when": local_now.replace(minute=0).strftime("%Y-%m-%dT%H:%M"),
        "notice": clean(request.query_params.get("notice", ""), 300),
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "drills_facility.html", ctx)


def _local_to_utc(text: str, tz: str, field: str) -> datetime:
    try:
        local = service.parse_anchor(text, (field,))
    except Problem as exc:
        raise exc from None
    return local.replace(tzinfo=zone(tz)).astimezone(UTC)


@router.post("/drills/facilities/{facility_code}/drills")
async def facility_plan(
    request: Request, facility_code: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    facility = await _facility(db, principal, facility_code)
    if facility is None:
        return error_page(request, 404, "No such facility", "There is no such facility.", base)
    form = await request.form()
    page = f"/drills/facilities/{facility.code}"
    try:
        planned = _local_to_utc(
            form_str(form, "planned_local", 20), facility.timezone, "planned_at"
        )
        body = DrillIn(
            facility_code=facility.code,
            kind=form_str(form, "kind", 30),
            planned_at=planned,
            title=form_str(form, "title", 200),
            schedule_id=_int(form_str(form, "schedule_id", 12)),
            partner_agencies=[
                a.strip() for a in form_str(form, "partner_agencies", 500).split(",") if a.strip()
            ],
        )
        drill, _f = await service.plan_drill(db, clock, principal, body)
    except ValidationError as exc:
        return await _refused(db, page, _why(exc))
    except Problem as exc:
        return await _refused(db, page, exc.detail)
    await db.commit()
    return back_to(f"/drills/{drill.id}", notice="Drill planned.")


@router.post("/drills/facilities/{facility_code}/schedules")
async def facility_schedule(
    request: Request, facility_code: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    facility = await _facility(db, principal, facility_code)
    if facility is None:
        return error_page(request, 404, "No such facility", "There is no such facility.", base)
    form = await request.form()
    page = f"/drills/facilities/{facility.code}"
    try:
        body = ScheduleIn(
            facility_code=facility.code,
            kind=form_str(form, "kind", 30),
            title=form_str(form, "title", 200),
            rrule=form_str(form, "rrule", 300),
            anchor_local=form_str(form, "anchor_local", 16),
            partner_agencies=[
                a.strip() for a in form_str(form, "partner_agencies", 500).split(",") if a.strip()
            ],
        )
        await service.create_schedule(db, clock, principal, body)
    except ValidationError as exc:
        return await _refused(db, page, _why(exc))
    except Problem as exc:
        return await _refused(db, page, exc.detail)
    await db.commit()
    return back_to(page, notice="Schedule added.")


@router.post("/drills/schedules/{schedule_id}")
async def schedule_pause(
    request: Request, schedule_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    sid = _int(schedule_id)
    try:
        if sid is None:
            raise Problem("no such schedule", status=404)
        _s, facility = await service.schedule_in_scope(db, principal, sid)
    except Problem:
        return error_page(request, 404, "No such schedule", "There is no such schedule.", base)
    form = await request.form()
    page = f"/drills/facilities/{facility.code}"
    paused = form_str(form, "paused", 5) == "1"
    try:
        await service.set_paused(db, clock, principal, sid, paused)
    except Problem as exc:
        return await _refused(db, page, exc.detail)
    await db.commit()
    notice = "Schedule paused." if paused else "Schedule resumed."
    return back_to(page, notice=notice)


# ---------------------------------------------------------------------------- drill


@router.get("/drills/{drill_id}")
async def drill_page(
    request: Request, drill_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    did = _int(drill_id)
    try:
        if did is None:
            raise Problem("no such drill", status=404)
        drill, facility = await service.drill_in_scope(db, principal, did)
    except Problem:
        return error_page(request, 404, "No such drill", "There is no such drill.", base)
    now = clock.now()
    ctx = {
        **base,
        **_labels(),
        "nav": "drills",
        "drill": drill,
        "facility": facility,
        "uses_lockdown": drill.kind in LOCKDOWN_KINDS,
        "lockdown_active": await service.lockdown_active(db, drill),
        "participants": await service.participants(db, drill.id),
        "report": await service.report_of(db, drill.id),
        "actions": await service.list_actions(
            db, principal.scope(DRILLS_READ), now, drill_id=drill.id
        ),
        "drill_day": service.drill_day(drill, facility.timezone).isoformat(),
        "can_manage": principal.allows(
            DRILLS_MANAGE, facility_id=facility.id, region_id=facility.region_id
        ),
        "notice": clean(request.query_params.get("notice", ""), 300),
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "drills_drill.html", ctx)


def _opt_int(form: Any, name: str) -> int | None:
    text = form_str(form, name, 12)
    if not text:
        return None
    if not text.isdigit():
        raise service.invalid([name], "must be a whole number")
    return int(text)


@router.post("/drills/{drill_id}")
async def drill_action(
    request: Request, drill_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    did = _int(drill_id)
    try:
        if did is None:
            raise Problem("no such drill", status=404)
        await service.drill_in_scope(db, principal, did)
    except Problem:
        return error_page(request, 404, "No such drill", "There is no such drill.", base)
    form = await request.form()
    action = form_str(form, "action", 20)
    page = f"/drills/{did}"
    started: list[int] = []
    try:
        if action == "start":
            _d, started = await service.start_drill(db, clock, principal, did)
            notice = "Drill started."
        elif action == "end":
            timings = None
            if any(form_str(form, k, 12) for k in ("seconds_to_evacuated", "minutes_to_evacuated",
                                                    "safe_count", "no_answer_count")):  # fmt: skip
                minutes = _opt_int(form, "minutes_to_evacuated")
                timings = TimingsIn(
                    seconds_to_evacuated=None if minutes is None else minutes * 60,
                    safe_count=_opt_int(form, "safe_count"),
                    need_help_count=_opt_int(form, "need_help_count"),
                    no_answer_count=_opt_int(form, "no_answer_count"),
                )
            await service.end_drill(
                db,
                clock,
                principal,
                did,
                EndIn(notes=form_str(form, "notes", 5000), timings=timings),
            )
            notice = "Drill ended; timings recorded."
        elif action == "cancel":
            await service.cancel_drill(db, clock, principal, did)
            notice = "Drill cancelled."
        elif action == "capture":
            await service.recapture(db, clock, principal, did)
            notice = "Timings read again from the lockdown and roll call."
        elif action == "participant":
            count = _opt_int(form, "count")
            await service.add_participant(
                db,
                clock,
                principal,
                did,
                ParticipantIn(
                    source="external" if form_str(form, "agency", 200) else "manual",
                    name=form_str(form, "name", 210),
                    agency=form_str(form, "agency", 200),
                    count=count if count is not None else 1,
                ),
            )
            notice = "Participant added."
        elif action == "report":
            await service.save_report(
                db,
                clock,
                principal,
                did,
                ReportIn(
                    worked=form_str(form, "worked", 10_000), gaps=form_str(form, "gaps", 10_000)
                ),
            )
            notice = "After-action report saved."
        elif action == "corrective":
            await service.add_action(
                db,
                clock,
                principal,
                did,
                ActionIn(
                    description=form_str(form, "description", 500),
                    owner=form_str(form, "owner", 160),
                    due_on=form_str(form, "due_on", 10),
                ),
            )
            notice = "Corrective action added."
        else:
            raise Problem("Choose an action.", status=422)
    except ValidationError as exc:
        return await _refused(db, page, _why(exc))
    except IntegrityError:
        return await _refused(db, page, "The facility was locked down a moment ago.")
    except Problem as exc:
        return await _refused(db, page, exc.detail)
    await db.commit()
    if started:
        from watchfloor.drills.api import hand_to_engine

        await hand_to_engine(request, started)
    return back_to(page, notice=notice)
