"""Roll call ("Are you safe?"): ask everyone at a facility, collect their answers, keep a tally.

A roll call is started by an operator (console or API) or automatically when a lockdown starts
(`rollcall/handlers.py`; a drill lockdown starts an EXERCISE roll call). One roll call per
facility may be open at a time (a unique index holds it, also between processes).

Starting one snapshots every active Person of the facility into an entry (name, employee id,
phone) and asks each of them through notify's `send_alert(template="rollcall_ask")` with their own
signed, expiring one-tap link (`answer_url`). People answer by the link, by an SMS reply (the
gateway posts it to the webhook), or an operator answers for them in the console; an answer may
change while the roll call is open and every answer is kept (`RollCallAnswer`).

Every change bumps the roll call's `version` with one `UPDATE ... WHERE state = 'open'`, which is
also the lock that serialises answers to one roll call (a row lock on PostgreSQL, the write lock
on SQLite): the tally computed after it is exact, and an answer after the close changes nothing.
Each change queues a `rollcall.<facility>.updated` bus message (outbox, same transaction) with
the tally; the console board streams those. "Need help" writes a `person.needs_help` event in
the same transaction (the alarm pipeline raises a P1 alarm with the person's last known zone).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from watchfloor.audit import service as audit
from watchfloor.auth.models import User
from watchfloor.auth.principal import Principal, Scope
from watchfloor.bus import outbox, subject_token
from watchfloor.clock import Clock, as_utc
from watchfloor.events.ingest import ValidatedEvent, write_events
from watchfloor.panic.models import PanicPress
from watchfloor.people.models import Person
from watchfloor.problems import Conflict, InvalidInput, NotFound, Problem
from watchfloor.rollcall.models import (
    Answer,
    Channel,
    EntryKind,
    RollCall,
    RollCallAnswer,
    RollCallEntry,
    RollCallState,
)
from watchfloor.sites.models import Facility, Zone

Actor = Principal | str
Q = TypeVar("Q")
TOKEN_SALT = "watchfloor.rollcall-answer"  # noqa: S105 - a salt, not a secret
LAST_KNOWN_ZONE_HOURS = 12  # a panic press older than this says nothing about where one is now
PHONE_DIGITS = 10
SMS_SAFE = {"SAFE", "OK", "1", "YES", "I AM SAFE", "IM SAFE"}
SMS_HELP = {"HELP", "NEED HELP", "2", "SOS", "I NEED HELP"}


def _label(actor: Actor) -> str:
    return actor.label if isinstance(actor, Principal) else actor


@dataclass(frozen=True)
class Tally:
    safe: int = 0
    need_help: int = 0
    no_answer: int = 0

    @property
    def total(self) -> int:
        return self.safe + self.need_help + self.no_answer

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


# --------------------------------------------------------------------------- answer links


class LinkProblem(Exception):
    """An answer link that cannot be used; `reason` is one of expired, invalid, closed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=TOKEN_SALT)


def make_token(
    secret_key: str,
    roll_call_id: int,
    entry_id: int,
    person_id: int | None,
    issued_at: datetime | None = None,
) -> str:
    """A signed token naming one entry of one roll call (the link's only credential) and when
    it was issued (by the injected clock; it expires `rollcall_link_hours` later)."""
    issued = int(as_utc(issued_at).timestamp()) if issued_at is not None else 0
    return str(_serializer(secret_key).dumps([roll_call_id, entry_id, person_id or 0, issued]))


def answer_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/r/{token}"


def read_token(secret_key: str, token: str, max_age: timedelta, now: datetime) -> tuple[int, int]:
    """(roll_call_id, entry_id) of a valid, unexpired token; else LinkProblem."""
    if not token or len(token) > 400:
        raise LinkProblem("invalid", "This link is not valid.")
    try:
        value = _serializer(secret_key).loads(token)
    except BadSignature:
        raise LinkProblem("invalid", "This link is not valid.") from None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise LinkProblem("invalid", "This link is not valid.")
    issued = datetime.fromtimestamp(value[3], UTC)
    if as_utc(now) - issued > max_age:
        raise LinkProblem("expired", "This link has expired.")
    return value[0], value[1]


