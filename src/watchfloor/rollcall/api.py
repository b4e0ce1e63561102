"""REST API of roll calls: start, list, read (tally and everyone's answer), answer for a person,
close, export (CSV, PDF), and the SMS-reply webhook.

Reading needs `rollcall:read` at the roll call's facility (one outside the caller's scope is a
404); starting, answering and closing need `rollcall:manage` there. Every change and every export
is audited. The SMS webhook is called by the SMS gateway with an API token that holds
`rollcall:manage` (e.g. a token with the guard or operator role, named after the gateway); it
answers only for people in that token's scope.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.db import urgent_writes
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.problems import Conflict, InvalidInput, NotFound
from watchfloor.rollcall import service
from watchfloor.rollcall.models import Answer, Channel, RollCall, RollCallEntry
from watchfloor.rollcall.schemas import (
    AnswerHistoryOut,
    AnswerIn,
    AnswerOut,
    EntryOut,
    RollCallDetail,
    RollCallOut,
    RollCallPage,
    SmsReplyIn,
    SmsReplyOut,
    StartIn,
    TallyOut,
)
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility, Zone
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["rollcall"])

RollCallId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Roll call id.")]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Entry (person) id.")]


def kick(request: Request) -> None:
    """Wake the outbox relay so the tally (and the asks) go out at once."""
    runtime = getattr(request.app.state, "runtime", None)
    fn = getattr(runtime, "kick", None)
    if callable(fn):
        fn()


async def roll_call_in_scope(
    db: AsyncSession, principal: Principal, roll_call_id: int, *, manage: bool
) -> tuple[RollCall, Facility]:
    """The roll call if the caller may see it (else 404) and, to change it, manage it (403)."""
    principal.require_anywhere(Perm.ROLLCALL_MANAGE if manage else Perm.ROLLCALL_READ)
    roll_call = await db.get(RollCall, roll_call_id)
    facility = await db.get(Facility, roll_call.facility_id) if roll_call else None
    if (
        roll_call is None
        or facility is None
        or not principal.allows(
            Perm.ROLLCALL_READ, facility_id=facility.id, region_id=facility.region_id
        )
    ):
        raise NotFound(f"There is no roll call {roll_call_id}.")
    if manage:
        principal.require(
            Perm.ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id
        )
    return roll_call, facility


async def tallies(db: AsyncSession, ids: list[int]) -> dict[int, service.Tally]:
    if not ids:
        return {}
    rows = (
        await db.execute(
            select(RollCallEntry.roll_call_id, RollCallEntry.answer, func.count())
            .where(RollCallEntry.roll_call_id.in_(ids))
            .group_by(RollCallEntry.roll_call_id, RollCallEntry.answer)
        )
    ).all()
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    for rc_id, answer, n in rows:
        counts[int(rc_id)][str(answer)] = int(n)
    return {
        i: service.Tally(
            safe=c.get(Answer.SAFE, 0),
            need_help=c.get(Answer.NEED_HELP, 0),
            no_answer=c.get(Answer.NO_ANSWER, 0),
        )
        for i, c in counts.items()
    }


def summary(roll_call: RollCall, facility: Facility, counts: service.Tally) -> dict[str, Any]:
    return {
        "id": roll_call.id,
        "facility_code": facility.code,
        "facility_name": facility.name,
        "state": roll_call.state,
        "exercise": roll_call.exercise,
        "reason": roll_call.reason,
        "trigger": roll_call.trigger,
        "lockdown_id": roll_call.lockdown_id,
        "incident_id": roll_call.incident_id,
        "started_by": roll_call.started_by,
        "started_at": roll_call.started_at,
        "closed_by": roll_call.closed_by,
        "closed_at": roll_call.closed_at,
        "asked": roll_call.alert_id is not None,
        "ask_note": roll_call.ask_note,
        "version": roll_call.version,
        "tally": TallyOut(**counts.as_dict()),
    }


async def detail(db: AsyncSession, roll_call: RollCall, facility: Facility) -> RollCallDetail:
    counts = await service.tally(db, roll_call.id)
    rows = await service.entries(db, roll_call.id)
    past = await service.history(db, roll_call.id)
    return RollCallDetail(
        **summary(roll_call, facility, counts),
        entries=[EntryOut.model_validate(e) for e in rows],
        history=[AnswerHistoryOut.model_validate(h) for h in past],
    )


@router.post("/roll-calls", response_model=RollCallDetail, status_code=status.HTTP_201_CREATED)
async def start_roll_call(
    request: Request,
    body: StartIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> Any:
    """Start a roll call of a facility: everyone there is asked "Are you safe?" with their own
    one-tap link. 409 when one is already open there."""
    principal.require_anywhere(Perm.ROLLCALL_MANAGE)
    facility = await sites.get_facility(db, body.facility_code)
    principal.require(Perm.ROLLCALL_MANAGE, facility_id=facility.id, region_id=facility.region_id)
    if body.incident_id is not None:
        from watchfloor.incidents.models import Incident

        incident = await db.get(Incident, body.incident_id)
        if incident is None or incident.facility_id != facility.id:
            raise InvalidInput(f"Facility '{facility.code}' has no incident {body.incident_id}.")
    roll_call = await service.start(
        db,
        clock,
        principal,
        facility,
        secret_key=request.app.state.secret_key,
        public_url=settings.public_url,
        reason=body.reason,
        exercise=body.exercise,
        incident_id=body.incident_id,
        trigger="api",
    )
    await db.commit()
    kick(request)
    return await detail(db, roll_call, facility)


@router.get("/roll-calls", response_model=RollCallPage)
async def list_roll_calls(
    db: DB,
    principal: CurrentPrincipal,
    facility: Annotated[
        str | None, Query(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
    ] = None,
    open: Annotated[bool, Query(description="Only open roll calls.")] = False,  # noqa: A002
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RollCallPage:
    """Roll calls in the caller's scope: open ones first, then the newest."""
    principal.require_anywhere(Perm.ROLLCALL_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.ROLLCALL_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    rows, total = await service.list_roll_calls(
        db,
        principal.scope(Perm.ROLLCALL_READ),
        facility_id=facility_id,
        open_only=open,
        limit=limit,
        offset=offset,
    )
    counts = await tallies(db, [r.id for r in rows])
    facilities: dict[int, Facility | None] = {}
    items = []
    for rc in rows:
        if rc.facility_id not in facilities:
            facilities[rc.facility_id] = await db.get(Facility, rc.facility_id)
        found = facilities[rc.facility_id]
        if found is not None:
            items.append(RollCallOut(**summary(rc, found, counts[rc.id])))
    return RollCallPage(items=items, total=total)


@router.post("/roll-calls/sms-reply", response_model=SmsReplyOut)
async def sms_reply(
    request: Request, body: SmsReplyIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """The SMS gateway's webhook: a person replied SAFE or HELP from their phone. 404 when no
    open roll call in the caller's scope is waiting for this number; 409 when the number
    belongs to several people (an operator must answer for them); 422 when the text is neither."""
    principal.require_anywhere(Perm.ROLLCALL_MANAGE)
    answer = service.parse_sms(body.text)
    found = await service.entries_for_phone(db, principal.scope(Perm.ROLLCALL_MANAGE), body.from_)
    if not found:
        raise NotFound(
            "No open roll call is waiting for an answer from this number. "
            "If you need help, call the emergency number.",
            slug="unknown-number",
        )
    if len(found) > 1:
        raise Conflict(
            "This number belongs to more than one person in an open roll call; an operator must "
            "record their answers.",
            slug="ambiguous-number",
        )
    roll_call, entry = found[0]
    with urgent_writes() if answer == Answer.NEED_HELP else contextlib.nullcontext():
        await service.record_answer(
            db, clock, roll_call, entry, answer, Channel.SMS, actor=principal, note=""
        )
        await db.commit()
    kick(request)
    reply = (
        "Thank you. You are marked SAFE."
        if answer == Answer.SAFE
        else "Help is being sent. Stay where you are safe if you can."
    )
    return SmsReplyOut(roll_call_id=roll_call.id, answer=answer, reply=reply)


@router.get("/roll-calls/{roll_call_id}", response_model=RollCallDetail)
async def get_roll_call(roll_call_id: RollCallId, db: DB, principal: CurrentPrincipal) -> Any:
    """The roll call with its tally and everyone's answer: need help first, then no answer,
    then safe; and the history of every answer given."""
    roll_call, facility = await roll_call_in_scope(db, principal, roll_call_id, manage=False)
    return await detail(db, roll_call, facility)


@router.post("/roll-calls/{roll_call_id}/entries/{entry_id}/answer", response_model=AnswerOut)
async def answer_for_person(
    request: Request,
    roll_call_id: RollCallId,
    entry_id: EntryId,
    body: AnswerIn,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """An operator records a person's answer (they called in, were seen, ...). Audited.
    409 when the roll call is closed."""
    roll_call, facility = await roll_call_in_scope(db, principal, roll_call_id, manage=True)
    entry = await service.get_entry(db, roll_call, entry_id)
    zone: Zone | None = None
    if body.zone_code:
        zone = await sites.find_zone(db, facility, body.zone_code)
        if zone is None:
            raise InvalidInput(f"Facility '{facility.code}' has no zone '{body.zone_code}'.")
    answer = Answer(body.answer)
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
            zone=zone,
            note=body.note,
        )
        await db.commit()
    kick(request)
    return AnswerOut(
        entry=EntryOut.model_validate(result.entry),
        tally=TallyOut(**result.tally.as_dict()),
        changed=result.changed,
        alarm_event_id=result.alarm_event_id,
    )


@router.post("/roll-calls/{roll_call_id}/close", response_model=RollCallDetail)
async def close_roll_call(
    request: Request, roll_call_id: RollCallId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    """Close the roll call: no more answers are taken; the list is final. 409 if closed."""
    roll_call, facility = await roll_call_in_scope(db, principal, roll_call_id, manage=True)
    await service.close(db, clock, principal, roll_call)
    await db.commit()
    kick(request)
    return await detail(db, roll_call, facility)


async def _export(
    db: AsyncSession, clock: Any, principal: Principal, roll_call_id: int, fmt: str
) -> tuple[RollCall, Facility, bytes]:
    roll_call, facility = await roll_call_in_scope(db, principal, roll_call_id, manage=False)
    counts = await service.tally(db, roll_call.id)
    rows = await service.entries(db, roll_call.id)
    if fmt == "csv":
        content = service.export_csv(roll_call, facility, rows, counts).encode("utf-8")
    else:
        content = service.export_pdf(roll_call, facility, rows, counts)
    await service.record_export(db, clock, principal, roll_call, fmt)
    await db.commit()
    return roll_call, facility, content


def _filename(roll_call: RollCall, facility: Facility, ext: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in facility.code)
    return f"rollcall-{roll_call.id}-{safe}.{ext}"


@router.get(
    "/roll-calls/{roll_call_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_csv(
    roll_call_id: RollCallId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """The list as CSV: heading rows (roll call, facility, times, EXERCISE/ACTUAL, tally), then
    one row a person, need help first. Audited."""
    roll_call, facility, content = await _export(db, clock, principal, roll_call_id, "csv")
    name = _filename(roll_call, facility, "csv")
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/roll-calls/{roll_call_id}/export.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def export_pdf(
    roll_call_id: RollCallId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    """The list as a PDF, with the tally and EXERCISE marking. Audited."""
    roll_call, facility, content = await _export(db, clock, principal, roll_call_id, "pdf")
    name = _filename(roll_call, facility, "pdf")
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
