"""The watch-floor console: live queue, incident page, dead letters, rules, staff panic page.

Pages read through web/console_queries.py and change things only through the domain services
(incidents, alarms, events, panic), then commit. Every page checks role and facility scope with
the Principal; unsafe requests carry the session's CSRF token (auth/deps.optional_principal).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette.sse import EventSourceResponse

from watchfloor.alarms.models import AlarmRule
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.clock import Clock, as_utc
from watchfloor.deps import DB, ClockDep
from watchfloor.events.models import DeadLetter
from watchfloor.incidents.models import Disposition, IncidentStatus
from watchfloor.problems import Problem
from watchfloor.sites.models import Facility
from watchfloor.web import console_queries as cq
from watchfloor.web import live
from watchfloor.web.perms import ALARMS_READ, INCIDENTS_MANAGE, PANIC_RAISE, RULES_WRITE
from watchfloor.web.routes import (
    PagePrincipal,
    clean,
    error_page,
    form_str,
    redirect,
    render,
    safe_next,
    shell,
    templates,
)

router = APIRouter(include_in_schema=False)

EVENTS_READ: Perm = ALARMS_READ  # dead letters are read by whoever watches the alarm queue

templates.env.globals["PRIORITY_WORDS"] = cq.PRIORITY_WORDS
templates.env.globals["STATUS_LABELS"] = cq.STATUS_LABELS


def _iso(value: datetime | None) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else ""


def _ago(now: datetime, value: datetime | None) -> str:
    if value is None:
        return ""
    secs = max(0, int((now - as_utc(value)).total_seconds()))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m {secs % 60:02d}s"
    if secs < 86400:
        return f"{secs // 3600}h {secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d {secs % 86400 // 3600}h"


def _local(value: datetime | None, tz: str, fmt: str = "%H:%M:%S %Z") -> str:
    if value is None:
        return ""
    from watchfloor.web.queries import local_time

    return local_time(as_utc(value), tz).strftime(fmt)


def _seconds_between(a: datetime | None, b: datetime | None) -> str:
    if a is None or b is None:
        return "—"
    secs = int((as_utc(b) - as_utc(a)).total_seconds())
    if secs < 120:
        return f"{secs} s"
    return f"{secs // 60} min {secs % 60} s"


templates.env.globals["iso"] = _iso
templates.env.globals["local_at"] = _local
templates.env.globals["span"] = _seconds_between


async def _health(db: AsyncSession, clock: Clock) -> list[str]:
    """Problems of the background machinery, in words (empty when healthy)."""
    try:
        from watchfloor.incidents.health import system_health

        problems = await system_health(db, clock)
    except Exception:  # the banner must never take the queue down with it
        return []
    out = []
    for p in problems:
        text = getattr(p, "message", None) or getattr(p, "detail", None) or str(p)
        out.append(str(text))
    return out


def _no_queue(request: Request, base: dict[str, Any]) -> HTMLResponse:
    return error_page(
        request,
        403,
        "No alarm queue for you",
        "Your roles do not include watching alarms. If you need to raise an alarm, use the "
        "panic page; for access, ask a Watchfloor administrator.",
        {**base, "panic_link": True},
    )


async def _queue_context(db: AsyncSession, clock: Clock, principal: Principal) -> dict[str, Any]:
    now = clock.now()
    rows = await cq.queue_rows(db, principal.scope(ALARMS_READ))
    return {
        "rows": rows,
        "now": now,
        "ages": {r.id: _ago(now, r.opened_at) for r in rows},
        "local_times": {r.id: _local(now, r.timezone, "%H:%M %Z") for r in rows},
        "can_ack": {
            r.id: principal.allows(
                INCIDENTS_MANAGE, facility_id=r.facility_id, region_id=r.region_id
            )
            for r in rows
        },
        "p1_count": sum(1 for r in rows if r.priority == 1),
        "new_count": sum(1 for r in rows if r.status == IncidentStatus.NEW),
    }


# ---------------------------------------------------------------------------- the queue


@router.get("/watch")
async def watch_page(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    if principal.scope(ALARMS_READ).empty:
        return _no_queue(request, base)
    ctx = {
        **base,
        "nav": "watch",
        **await _queue_context(db, clock, principal),
        "health": await _health(db, clock),
        "now_utc": clock.now().strftime("%H:%M:%S UTC"),
    }
    return render(request, "watch.html", ctx)


@router.get("/watch/rows")
async def watch_rows(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    """The queue's rows and the health banner as an HTML fragment, for the live refresh."""
    if principal.scope(ALARMS_READ).empty:
        return error_page(request, 403, "No alarm queue", "Your roles do not include alarms.")
    ctx = {
        **await _queue_context(db, clock, principal),
        "health": await _health(db, clock),
        "csrf": principal.extra.get("csrf", ""),
    }
    return render(request, "_queue_rows.html", ctx)