async def entry_for_token(
    db: AsyncSession, secret_key: str, token: str, max_age: timedelta, now: datetime
) -> tuple[RollCall, RollCallEntry]:
    """The open roll call and the entry a link names; LinkProblem when it cannot answer."""
    roll_call_id, entry_id = read_token(secret_key, token, max_age, now)
    entry = await db.get(RollCallEntry, entry_id)
    roll_call = await db.get(RollCall, roll_call_id)
    if entry is None or roll_call is None or entry.roll_call_id != roll_call.id:
        raise LinkProblem("invalid", "This link is not valid.")
    if roll_call.state != RollCallState.OPEN:
        raise LinkProblem("closed", "This roll call is closed.")
    return roll_call, entry


# --------------------------------------------------------------------------- reading


def visible(query: Q, scope: Scope) -> Q:
    """`query` (a select involving RollCall) limited to the roll calls `scope` covers."""
    q: Any = query
    if scope.everything:
        return query
    if scope.empty:
        return cast(Q, q.where(RollCall.id == -1))
    conds = []
    if scope.facility_ids:
        conds.append(RollCall.facility_id.in_(scope.facility_ids))
    if scope.region_ids:
        conds.append(
            RollCall.facility_id.in_(
                select(Facility.id).where(Facility.region_id.in_(scope.region_ids))
            )
        )
    return cast(Q, q.where(or_(*conds)))


