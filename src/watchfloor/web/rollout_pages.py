"""Console pages of the rollout domain and the preparedness scorecard.

- `/rollout`: the board — totals, by region, by measure, by facility (late first), filters, the
  burn-down chart (`/rollout/burndown.svg`, drawn by reportlab.graphics), PDF and CSV links;
- `/rollout/facilities/{code}`: one facility's tasks, late first, with move / waiver buttons;
- `/rollout/tasks/{id}`: a task, its history, and the confirmation form of an action;
- `/rollout/directives/new`: issue a directive (measures, facilities, issue date) with a preview
  of the counts before anything is written (programme managers, admins);
- `/scorecard`: organisation → region roll-up with the preparedness chart
  (`/scorecard/chart.svg`); `/scorecard/facilities/{code}`: every component with its reasons and
  links.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from watchfloor.auth.principal import Principal
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import Problem
from watchfloor.rollout import reports, scorecard, service
from watchfloor.rollout.deadlines import (
    DEADLINE_LABELS,
    STATE_LABELS,
    STATUS_LABELS,
    STATUS_ORDER,
    local_display,
    status_of,
)
from watchfloor.rollout.schemas import DirectiveIn, FacilitySelection
from watchfloor.sites.models import Facility, Region
from watchfloor.web.perms import DIRECTIVES_MANAGE, PROGRAMME_READ, ROLLOUT_UPDATE
from watchfloor.web.routes import (
    SECURITY_HEADERS,
    PagePrincipal,
    clean,
    error_page,
    form_str,
    redirect,
    render,
    shell,
)

router = APIRouter(include_in_schema=False)

ACTIONS = {
    "in_progress": "Mark in progress",
    "done": "Mark done",
    "planned": "Back to planned",
    "waiver": "Ask for a waiver",
    "approve": "Approve the waiver",
    "refuse": "Refuse the waiver",
}


def _ctx_labels() -> dict[str, Any]:
    return {
        "STATUS_LABELS": STATUS_LABELS,
        "STATUS_ORDER": [s.value for s in STATUS_ORDER],
        "STATE_LABELS": STATE_LABELS,
        "DEADLINE_LABELS": DEADLINE_LABELS,
        "SC_STATUS": scorecard.STATUS_LABELS,
        "SC_PRIORITY": scorecard.PRIORITY_LABELS,
    }


def _soon(settings: Any) -> timedelta:
    return service.due_soon_delta(settings.rollout_due_soon_days)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 and int(value) > 0 else None


def _filter(request: Request) -> service.TaskFilter:
    q = request.query_params
    return service.TaskFilter(
        directive_id=_int(q.get("directive")),
        region_code=clean(q.get("region", ""), 40) or None,
        measure_code=clean(q.get("measure", ""), 40) or None,
    )


def _denied(request: Request, base: dict[str, Any], what: str) -> Response:
    return error_page(request, 403, "Not allowed", f"Your roles do not include {what}.", base)


# ---------------------------------------------------------------------------- board


@router.get("/rollout")
async def rollout_board(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(PROGRAMME_READ)
    if scope.empty:
        return _denied(request, base, "the rollout board")
    f = _filter(request)
    now = clock.now()
    board = await service.board(db, scope, now, _soon(settings), f, facility_limit=50)
    directives = await service.directives(db, scope)
    measures = await service.catalogue(db)
    query = urlencode(
        {
            k: v
            for k, v in (
                ("directive", f.directive_id or ""),
                ("region", f.region_code or ""),
                ("measure", f.measure_code or ""),
            )
            if v
        }
    )
    ctx = {
        **base,
        **_ctx_labels(),
        "nav": "rollout",
        "board": board,
        "f": f,
        "query": query,
        "directives": directives,
        "measures": measures,
        "regions": [(code, name) for code, name, _c in board.by_region],
        "can_issue": principal.has_perm_anywhere(DIRECTIVES_MANAGE),
        "now": now,
        "notice": clean(request.query_params.get("notice", ""), 300),
    }
    return render(request, "rollout_board.html", ctx)


@router.get("/rollout/burndown.svg")
async def rollout_burndown(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    scope = principal.scope(PROGRAMME_READ)
    if scope.empty:
        return Response(status_code=403)
    b = await service.board(
        db, scope, clock.now(), _soon(settings), _filter(request), facility_limit=1
    )
    return Response(
        reports.burndown_svg(b),
        media_type="image/svg+xml",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


@router.get("/scorecard/chart.svg")
async def scorecard_chart(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    """Facilities per status for each component of the roll-up in the caller's scope."""
    scope = principal.scope(PROGRAMME_READ)
    if scope.empty:
        return Response(status_code=403)
    r = await scorecard.rollup(db, scope, clock.now(), _soon(settings))
    return Response(
        reports.scorecard_svg(r),
        media_type="image/svg+xml",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------------------- facility and task


async def _facility(db: Any, principal: Principal, code: str) -> Facility | None:
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    facility = (
        await db.execute(
            select(Facility).options(joinedload(Facility.region)).where(Facility.code == code[:40])
        )
    ).scalar_one_or_none()
    if facility is None or not principal.allows(
        PROGRAMME_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        return None
    return facility


@router.get("/rollout/facilities/{facility_code}")
async def rollout_facility(
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
    now, soon = clock.now(), _soon(settings)
    scope = principal.scope(PROGRAMME_READ)
    rows, total = await service.list_tasks(
        db, scope, service.TaskFilter(facility_code=facility.code), now, soon, limit=1000
    )
    tasks = [
        {
            "task": t,
            "measure": m,
            "status": status_of(t.state, t.due_at, now, soon).value,
            "due_local": local_display(t.due_at, facility.timezone),
        }
        for t, _f, _r, m in rows
    ]
    ctx = {
        **base,
        **_ctx_labels(),
        "nav": "rollout",
        "facility": facility,
        "tasks": tasks,
        "total": total,
        "can_update": principal.allows(
            ROLLOUT_UPDATE, facility_id=facility.id, region_id=facility.region_id
        ),
        "notice": clean(request.query_params.get("notice", ""), 300),
    }
    return render(request, "rollout_facility.html", ctx)


@router.get("/rollout/tasks/{task_id}")
async def rollout_task(
    request: Request,
    task_id: str,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: PagePrincipal,
) -> Response:
    base = await shell(request, db, principal)
    tid = _int(task_id)
    try:
        if tid is None:
            raise Problem("no such task", status=404)
        task, facility, region, measure = await service.get_task(db, principal, tid)
    except Problem:
        return error_page(request, 404, "No such task", "There is no such rollout task.", base)
    now, soon = clock.now(), _soon(settings)
    action = clean(request.query_params.get("action", ""), 20)
    ctx = {
        **base,
        **_ctx_labels(),
        "nav": "rollout",
        "task": task,
        "facility": facility,
        "region": region,
        "measure": measure,
        "status": status_of(task.state, task.due_at, now, soon).value,
        "due_local": local_display(task.due_at, facility.timezone),
        "history": await service.task_history(db, task.id),
        "action": action if action in ACTIONS else "",
        "ACTIONS": ACTIONS,
        "can_update": principal.allows(
            ROLLOUT_UPDATE, facility_id=facility.id, region_id=facility.region_id
        ),
        "can_decide": principal.allows(
            DIRECTIVES_MANAGE, facility_id=facility.id, region_id=facility.region_id
        ),
        "me": principal.label,
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "rollout_task.html", ctx)


@router.post("/rollout/tasks/{task_id}")
async def rollout_task_action(
    request: Request, task_id: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    tid = _int(task_id)
    base = await shell(request, db, principal)
    if tid is None:
        return error_page(request, 404, "No such task", "There is no such rollout task.", base)
    action = form_str(form, "action", 20)
    note = form_str(form, "note", 500)
    version = _int(form_str(form, "version", 12) or None)
    try:
        _t, facility, _r, _m = await service.get_task(db, principal, tid)
        if action in ("in_progress", "done", "planned"):
            await service.move_task(
                db, clock, principal, tid, action, note=note,
                version=(version - 1) if version else None,
            )  # fmt: skip
        elif action == "waiver":
            await service.request_waiver(db, clock, principal, tid, note)
        elif action in ("approve", "refuse"):
            await service.decide_waiver(
                db, clock, principal, tid, approve=action == "approve", note=note
            )
        else:
            raise Problem("Choose an action.", status=422)
    except Problem as exc:
        await db.rollback()
        if exc.status == 404:
            return error_page(request, 404, "No such task", "There is no such rollout task.", base)
        return redirect(
            f"/rollout/tasks/{tid}?" + urlencode({"action": action, "error": exc.detail})
        )
    await db.commit()
    done = f"{ACTIONS.get(action, action)}: done."
    return redirect(f"/rollout/facilities/{facility.code}?" + urlencode({"notice": done}))


# ---------------------------------------------------------------------------- directives


async def _directive_form_ctx(db: Any, principal: Principal) -> dict[str, Any]:
    from sqlalchemy import select

    from watchfloor.sites.service import scope_filter

    scope = principal.scope(DIRECTIVES_MANAGE)
    regions = (
        await db.execute(
            select(Region.code, Region.name)
            .join(Facility, Facility.region_id == Region.id)
            .where(scope_filter(scope))
            .group_by(Region.code, Region.name)
            .order_by(Region.code)
        )
    ).all()
    return {
        "measures": await service.catalogue(db),
        "regions": regions,
        "org_wide": scope.everything,
    }


@router.get("/rollout/directives/new")
async def directive_form(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(DIRECTIVES_MANAGE):
        return _denied(request, base, "issuing directives")
    ctx = {
        **base,
        **_ctx_labels(),
        **await _directive_form_ctx(db, principal),
        "nav": "rollout",
        "form": {
            "title": "",
            "kind": "all",
            "chosen": None,
            "issued": clock.now().strftime("%Y-%m-%dT%H:%M"),
        },
        "preview": None,
        "error": "",
    }
    return render(request, "rollout_directive.html", ctx)


@router.post("/rollout/directives")
async def directive_submit(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(DIRECTIVES_MANAGE):
        return _denied(request, base, "issuing directives")
    form = await request.form()
    chosen = [clean(v, 40) for v in form.getlist("measures") if isinstance(v, str)]
    kind = form_str(form, "kind", 10)
    regions = [clean(v, 40) for v in form.getlist("regions") if isinstance(v, str)]
    listed = [c for c in form_str(form, "facilities", 200_000).replace(",", " ").split() if c]
    issued_text = form_str(form, "issued_at", 30)
    values = {
        "title": form_str(form, "title", 200),
        "kind": kind,
        "chosen": chosen,
        "regions": regions,
        "facilities": " ".join(listed),
        "issued": issued_text,
    }
    ctx = {
        **base,
        **_ctx_labels(),
        **await _directive_form_ctx(db, principal),
        "nav": "rollout",
        "form": values,
        "preview": None,
        "error": "",
    }
    try:
        issued = datetime.fromisoformat(issued_text).replace(tzinfo=UTC) if issued_text else None
        spec = DirectiveIn(
            title=values["title"] or " ",
            issued_at=issued,
            measures=chosen or None,
            selection=FacilitySelection(
                kind=kind if kind in ("all", "region", "list") else "list",
                regions=regions,
                facilities=listed,
            ),
        )
        if form_str(form, "step", 10) != "issue":
            plan = await service.plan_directive(
                db, clock, principal, spec, max_tasks=settings.rollout_max_directive_tasks
            )
            ctx["preview"] = {
                "facilities": len(plan.facilities),
                "measures": len(plan.measures),
                "tasks": plan.task_count,
                "last_due": plan.last_due(),
            }
            return render(request, "rollout_directive.html", ctx)
        directive = await service.issue_directive(
            db, clock, principal, spec, max_tasks=settings.rollout_max_directive_tasks
        )
    except ValueError as exc:  # pydantic ValidationError and a bad date
        await db.rollback()
        ctx.update(await _directive_form_ctx(db, principal))
        ctx["error"] = "Check the form: " + str(exc).splitlines()[0][:300]
        return render(request, "rollout_directive.html", ctx, status_code=422)
    except Problem as exc:
        await db.rollback()
        ctx.update(await _directive_form_ctx(db, principal))
        ctx["error"] = exc.detail
        return render(request, "rollout_directive.html", ctx, status_code=exc.status)
    await db.commit()
    notice = (
        f"Directive issued: {directive.task_count} tasks at {directive.facility_count} facilities."
    )
    return redirect(f"/rollout?directive={directive.id}&" + urlencode({"notice": notice}))


# ---------------------------------------------------------------------------- scorecard


@router.get("/scorecard")
async def scorecard_page(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(PROGRAMME_READ)
    if scope.empty:
        return _denied(request, base, "the preparedness scorecard")
    r = await scorecard.rollup(db, scope, clock.now(), _soon(settings))
    region = clean(request.query_params.get("region", ""), 40)
    facilities: list[Any] = []
    if region:
        from sqlalchemy import select

        from watchfloor.sites.service import scope_filter

        facilities = list(
            (
                await db.execute(
                    select(Facility.code, Facility.name)
                    .join(Region, Region.id == Facility.region_id)
                    .where(scope_filter(scope), Region.code == region)
                    .order_by(Facility.code)
                    .limit(1000)
                )
            ).all()
        )
    ctx = {
        **base,
        **_ctx_labels(),
        "nav": "scorecard",
        "rollup": r,
        "components": scorecard.COMPONENTS,
        "labels": scorecard.COMPONENT_LABELS,
        "short": scorecard.SHORT_LABELS,
        "priority": scorecard.rollup_priority,
        "region": region,
        "facilities": facilities,
        "org_wide": scope.everything,
    }
    return render(request, "scorecard.html", ctx)


@router.get("/scorecard/facilities/{facility_code}")
async def scorecard_facility(
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
    comps = await scorecard.facility_scorecard(db, facility, clock.now(), _soon(settings))
    ctx = {
        **base,
        **_ctx_labels(),
        "nav": "scorecard",
        "facility": facility,
        "components": comps,
    }
    return render(request, "scorecard_facility.html", ctx)
