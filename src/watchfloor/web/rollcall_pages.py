"""Console pages of roll calls, and the public answer page people reach from their link.

- `/roll-calls`: every roll call in scope (open first) and, for `rollcall:manage` holders, a form
  to start one;
- `/roll-calls/{id}`: the board: big tally (need help first, in red), the people who need help
  with their last known zone, then no answer, then safe; an operator marks a person safe / needs
  help with the keyboard; fills live from `/roll-calls/{id}/stream` (SSE); export buttons;
  EXERCISE banner for drills;
- `/r/{token}`: the public answer page (no log-in): two huge buttons, nothing else about anyone.
"""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sse_starlette.sse import EventSourceResponse

from watchfloor.auth.principal import Principal
from watchfloor.clock import as_utc
from watchfloor.db import urgent_writes
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import Problem
from watchfloor.rollcall import service
from watchfloor.rollcall.models import Answer, Channel, RollCall
from watchfloor.sites import service as sites_service
from watchfloor.sites.models import Facility
from watchfloor.web import live
from watchfloor.web.perms import ROLLCALL_MANAGE, ROLLCALL_READ
from watchfloor.web.routes import (
    SECURITY_HEADERS,
    PagePrincipal,
    error_page,
    form_str,
    redirect,
    render,
    shell,
    templates,
)

router = APIRouter(include_in_schema=False)

ANSWER_LABELS = {"safe": "Safe", "need_help": "Needs help", "no_answer": "No answer"}
CHANNEL_LABELS = {"link": "link", "sms": "SMS", "console": "operator"}
templates.env.globals["ROLLCALL_ANSWER_LABELS"] = ANSWER_LABELS
templates.env.globals["ROLLCALL_CHANNEL_LABELS"] = CHANNEL_LABELS


def _kick(request: Request) -> None:
    runtime = getattr(request.app.state, "runtime", None)
    fn = getattr(runtime, "kick", None)
    if callable(fn):
        fn()