async def list_roll_calls(
    db: AsyncSession,
    scope: Scope,
    *,
    facility_id: int | None = None,
    open_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[RollCall], int]:
    """Roll calls in scope: open ones first, then newest first."""
    query = visible(select(RollCall), scope)
    if facility_id is not None:
        query = query.where(RollCall.facility_id == facility_id)
    if open_only:
        query = query.where(RollCall.state == RollCallState.OPEN)
    total = int(await db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await db.scalars(
        query.order_by(
            case((RollCall.state == RollCallState.OPEN, 0), else_=1),
            RollCall.started_at.desc(),
            RollCall.id.desc(),
        )
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), total


async def get_roll_call(db: AsyncSession, roll_call_id: int) -> RollCall:
    roll_call = await db.get(RollCall, roll_call_id)
    if roll_call is None:
        raise NotFound(f"There is no roll call {roll_call_id}.")
    return roll_call


async def open_roll_call(db: AsyncSession, facility_id: int) -> RollCall | None:
    return (
        await db.scalars(
            select(RollCall).where(
                RollCall.facility_id == facility_id, RollCall.state == RollCallState.OPEN
            )
        )
    ).first()


async def tally(db: AsyncSession, roll_call_id: int) -> Tally:
    rows = (
        await db.execute(
            select(RollCallEntry.answer, func.count())
            .where(RollCallEntry.roll_call_id == roll_call_id)
            .group_by(RollCallEntry.answer)
        )
    ).all()
    counts = {str(a): int(n) for a, n in rows}
    return Tally(
        safe=counts.get(Answer.SAFE, 0),
        need_help=counts.get(Answer.NEED_HELP, 0),
        no_answer=counts.get(Answer.NO_ANSWER, 0),
    )


ANSWER_ORDER = case(
    (RollCallEntry.answer == Answer.NEED_HELP, 0),
    (RollCallEntry.answer == Answer.NO_ANSWER, 1),
    else_=2,
)


async def entries(db: AsyncSession, roll_call_id: int) -> list[RollCallEntry]:
    """Every entry: need help first, then no answer, then safe; by name within each."""
    rows = await db.scalars(
        select(RollCallEntry)
        .where(RollCallEntry.roll_call_id == roll_call_id)
        .order_by(ANSWER_ORDER, RollCallEntry.name, RollCallEntry.id)
    )
    return list(rows.all())


async def get_entry(db: AsyncSession, roll_call: RollCall, entry_id: int) -> RollCallEntry:
    entry = await db.get(RollCallEntry, entry_id)
    if entry is None or entry.roll_call_id != roll_call.id:
        raise NotFound(f"Roll call {roll_call.id} has no entry {entry_id}.")
    return entry


async def history(db: AsyncSession, roll_call_id: int) -> list[RollCallAnswer]:
    rows = await db.scalars(
        select(RollCallAnswer)
        .where(RollCallAnswer.roll_call_id == roll_call_id)
        .order_by(RollCallAnswer.at, RollCallAnswer.id)
    )
    return list(rows.all())


# --------------------------------------------------------------------------- helpers


def phone_digits(value: str) -> str:
    """A phone number reduced to its last ten digits, for matching an SMS sender against people:
    "+1 (214) 555-0101", "214-555-0101" and "0012145550101" all match. (A number shared by two
    people in one open roll call is refused as ambiguous, never guessed.)"""
    digits = re.sub(r"\D", "", value or "")
    return digits[-PHONE_DIGITS:]


def _person_phone(person: Person) -> str:
    for contact in person.contacts or []:
        if isinstance(contact, dict) and contact.get("channel") in ("sms", "phone"):
            found = phone_digits(str(contact.get("value", "")))
            if found:
                return found
    return phone_digits(person.phone)


async def last_known_zones(
    db: AsyncSession, clock: Clock, facility_id: int, person_ids: Sequence[int]
) -> dict[int, Zone]:
    """Where each person was last known to be, from what Watchfloor knows today: the zone of
    their own panic press at this facility in the last LAST_KNOWN_ZONE_HOURS hours. (Access
    control badge reads are the natural source once that domain exists: add them here.)"""
    if not person_ids:
        return {}
    since = clock.now() - timedelta(hours=LAST_KNOWN_ZONE_HOURS)
    rows = (
        await db.execute(
            select(User.person_id, Zone, PanicPress.pressed_at)
            .join(PanicPress, PanicPress.user_id == User.id)
            .join(Zone, Zone.id == PanicPress.zone_id)
            .where(
                User.person_id.in_(list(person_ids)),
                PanicPress.facility_id == facility_id,
                PanicPress.pressed_at >= since,
            )
            .order_by(PanicPress.pressed_at)
        )
    ).all()
    found: dict[int, Zone] = {}
    for person_id, zone, _at in rows:  # latest wins
        if person_id is not None:
            found[int(person_id)] = zone
    return found


def _entry_data(entry: RollCallEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "name": entry.name,
        "employee_id": entry.employee_id,
        "answer": entry.answer,
        "answered_at": as_utc(entry.answered_at).isoformat() if entry.answered_at else None,
        "channel": entry.channel,
        "answered_by": entry.answered_by,
        "zone_name": entry.zone_name,
        "note": entry.note,
    }


async def _publish(
    db: AsyncSession,
    clock: Clock,
    roll_call: RollCall,
    facility: Facility,
    what: str,
    counts: Tally,
    entry: RollCallEntry | None = None,
) -> None:
    """Queue the live update (outbox, same transaction) the roll-call board streams."""
    data = {
        "roll_call_id": roll_call.id,
        "facility_id": roll_call.facility_id,
        "facility_code": facility.code,
        "what": what,
        "state": roll_call.state,
        "exercise": roll_call.exercise,
        "version": roll_call.version,
        "tally": counts.as_dict(),
        "entry": _entry_data(entry) if entry is not None else None,
    }
    outbox.add(
        db,
        f"rollcall.{subject_token(facility.code)}.updated",
        data,
        f"rollcall-{roll_call.id}-v{roll_call.version}",
        clock=clock,
    )


async def _bump(db: AsyncSession, roll_call_id: int) -> int | None:
    """Take the roll call's lock and bump its version, only while it is open; None if closed."""
    result = await db.execute(
        update(RollCall)
        .where(RollCall.id == roll_call_id, RollCall.state == RollCallState.OPEN)
        .values(version=RollCall.version + 1)
        .returning(RollCall.version)
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    return int(row[0]) if row is not None else None


# --------------------------------------------------------------------------- starting


async def start(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    facility: Facility,
    *,
    secret_key: str,
    public_url: str,
    reason: str = "",
    exercise: bool = False,
    incident_id: int | None = None,
    lockdown_id: int | None = None,
    trigger: str = "operator",
) -> RollCall:
    """Open a roll call of `facility` and ask everyone (every active Person of it). Conflict if
    one is already open there. Flushes; the caller commits (then the asks go out)."""
    if await open_roll_call(db, facility.id) is not None:
        raise Conflict(
            f"A roll call of {facility.name} is already open: close it before starting another."
        )
    now = clock.now()
    roll_call = RollCall(
        facility_id=facility.id,
        open_facility_id=facility.id,
        lockdown_id=lockdown_id,
        incident_id=incident_id,
        exercise=exercise,
        reason=reason[:300],
        trigger=trigger,
        state=RollCallState.OPEN,
        started_by=_label(actor)[:160],
        started_at=now,
        ask_note="",
        version=1,
    )
    db.add(roll_call)
    try:
        await db.flush()
    except IntegrityError:
        raise Conflict(
            f"A roll call of {facility.name} is already open: close it before starting another."
        ) from None
    people = list(
        (
            await db.scalars(
                select(Person)
                .where(Person.facility_id == facility.id, Person.active.is_(True))
                .order_by(Person.family_name, Person.given_name, Person.id)
            )
        ).all()
    )
    zones = await last_known_zones(db, clock, facility.id, [p.id for p in people])
    rows = []
    for person in people:
        zone = zones.get(person.id)
        rows.append(
            RollCallEntry(
                roll_call_id=roll_call.id,
                kind=EntryKind.STAFF,
                person_id=person.id,
                name=f"{person.given_name} {person.family_name}".strip()[:210],
                employee_id=person.employee_id,
                phone_digits=_person_phone(person),
                answer=Answer.NO_ANSWER,
                zone_id=zone.id if zone else None,
                zone_name=zone.name if zone else "",
                note="",
            )
        )
    db.add_all(rows)
    await db.flush()
    # ask everyone, each with their own link (notify writes the deliveries in this transaction)
    per_person = {
        e.person_id: {
            "answer_url": answer_url(
                public_url, make_token(secret_key, roll_call.id, e.id, e.person_id, now)
            )
        }
        for e in rows
        if e.person_id is not None
    }
    if per_person:
        await _ask(db, clock, actor, roll_call, facility, per_person)
    counts = Tally(no_answer=len(rows))
    await audit.record(
        db,
        clock,
        actor,
        "rollcall.started",
        target_type="roll_call",
        target_id=roll_call.id,
        facility_id=facility.id,
        details={
            "people": len(rows),
            "exercise": exercise,
            "trigger": trigger,
            "lockdown_id": lockdown_id,
            "incident_id": incident_id,
            "reason": reason[:300],
            "asked": roll_call.alert_id is not None,
        },
    )
    if incident_id is not None:
        from watchfloor.incidents.service import record_on_timeline

        await record_on_timeline(
            db,
            clock,
            incident_id,
            "rollcall",
            f"Roll call started{' (EXERCISE)' if exercise else ''}: {len(rows)} people asked "
            "whether they are safe.",
            actor=_label(actor),
            data={"roll_call_id": roll_call.id},
        )
    await _publish(db, clock, roll_call, facility, "started", counts)
    await db.flush()
    return roll_call


async def _ask(
    db: AsyncSession,
    clock: Clock,
    actor: Actor,
    roll_call: RollCall,
    facility: Facility,
    per_person: dict[int, dict[str, str]],
) -> None:
    """Ask everyone through notify. While notify is not installed (or is a stub) the roll call
    still opens, with a note saying nobody was asked (operators can then call people)."""
    try:
        from watchfloor.notify import service as notify
    except ImportError:  # pragma: no cover - notify ships with watchfloor
        roll_call.ask_note = "Notifications are not available: nobody was asked."
        return
    try:
        alert = await notify.send_alert(
            db,
            clock,
            template="rollcall_ask",
            facility_ids=[facility.id],
            audience=notify.Audience(staff_ids=sorted(per_person)),
            status="Exercise" if roll_call.exercise else "Actual",
            context={
                "facility_name": facility.name,
                "facility_code": facility.code,
                "reason": roll_call.reason,
            },
            per_person=per_person,
            incident_id=roll_call.incident_id,
            sender=_label(actor),
            key=f"rollcall-{roll_call.id}-ask",
        )
    except NotImplementedError:
        roll_call.ask_note = "Notifications are not available yet: nobody was asked."
        return
    except Problem as exc:  # refused before anything was written (template, limits, ...)
        roll_call.ask_note = f"Nobody was asked: {exc.detail}"[:300]
        return
    roll_call.alert_id = getattr(alert, "id", None)


# --------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class AnswerResult:
    entry: RollCallEntry
    tally: Tally
    changed: bool  # the answer differs from the previous one
    alarm_event_id: int | None  # the person.needs_help event written, if any


async def record_answer(
    db: AsyncSession,
    clock: Clock,
    roll_call: RollCall,
    entry: RollCallEntry,
    answer: Answer,
    channel: Channel,
    *,
    actor: Actor,
    operator: bool = False,
    zone: Zone | None = None,
    note: str = "",
) -> AnswerResult:
    """Record one answer (any channel). Conflict if the roll call is closed. "Need help" (when
    it was not already the answer) writes a person.needs_help event → P1 alarm with the last
    known zone. Audited; queues the live tally. Flushes; the caller commits."""
    if answer not in (Answer.SAFE, Answer.NEED_HELP):
        raise InvalidInput("The answer must be 'safe' or 'need_help'.")
    version = await _bump(db, roll_call.id)
    if version is None:
        raise Conflict(f"Roll call {roll_call.id} is closed: answers are no longer recorded.")
    set_committed_value(roll_call, "version", version)
    await db.refresh(entry)  # the answer as it is now that this transaction holds the lock
    facility = await db.get(Facility, roll_call.facility_id)
    assert facility is not None
    now = clock.now()
    previous = entry.answer
    entry.answer = answer
    entry.answered_at = now
    entry.channel = channel
    entry.answered_by = _label(actor)[:160] if operator else None
    if zone is not None:
        entry.zone_id, entry.zone_name = zone.id, zone.name
    if note:
        entry.note = note[:500]
    row = RollCallAnswer(
        entry_id=entry.id,
        roll_call_id=roll_call.id,
        answer=answer,
        channel=channel,
        answered_by=entry.answered_by,
        at=now,
        note=note[:500],
    )
    db.add(row)
    await db.flush()
    event_id: int | None = None
    if answer == Answer.NEED_HELP and previous != Answer.NEED_HELP:
        event = ValidatedEvent(
            facility_id=facility.id,
            facility_code=facility.code,
            type="person.needs_help",
            occurred_at=now,
            zone_id=entry.zone_id,
            attributes={
                "person": entry.name,
                "employee_id": entry.employee_id or None,
                "last_known_zone": entry.zone_name or None,
                "roll_call_id": roll_call.id,
                "channel": str(channel),
            },
            idempotency_key=f"rollcall-{roll_call.id}-help-{row.id}",
            source="system",
            sender=f"rollcall:{roll_call.id}",
            heard=False,
        )
        receipt = (await write_events(db, clock, [event]))[0]
        event_id = receipt.event_id or None
        if roll_call.incident_id is not None:
            from watchfloor.incidents.service import record_on_timeline

            where = f" (last known zone: {entry.zone_name})" if entry.zone_name else ""
            await record_on_timeline(
                db,
                clock,
                roll_call.incident_id,
                "rollcall",
                f"{entry.name} needs help{where}.",
                actor=_label(actor),
                data={"roll_call_id": roll_call.id, "entry_id": entry.id},
            )
    await audit.record(
        db,
        clock,
        actor,
        "rollcall.answered_by_operator" if operator else "rollcall.answered",
        target_type="roll_call_entry",
        target_id=entry.id,
        facility_id=facility.id,
        details={
            "roll_call_id": roll_call.id,
            "employee_id": entry.employee_id,
            "answer": str(answer),
            "previous": previous,
            "channel": str(channel),
            "zone": entry.zone_name or None,
            "note": note[:500] or None,
        },
    )
    counts = await tally(db, roll_call.id)
    await _publish(db, clock, roll_call, facility, "answer", counts, entry)
    return AnswerResult(
        entry=entry, tally=counts, changed=previous != answer, alarm_event_id=event_id
    )


def parse_sms(text: str) -> Answer:
    words = re.sub(r"[^A-Z0-9 ]", " ", (text or "").upper())
    words = " ".join(words.split())
    if words in SMS_SAFE:
        return Answer.SAFE
    if words in SMS_HELP:
        return Answer.NEED_HELP
    first = words.split(" ", 1)[0] if words else ""
    if first == "SAFE":
        return Answer.SAFE
    if first == "HELP":
        return Answer.NEED_HELP
    raise InvalidInput("Reply SAFE if you are safe or HELP if you need help.", slug="unclear-reply")


async def entries_for_phone(
    db: AsyncSession, scope: Scope, phone: str
) -> list[tuple[RollCall, RollCallEntry]]:
    """Open roll calls' entries whose person has this phone number, within `scope`."""
    digits = phone_digits(phone)
    if len(digits) < 7:
        return []
    query = (
        select(RollCall, RollCallEntry)
        .join(RollCallEntry, RollCallEntry.roll_call_id == RollCall.id)
        .where(RollCall.state == RollCallState.OPEN, RollCallEntry.phone_digits == digits)
    )
    rows = (await db.execute(visible(query, scope))).all()
    return [(row[0], row[1]) for row in rows]


# --------------------------------------------------------------------------- closing


async def close(db: AsyncSession, clock: Clock, actor: Actor, roll_call: RollCall) -> Tally:
    """Close the roll call: answers are no longer taken. Conflict if it is already closed."""
    version = await _bump(db, roll_call.id)
    if version is None:
        raise Conflict(f"Roll call {roll_call.id} is already closed.")
    await db.refresh(roll_call)
    now = clock.now()
    roll_call.state = RollCallState.CLOSED
    roll_call.open_facility_id = None
    roll_call.closed_by = _label(actor)[:160]
    roll_call.closed_at = now
    await db.flush()
    counts = await tally(db, roll_call.id)
    facility = await db.get(Facility, roll_call.facility_id)
    assert facility is not None
    await audit.record(
        db,
        clock,
        actor,
        "rollcall.closed",
        target_type="roll_call",
        target_id=roll_call.id,
        facility_id=roll_call.facility_id,
        details=counts.as_dict(),
    )
    if roll_call.incident_id is not None:
        from watchfloor.incidents.service import record_on_timeline

        await record_on_timeline(
            db,
            clock,
            roll_call.incident_id,
            "rollcall",
            f"Roll call closed: {counts.safe} safe, {counts.need_help} need help, "
            f"{counts.no_answer} no answer.",
            actor=_label(actor),
            data={"roll_call_id": roll_call.id, **counts.as_dict()},
        )
    await _publish(db, clock, roll_call, facility, "closed", counts)
    return counts


# --------------------------------------------------------------------------- exports

ANSWER_WORDS = {
    Answer.SAFE: "Safe",
    Answer.NEED_HELP: "NEEDS HELP",
    Answer.NO_ANSWER: "No answer",
}


async def record_export(
    db: AsyncSession, clock: Clock, actor: Actor, roll_call: RollCall, fmt: str
) -> None:
    await audit.record(
        db,
        clock,
        actor,
        "rollcall.exported",
        target_type="roll_call",
        target_id=roll_call.id,
        facility_id=roll_call.facility_id,
        details={"format": fmt},
    )


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _csv_safe(value: str) -> str:
    """Spreadsheet programs run cells starting with = + - @ as formulas: neutralise them."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_csv(
    roll_call: RollCall, facility: Facility, rows: Sequence[RollCallEntry], counts: Tally
) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    marking = "EXERCISE" if roll_call.exercise else "ACTUAL"
    w.writerow(["Roll call", roll_call.id, marking])
    w.writerow(["Facility", _csv_safe(facility.code), _csv_safe(facility.name)])
    w.writerow(["Started", _when(roll_call.started_at), _csv_safe(roll_call.started_by)])
    w.writerow(["Closed", _when(roll_call.closed_at), _csv_safe(roll_call.closed_by or "")])
    w.writerow(["Reason", _csv_safe(roll_call.reason)])
    w.writerow(
        [
            "Tally",
            f"safe={counts.safe}",
            f"need_help={counts.need_help}",
            f"no_answer={counts.no_answer}",
            f"total={counts.total}",
        ]
    )
    w.writerow([])
    w.writerow(
        [
            "name",
            "employee_id",
            "kind",
            "answer",
            "answered_at",
            "channel",
            "answered_by",
            "last_known_zone",
            "note",
        ]
    )
    for e in rows:
        w.writerow(
            [
                _csv_safe(e.name),
                _csv_safe(e.employee_id),
                e.kind,
                e.answer,
                _when(e.answered_at),
                e.channel or "",
                _csv_safe(e.answered_by or ""),
                _csv_safe(e.zone_name),
                _csv_safe(e.note),
            ]
        )
    return out.getvalue()


def export_pdf(
    roll_call: RollCall, facility: Facility, rows: Sequence[RollCallEntry], counts: Tally
) -> bytes:
    """The final list as a PDF (ReportLab): heading with facility, times and EXERCISE marking,
    the tally, then everyone (need help first)."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"Roll call {roll_call.id} - {facility.name}",
        author="Watchfloor",
    )
    styles = getSampleStyleSheet()
    story: list[Any] = []
    if roll_call.exercise:
        story.append(Paragraph("<b>EXERCISE - EXERCISE - EXERCISE</b>", styles["Title"]))
    story.append(
        Paragraph(
            escape(f"Roll call {roll_call.id}: {facility.name} ({facility.code})"),
            styles["Heading1"],
        )
    )
    meta = [
        f"Started: {_when(roll_call.started_at)} by {roll_call.started_by}",
        f"Closed: {_when(roll_call.closed_at) or 'still open'}"
        + (f" by {roll_call.closed_by}" if roll_call.closed_by else ""),
    ]
    if roll_call.reason:
        meta.append(f"Reason: {roll_call.reason}")
    for line in meta:
        story.append(Paragraph(escape(line), styles["Normal"]))
    story.append(Spacer(1, 4 * mm))
    story.append(
        Paragraph(
            escape(
                f"Need help: {counts.need_help}    Safe: {counts.safe}    "
                f"No answer: {counts.no_answer}    Total: {counts.total}"
            ),
            styles["Heading2"],
        )
    )
    data: list[list[Any]] = [
        ["Name", "Employee id", "Answer", "Answered at", "Channel", "Last known zone", "Note"]
    ]
    small = styles["BodyText"]
    for e in rows:
        data.append(
            [
                Paragraph(escape(e.name), small),
                Paragraph(escape(e.employee_id), small),
                ANSWER_WORDS.get(Answer(e.answer), e.answer),
                _when(e.answered_at),
                (e.channel or "") + (f" ({e.answered_by})" if e.answered_by else ""),
                Paragraph(escape(e.zone_name), small),
                Paragraph(escape(e.note), small),
            ]
        )
    table = Table(
        data,
        repeatRows=1,
        colWidths=[55 * mm, 28 * mm, 26 * mm, 40 * mm, 40 * mm, 40 * mm, 42 * mm],
    )
    style = [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    for i, e in enumerate(rows, start=1):
        if e.answer == Answer.NEED_HELP:
            style.append(("TEXTCOLOR", (2, i), (2, i), colors.red))
            style.append(("FONTNAME", (2, i), (2, i), "Helvetica-Bold"))
    table.setStyle(TableStyle(style))
    story.append(table)
    doc.build(story)
    return buf.getvalue()