@router.get("/watch/stream")
async def watch_stream(request: Request, db: DB, principal: PagePrincipal) -> Response:
    """Server-sent events: alarms and incident changes of the facilities in the caller's scope."""
    scope = principal.scope(ALARMS_READ)
    if scope.empty:
        return error_page(request, 403, "No alarm queue", "Your roles do not include alarms.")
    broadcaster = live.broadcaster_of(request.app)
    if broadcaster is None:
        # the runtime is not running (starting, or a server without the pipeline): say so in the
        # stream and let the browser retry; the page keeps refreshing the queue itself
        return EventSourceResponse(
            live.unavailable(), ping=3600, headers={"Cache-Control": "no-store"}
        )
    audience = await live.audience_for(db, scope)
    await db.close()  # a stream lasts for hours: do not hold a database connection
    client = broadcaster.connect(audience)
    return EventSourceResponse(
        broadcaster.stream(client),
        ping=3600,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# ---------------------------------------------------------------------------- incident page


async def _incident_in_scope(
    request: Request, db: AsyncSession, principal: Principal, incident_id: int, base: dict[str, Any]
) -> cq.IncidentView | Response:
    view = await cq.incident_view(db, incident_id) if 0 < incident_id < 2**62 else None
    if view is None or not principal.allows(
        ALARMS_READ, facility_id=view.facility.id, region_id=view.facility.region_id
    ):
        # out of scope answers exactly like missing: do not confirm that it exists
        return error_page(
            request,
            404,
            "No such incident",
            f"There is no incident {incident_id} among the facilities you watch. "
            "Go back to the alarm queue.",
            base,
        )
    return view


def _metrics(view: cq.IncidentView) -> list[tuple[str, str]]:
    inc = view.incident
    return [
        ("Time to acknowledge", _seconds_between(inc.opened_at, inc.acknowledged_at)),
        ("Time to dispatch", _seconds_between(inc.opened_at, inc.dispatched_at)),
        ("Time to on scene", _seconds_between(inc.opened_at, inc.on_scene_at)),
    ]


@router.get("/incidents/{incident_id}")
async def incident_page(
    request: Request, incident_id: int, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    found = await _incident_in_scope(request, db, principal, incident_id, base)
    if isinstance(found, Response):
        return found
    view = found
    f = view.facility
    ctx = {
        **base,
        "nav": "watch",
        "v": view,
        "inc": view.incident,
        "f": f,
        "tz": f.timezone,
        "metrics": _metrics(view),
        "can_manage": principal.allows(INCIDENTS_MANAGE, facility_id=f.id, region_id=f.region_id),
        "dispositions": [d.value for d in Disposition],
        "closed": view.incident.status == IncidentStatus.CLOSED,
        "age": _ago(clock.now(), view.incident.opened_at),
        "now_dt": clock.now(),
        "health": await _health(db, clock),
        "message": clean(request.query_params.get("done", ""), 200),
    }
    return render(request, "incident.html", ctx)


ACTIONS = {
    "acknowledge",
    "dispatch",
    "en_route",
    "on_scene",
    "contain",
    "close",
    "note",
    "confirm_cancel",
}


async def _perform(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    incident_id: int,
    action: str,
    form: Any,
) -> str:
    """Call the incidents service for one console action; returns words for the operator."""
    from watchfloor.incidents import service as incidents

    incident = await incidents.get_incident(db, incident_id, lock=True)
    if action == "acknowledge":
        await incidents.acknowledge(db, clock, principal, incident)
        return "Acknowledged."
    if action == "dispatch":
        codes = [clean(c, 40) for c in form.getlist("unit") if isinstance(c, str) and c.strip()]
        if not codes:
            raise _FormError("Choose at least one response unit to dispatch.")
        await incidents.dispatch(db, clock, principal, incident, codes)
        return "Dispatched " + ", ".join(codes) + "."
    if action in ("en_route", "on_scene"):
        unit = form_str(form, "unit", 40)
        if not unit:
            raise _FormError("Say which unit.")
        if action == "en_route":
            await incidents.unit_en_route(db, clock, principal, incident, unit)
            return f"{unit} is en route."
        await incidents.unit_on_scene(db, clock, principal, incident, unit)
        return f"{unit} is on scene."
    if action == "contain":
        await incidents.contain(db, clock, principal, incident)
        return "Marked contained."
    if action == "close":
        disposition = form_str(form, "disposition", 20)
        cause = form_str(form, "cause", 1000)
        if disposition not in {d.value for d in Disposition}:
            raise _FormError("Choose a disposition: real, false alarm, drill or test.")
        await incidents.close(db, clock, principal, incident, disposition, cause or None)
        return "Closed."
    if action == "note":
        text = form_str(form, "text", 4000)
        if not text:
            raise _FormError("Write the note first.")
        await incidents.add_note(db, clock, principal, incident, text)
        return "Note added."
    if action == "confirm_cancel":
        await incidents.confirm_cancel(db, clock, principal, incident)
        return "Cancellation confirmed."
    raise _FormError("Unknown action.")


class _FormError(Exception):
    pass


@router.post("/incidents/{incident_id}/action")
async def incident_action(
    request: Request, incident_id: int, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    """One console action on an incident (form post with CSRF). `fetch` callers that send
    `Accept: application/json` get JSON instead of a redirect."""
    form = await request.form()
    action = form_str(form, "action", 40)
    wants_json = "application/json" in request.headers.get("accept", "")
    back = safe_next(form_str(form, "next", 300)) if form_str(form, "next", 300) else ""
    back = back or f"/incidents/{incident_id}"
    base = await shell(request, db, principal)
    found = await _incident_in_scope(request, db, principal, incident_id, base)
    if isinstance(found, Response):
        return _json(404, "No such incident.") if wants_json else found
    f = found.facility
    if not principal.allows(INCIDENTS_MANAGE, facility_id=f.id, region_id=f.region_id):
        msg = "Your roles let you watch this incident but not act on it."
        return _json(403, msg) if wants_json else error_page(request, 403, "Not allowed", msg, base)
    if action not in ACTIONS:
        return _json(422, "Unknown action.") if wants_json else redirect(back)
    try:
        done = await _perform(db, clock, principal, incident_id, action, form)
    except _FormError as exc:
        await db.rollback()
        return _json(422, str(exc)) if wants_json else _back(back, str(exc))
    except Problem as exc:
        await db.rollback()
        return _json(exc.status, exc.detail) if wants_json else _back(back, exc.detail)
    await db.commit()
    _kick(request)
    if wants_json:
        return _json(200, done)
    return _back(back, done)


def _back(url: str, message: str) -> Response:
    sep = "&" if "?" in url else "?"
    return redirect(url + sep + urlencode({"done": message}))


def _json(status: int, message: str) -> Response:
    return Response(
        json.dumps({"status": status, "message": message}),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _kick(request: Request) -> None:
    """Wake the outbox relay so the change reaches every console at once."""
    runtime = getattr(request.app.state, "runtime", None)
    relay = getattr(runtime, "relay", None)
    kick = getattr(relay, "kick", None)
    if callable(kick):
        kick()


# ---------------------------------------------------------------------------- dead letters


@router.get("/dead-letters")
async def dead_letters_page(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(EVENTS_READ)
    if scope.empty:
        return _no_queue(request, base)
    show_resolved = request.query_params.get("resolved") == "1"
    from watchfloor.events import service as events_service

    letters, total = await events_service.list_dead_letters(
        db, scope, resolved=None if show_resolved else False, limit=200
    )
    ctx = {
        **base,
        "nav": "dead",
        "letters": letters,
        "total": total,
        "show_resolved": show_resolved,
        "can_resolve": principal.has_perm_anywhere(INCIDENTS_MANAGE),
        "message": clean(request.query_params.get("done", ""), 200),
        "pretty": _pretty,
    }
    return render(request, "dead_letters.html", ctx)


def _pretty(raw: str) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)[:20000]
    except (ValueError, TypeError, RecursionError):
        return raw[:20000]


@router.post("/dead-letters/{dead_letter_id}/resolve")
async def dead_letter_resolve(
    request: Request, dead_letter_id: int, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    letter = await db.get(DeadLetter, dead_letter_id) if 0 < dead_letter_id < 2**62 else None
    region_id = None
    if letter is not None and letter.facility_id is not None:
        fac = await db.get(Facility, letter.facility_id)
        region_id = fac.region_id if fac else None
    visible = letter is not None and (
        principal.allows(EVENTS_READ, facility_id=letter.facility_id, region_id=region_id)
        if letter.facility_id is not None
        else principal.allows_org(EVENTS_READ)
    )
    if letter is None or not visible:
        return error_page(request, 404, "No such dead letter", "It may have been purged.", base)
    allowed = (
        principal.allows(INCIDENTS_MANAGE, facility_id=letter.facility_id, region_id=region_id)
        if letter.facility_id is not None
        else principal.allows_org(INCIDENTS_MANAGE)
    )
    if not allowed:
        return error_page(
            request, 403, "Not allowed", "Your roles do not allow resolving dead letters.", base
        )
    from watchfloor.events import service as events_service

    try:
        await events_service.resolve_dead_letter(db, clock, principal, letter)
    except Problem as exc:
        await db.rollback()
        return _back("/dead-letters", exc.detail)
    await db.commit()
    return _back("/dead-letters", f"Dead letter {dead_letter_id} marked resolved.")


# ---------------------------------------------------------------------------- rules


@router.get("/rules")
async def rules_page(request: Request, db: DB, principal: PagePrincipal) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(ALARMS_READ)
    if scope.empty:
        return _no_queue(request, base)
    rows = await cq.effective_rules(db, scope, None)
    ctx = {
        **base,
        "nav": "rules",
        "rules": [
            {
                "rule": rule,
                "facility": code,
                "conditions": json.dumps(rule.conditions or {}, sort_keys=True),
                "editable": _can_edit_rule(principal, rule),
            }
            for rule, code in rows
        ],
        "message": clean(request.query_params.get("done", ""), 300),
    }
    return render(request, "rules.html", ctx)


def _can_edit_rule(principal: Principal, rule: AlarmRule) -> bool:
    if rule.facility_id is None:
        return principal.allows_org(RULES_WRITE)
    return principal.allows(RULES_WRITE, facility_id=rule.facility_id, region_id=None) or (
        principal.scope(RULES_WRITE).everything
    )


@router.post("/rules/{rule_id}")
async def rule_update(
    request: Request, rule_id: int, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    rule = await db.get(AlarmRule, rule_id) if 0 < rule_id < 2**31 else None
    if rule is None:
        return error_page(request, 404, "No such rule", "Go back to the rules list.", base)
    region_id = None
    if rule.facility_id is not None:
        fac = await db.get(Facility, rule.facility_id)
        region_id = fac.region_id if fac else None
        if not principal.allows(ALARMS_READ, facility_id=rule.facility_id, region_id=region_id):
            return error_page(request, 404, "No such rule", "Go back to the rules list.", base)
    allowed = (
        principal.allows(RULES_WRITE, facility_id=rule.facility_id, region_id=region_id)
        if rule.facility_id is not None
        else principal.allows_org(RULES_WRITE)
    )
    if not allowed:
        return error_page(
            request, 403, "Not allowed", "Your roles do not allow editing this rule.", base
        )
    form = await request.form()
    changes: dict[str, Any] = {}
    try:
        priority = int(form_str(form, "priority", 2) or "0")
    except ValueError:
        priority = 0
    if priority not in (1, 2, 3, 4):
        return _back("/rules", "Priority must be 1, 2, 3 or 4.")
    changes["priority"] = priority
    changes["enabled"] = form_str(form, "enabled", 5) == "on"
    raw = form_str(form, "conditions", 4000) or "{}"
    try:
        conditions = json.loads(raw)
    except ValueError:
        return _back("/rules", 'Conditions must be JSON, for example {"schedule": "always"}.')
    if not isinstance(conditions, dict):
        return _back("/rules", "Conditions must be a JSON object.")
    changes["conditions"] = conditions
    from pydantic import ValidationError

    from watchfloor.alarms import service as alarms_service
    from watchfloor.alarms.schemas import RuleUpdate

    try:
        data = RuleUpdate.model_validate(changes)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
        )
        return _back("/rules", f"Not saved: {problems}"[:300])
    try:
        await alarms_service.update_rule(db, clock, principal, rule, data)
    except Problem as exc:
        await db.rollback()
        return _back("/rules", f"Not saved: {exc.detail}")
    await db.commit()
    return _back("/rules", f"Rule {rule.key} saved.")


# ---------------------------------------------------------------------------- staff panic


@router.get("/panic")
async def panic_page(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(PANIC_RAISE):
        return error_page(request, 403, "Not available", "Your account cannot raise alarms.", base)
    press_id = request.query_params.get("sent", "")
    ctx: dict[str, Any] = {**base, "nav": "panic", "sent": None}
    if press_id.isdigit() and len(press_id) < 18:
        from watchfloor.panic.models import PanicPress

        press = await db.get(PanicPress, int(press_id))
        if press is not None and press.user_id == principal.id and principal.kind == "user":
            left = int((as_utc(press.cancel_until) - clock.now()).total_seconds())
            ctx["sent"] = {"id": press.id, "seconds_left": max(0, left)}
    ctx["outcome"] = clean(request.query_params.get("outcome", ""), 40)
    ctx["error"] = clean(request.query_params.get("error", ""), 200)
    return render(request, "panic.html", ctx)


@router.post("/panic")
async def panic_raise(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(PANIC_RAISE) or principal.kind != "user":
        return error_page(request, 403, "Not available", "Your account cannot raise alarms.", base)
    from watchfloor.panic import service as panic_service

    runtime = getattr(request.app.state, "runtime", None)
    try:
        press = await panic_service.raise_panic(db, clock, principal, runtime=runtime)
    except Problem as exc:
        await db.rollback()
        return redirect("/panic?" + urlencode({"error": exc.detail}))
    await db.commit()
    _kick(request)
    return redirect(f"/panic?sent={press.id}")


@router.post("/panic/{press_id}/cancel")
async def panic_cancel(
    request: Request, press_id: int, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    from watchfloor.panic import service as panic_service
    from watchfloor.panic.models import PanicPress

    press = await db.get(PanicPress, press_id) if 0 < press_id < 2**62 else None
    if press is None or principal.kind != "user" or press.user_id != principal.id:
        base = await shell(request, db, principal)
        return error_page(request, 404, "No such alarm", "There is no alarm of yours here.", base)
    form = await request.form()
    code = "".join(form_str(form, "code", 20).split())

    runtime = getattr(request.app.state, "runtime", None)
    try:
        await panic_service.cancel_press(db, clock, principal, press_id, code, runtime=runtime)
    except Problem as exc:
        await db.commit()  # failed attempts count
        return redirect(f"/panic?sent={press_id}&" + urlencode({"error": exc.detail}))
    await db.commit()
    _kick(request)
    # identical for a cancel code and a duress code: the sender's screen must not tell
    return redirect("/panic?outcome=cancelled")


@router.get("/panic/codes")
async def panic_codes_page(request: Request, db: DB, principal: PagePrincipal) -> Response:
    base = await shell(request, db, principal)
    if principal.kind != "user" or not principal.has_perm_anywhere(PANIC_RAISE):
        return error_page(request, 403, "Not available", "Your account cannot raise alarms.", base)
    ctx = {
        **base,
        "nav": "panic",
        "error": clean(request.query_params.get("error", ""), 200),
        "saved": request.query_params.get("saved") == "1",
    }
    return render(request, "panic_codes.html", ctx)


@router.post("/panic/codes")
async def panic_codes_save(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    if principal.kind != "user" or not principal.has_perm_anywhere(PANIC_RAISE):
        return error_page(request, 403, "Not available", "Your account cannot raise alarms.", base)
    form = await request.form()
    cancel = form_str(form, "cancel_code", 20)
    duress = form_str(form, "duress_code", 20)
    from watchfloor.panic import service as panic_service

    try:
        await panic_service.set_codes(db, clock, principal, cancel, duress)
    except (Problem, ValueError) as exc:
        await db.rollback()
        detail = exc.detail if isinstance(exc, Problem) else str(exc)[:200]
        return redirect("/panic/codes?" + urlencode({"error": detail}))
    await db.commit()
    return redirect("/panic/codes?saved=1")


# ---------------------------------------------------------------------------- helpers for tests


async def facility_id_of(db: AsyncSession, code: str) -> int | None:
    return (await db.execute(select(Facility.id).where(Facility.code == code))).scalar_one_or_none()