def _json(status: int, message: str, **extra: Any) -> Response:
    return Response(
        json.dumps({"status": status, "message": message, **extra}),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _parse_id(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < len(value) < 19 else None


async def _in_scope(
    db: Any, principal: Principal, roll_call_id: int
) -> tuple[RollCall, Facility] | None:
    roll_call = await db.get(RollCall, roll_call_id)
    if roll_call is None:
        return None
    facility = await db.get(Facility, roll_call.facility_id)
    if facility is None or not principal.allows(
        ROLLCALL_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        return None
    return roll_call, facility


def _not_found(request: Request, base: dict[str, Any]) -> HTMLResponse:
    return error_page(request, 404, "No such roll call", "There is no such roll call.", base)


# ---------------------------------------------------------------------------- list


@router.get("/roll-calls")
async def roll_calls_page(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(ROLLCALL_READ)
    if scope.empty:
        return error_page(
            request, 403, "No roll calls", "Your roles do not include roll calls.", base
        )
    rows, total = await service.list_roll_calls(db, scope, limit=200)
    from watchfloor.rollcall.api import tallies

    counts = await tallies(db, [r.id for r in rows])
    facilities = {
        f.id: f
        for f in (
            await db.scalars(select(Facility).where(Facility.id.in_({r.facility_id for r in rows})))
        ).all()
    }
    manage_scope = principal.scope(ROLLCALL_MANAGE)
    startable: list[Facility] = []
    if not manage_scope.empty:
        startable = list(
            (
                await db.scalars(
                    sites_service.facility_query(manage_scope).order_by(Facility.name).limit(2000)
                )
            ).all()
        )
    ctx = {
        **base,
        "nav": "rollcall",
        "items": [(r, facilities.get(r.facility_id), counts[r.id]) for r in rows],
        "total": total,
        "startable": startable,
        "error": request.query_params.get("error", "")[:300],
    }
    return render(request, "rollcall_list.html", ctx)


@router.post("/roll-calls")
async def roll_call_start(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    code = form_str(form, "facility_code", 40)
    reason = form_str(form, "reason", 300)
    exercise = form_str(form, "exercise", 10) in ("1", "on", "true", "yes")
    base = await shell(request, db, principal)
    if principal.scope(ROLLCALL_MANAGE).empty:
        return error_page(
            request, 403, "Not allowed", "Your roles do not let you start a roll call.", base
        )
    try:
        facility = await sites_service.get_facility(db, code)
        principal.require(ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id)
        roll_call = await service.start(
            db,
            clock,
            principal,
            facility,
            secret_key=request.app.state.secret_key,
            public_url=settings.public_url,
            reason=reason,
            exercise=exercise,
            trigger="operator",
        )
    except Problem as exc:
        await db.rollback()
        return redirect("/roll-calls?" + urlencode({"error": exc.detail}))
    await db.commit()
    _kick(request)
    return redirect(f"/roll-calls/{roll_call.id}")


# ---------------------------------------------------------------------------- board


async def _board_context(db: Any, roll_call: RollCall, facility: Facility) -> dict[str, Any]:
    counts = await service.tally(db, roll_call.id)
    rows = await service.entries(db, roll_call.id)
    return {
        "rc": roll_call,
        "facility": facility,
        "tally": counts,
        "need_help": [e for e in rows if e.answer == Answer.NEED_HELP],
        "no_answer": [e for e in rows if e.answer == Answer.NO_ANSWER],
        "safe": [e for e in rows if e.answer == Answer.SAFE],
    }


@router.get("/roll-calls/{roll_call_id}")
async def roll_call_board(
    request: Request, roll_call_id: int, db: DB, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    found = await _in_scope(db, principal, roll_call_id)
    if found is None:
        return _not_found(request, base)
    roll_call, facility = found
    ctx = {
        **base,
        "nav": "rollcall",
        **await _board_context(db, roll_call, facility),
        "can_manage": principal.allows(
            ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id
        )
        and roll_call.state == "open",
        "done": request.query_params.get("done", "")[:200],
    }
    return render(request, "rollcall_board.html", ctx)


@router.get("/roll-calls/{roll_call_id}/rows")
async def roll_call_rows(
    request: Request, roll_call_id: int, db: DB, principal: PagePrincipal
) -> Response:
    """The board's tally and lists as an HTML fragment, for the live refresh."""
    found = await _in_scope(db, principal, roll_call_id)
    if found is None:
        return error_page(request, 404, "No such roll call", "There is no such roll call.")
    roll_call, facility = found
    ctx = {
        **await _board_context(db, roll_call, facility),
        "csrf": principal.extra.get("csrf", ""),
        "can_manage": principal.allows(
            ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id
        )
        and roll_call.state == "open",
    }
    return render(request, "rollcall_rows.html", ctx)


@router.get("/roll-calls/{roll_call_id}/stream")
async def roll_call_stream(
    request: Request, roll_call_id: int, db: DB, principal: PagePrincipal
) -> Response:
    """Server-sent events: `rollcall` events (tally and the changed entry) of the facilities in
    the caller's scope; the board keeps those of its own roll call."""
    found = await _in_scope(db, principal, roll_call_id)
    if found is None:
        return error_page(request, 404, "No such roll call", "There is no such roll call.")
    runtime = getattr(request.app.state, "runtime", None)
    broadcaster = getattr(runtime, "rollcall_broadcaster", None)
    if not isinstance(broadcaster, live.Broadcaster):
        return EventSourceResponse(
            live.unavailable(), ping=3600, headers={"Cache-Control": "no-store"}
        )
    _rc, facility = found
    audience = live.Audience(
        everything=False,
        facility_ids=frozenset({facility.id}),
        tokens=frozenset(),
    )
    await db.close()  # a stream lasts for hours: do not hold a database connection
    client = broadcaster.connect(audience)
    return EventSourceResponse(
        broadcaster.stream(client),
        ping=3600,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/roll-calls/{roll_call_id}/entries/{entry_id}/answer")
async def roll_call_answer(
    request: Request,
    roll_call_id: int,
    entry_id: int,
    db: DB,
    clock: ClockDep,
    principal: PagePrincipal,
) -> Response:
    """An operator marks a person safe / needs help (form post with CSRF; `fetch` callers with
    `Accept: application/json` get JSON)."""
    form = await request.form()
    wants_json = "application/json" in request.headers.get("accept", "")
    back = f"/roll-calls/{roll_call_id}"
    found = await _in_scope(db, principal, roll_call_id)
    if found is None:
        if wants_json:
            return _json(404, "No such roll call.")
        return _not_found(request, await shell(request, db, principal))
    roll_call, facility = found
    if not principal.allows(ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id):
        msg = "Your roles let you watch this roll call but not answer for people."
        if wants_json:
            return _json(403, msg)
        return error_page(request, 403, "Not allowed", msg, await shell(request, db, principal))
    value = form_str(form, "answer", 20)
    if value not in (Answer.SAFE, Answer.NEED_HELP):
        return _json(422, "Say 'safe' or 'need_help'.") if wants_json else redirect(back)
    note = form_str(form, "note", 500)
    answer = Answer(value)
    try:
        entry = await service.get_entry(db, roll_call, entry_id)
        with urgent_writes() if answer == Answer.NEED_HELP else contextlib.nullcontext():
            result = await service.record_answer(
                db,
                clock,
                roll_call,
                entry,
                answer,
                Channel.CONSOLE,
                actor=principal,
                operator=True,
                note=note,
            )
            await db.commit()
    except Problem as exc:
        await db.rollback()
        if wants_json:
            return _json(exc.status, exc.detail)
        return redirect(back + "?" + urlencode({"done": exc.detail}))
    _kick(request)
    done = f"{result.entry.name}: {ANSWER_LABELS[answer]}."
    if wants_json:
        return _json(200, done, tally=result.tally.as_dict())
    return redirect(back + "?" + urlencode({"done": done}))


@router.post("/roll-calls/{roll_call_id}/close")
async def roll_call_close(
    request: Request, roll_call_id: int, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    found = await _in_scope(db, principal, roll_call_id)
    if found is None:
        return _not_found(request, base)
    roll_call, facility = found
    if not principal.allows(ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id):
        return error_page(
            request, 403, "Not allowed", "Your roles do not let you close this roll call.", base
        )
    try:
        await service.close(db, clock, principal, roll_call)
    except Problem as exc:
        await db.rollback()
        return redirect(f"/roll-calls/{roll_call_id}?" + urlencode({"done": exc.detail}))
    await db.commit()
    _kick(request)
    return redirect(f"/roll-calls/{roll_call_id}?" + urlencode({"done": "Roll call closed."}))


# ---------------------------------------------------------------------------- public answer page


def _public(request: Request, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, "rollcall_answer.html", context, status_code=status_code
    )
    response.headers.update(SECURITY_HEADERS)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


LINK_PAGES = {
    "expired": (
        410,
        "This link has expired",
        "Answer by replying SAFE or HELP to the text message, or call your security desk.",
    ),
    "invalid": (
        404,
        "This link is not valid",
        "Use the link from your own message, or call your security desk.",
    ),
    "closed": (
        410,
        "This roll call is closed",
        "Answers are no longer collected. If you need help, call the emergency number.",
    ),
}


def _link_problem(request: Request, exc: service.LinkProblem) -> HTMLResponse:
    status, title, hint = LINK_PAGES[exc.reason]
    return _public(request, {"state": "problem", "title": title, "hint": hint}, status)


@router.get("/r/{token}")
async def answer_page(
    request: Request, token: str, db: DB, clock: ClockDep, settings: SettingsDep
) -> Response:
    """The one-tap answer page: "Are you safe?" and two huge buttons. Shows nothing else."""
    try:
        roll_call, entry = await service.entry_for_token(
            db,
            request.app.state.secret_key,
            token,
            timedelta(hours=settings.rollcall_link_hours),
            clock.now(),
        )
    except service.LinkProblem as exc:
        return _link_problem(request, exc)
    return _public(
        request,
        {
            "state": "ask",
            "exercise": roll_call.exercise,
            "current": entry.answer,
            "action": f"/r/{token}",
        },
    )


@router.post("/r/{token}")
async def answer_submit(
    request: Request, token: str, db: DB, clock: ClockDep, settings: SettingsDep
) -> Response:
    form = await request.form()
    value = form_str(form, "answer", 20)
    try:
        roll_call, entry = await service.entry_for_token(
            db,
            request.app.state.secret_key,
            token,
            timedelta(hours=settings.rollcall_link_hours),
            clock.now(),
        )
    except service.LinkProblem as exc:
        return _link_problem(request, exc)
    if value not in (Answer.SAFE, Answer.NEED_HELP):
        return _public(
            request,
            {
                "state": "ask",
                "exercise": roll_call.exercise,
                "current": entry.answer,
                "action": f"/r/{token}",
                "error": "Press one of the two buttons.",
            },
            422,
        )
    answer = Answer(value)
    try:
        with urgent_writes() if answer == Answer.NEED_HELP else contextlib.nullcontext():
            await service.record_answer(
                db,
                clock,
                roll_call,
                entry,
                answer,
                Channel.LINK,
                actor=f"link:{entry.employee_id or entry.id}",
            )
            await db.commit()
    except Problem:
        await db.rollback()
        return _link_problem(request, service.LinkProblem("closed", "closed"))
    _kick(request)
    return _public(
        request,
        {
            "state": "done",
            "answer": answer,
            "exercise": roll_call.exercise,
            "action": f"/r/{token}",
            "answered_at": as_utc(clock.now()).strftime("%H:%M UTC"),
        },
    )
