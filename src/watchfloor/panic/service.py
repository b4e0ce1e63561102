"""Staff panic: a person raises a silent P1 alarm where they are, and may cancel it with their own
code within a short window; their duress code looks like a cancel but raises a duress alarm.

The press becomes a `panic.pressed` event written through the events ingest path
(`events.ingest.write_events`) in the caller's transaction, together with the PanicPress row and
its audit record: the press, its event and the event's outbox message commit together or not at
all. The caller commits, then wakes the outbox relay (`runtime.kick()`), so the alarm reaches the
watch floor at once.

What the sender sees never tells a cancel from a duress: `cancel_press` returns the same value
for both, and the API turns it into the same response.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.models import User
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm, ScopeKind
from watchfloor.clock import Clock, as_utc
from watchfloor.config import Settings
from watchfloor.events.ingest import ValidatedEvent, write_events
from watchfloor.panic.models import PanicCodes, PanicPress
from watchfloor.people.models import Person
from watchfloor.problems import Conflict, Forbidden, InvalidInput, NotFound
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility, Zone

CODE_RE = re.compile(r"^[0-9]{4,8}$")
MAX_ATTEMPTS = 3
DEFAULT_WINDOW_SECONDS = 30
CANCELLED = "cancelled"  # the one outcome the sender ever sees
TOO_LATE = "Too late: the operator has been alerted."
NO_ATTEMPTS = "No attempts left: the operator has been alerted."

_hasher = PasswordHasher()


def _require_person(principal: Principal) -> None:
    if principal.kind != "user":
        raise Forbidden("Panic alarms are raised by a logged-in person, not by an API token.")
    principal.require_anywhere(Perm.PANIC_RAISE)


def _window(settings: Settings | None, runtime: Any) -> timedelta:
    settings = settings or getattr(runtime, "settings", None)
    seconds = getattr(settings, "panic_cancel_window_seconds", None) or DEFAULT_WINDOW_SECONDS
    return timedelta(seconds=int(seconds))


def _check_code(value: str, what: str) -> str:
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise InvalidInput(f"The {what} must be 4 to 8 digits.")
    return value


# -- codes --------------------------------------------------------------------------------------


async def set_codes(
    db: AsyncSession, clock: Clock, principal: Principal, cancel_code: str, duress_code: str
) -> PanicCodes:
    """Set the caller's own cancel and duress codes (4-8 digits each, not the same). Stored as
    argon2 hashes; audited without the codes. Flushes; the caller commits."""
    _require_person(principal)
    _check_code(cancel_code, "cancel code")
    _check_code(duress_code, "duress code")
    if cancel_code == duress_code:
        raise InvalidInput("The cancel code and the duress code must be different.")
    codes = await db.get(PanicCodes, principal.id)
    now = clock.now()
    first = codes is None
    if codes is None:
        codes = PanicCodes(user_id=principal.id)
        db.add(codes)
    codes.cancel_code_hash = _hasher.hash(cancel_code)
    codes.duress_code_hash = _hasher.hash(duress_code)
    codes.updated_at = now
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "panic.codes_set" if first else "panic.codes_changed",
        target_type="user",
        target_id=principal.id,
    )
    return codes


def _verify(hash_: str, code: str) -> bool:
    try:
        return _hasher.verify(hash_, code)
    except (VerificationError, InvalidHashError):
        return False


# -- pressing -----------------------------------------------------------------------------------


async def resolve_location(
    db: AsyncSession,
    principal: Principal,
    facility_code: str | None = None,
    zone_code: str | None = None,
) -> tuple[Facility, Zone | None]:
    """Where the caller is: the facility they name (inside their grants), else their staff
    record's facility, else the single facility their grants name; and the zone they name."""
    facility: Facility | None = None
    if facility_code:
        facility = await sites.get_facility(db, facility_code)
        principal.require(Perm.PANIC_RAISE, facility_id=facility.id, region_id=facility.region_id)
    else:
        user = await db.get(User, principal.id)
        if user is not None and user.person_id is not None:
            person = await db.get(Person, user.person_id)
            if person is not None:
                candidate = await db.get(Facility, person.facility_id)
                if candidate is not None and principal.allows(
                    Perm.PANIC_RAISE, facility_id=candidate.id, region_id=candidate.region_id
                ):
                    facility = candidate
        if facility is None:
            ids = {
                g.facility_id
                for g in principal.grants
                if g.scope is ScopeKind.FACILITY
                and g.facility_id is not None
                and principal.allows(Perm.PANIC_RAISE, facility_id=g.facility_id, region_id=None)
            }
            if len(ids) == 1:
                facility = await db.get(Facility, ids.pop())
        if facility is None:
            raise InvalidInput("Say which facility you are at (facility_code).")
    zone: Zone | None = None
    if zone_code:
        zone = await sites.find_zone(db, facility, zone_code)
        if zone is None:
            raise InvalidInput(f"Facility '{facility.code}' has no zone '{zone_code}'.")
    return facility, zone


def _event(
    principal: Principal,
    facility: Facility,
    zone_id: int | None,
    event_type: str,
    at: Any,
    key: str,
    extra: dict[str, Any],
) -> ValidatedEvent:
    return ValidatedEvent(
        facility_id=facility.id,
        facility_code=facility.code,
        type=event_type,
        occurred_at=at,
        zone_id=zone_id,
        attributes={
            "silent": True,
            "raised_by": principal.name,
            "display_name": principal.extra.get("display_name", principal.name),
            **extra,
        },
        idempotency_key=key,
        source="web",
        sender=f"user:{principal.name}",
        heard=False,
    )


async def raise_panic(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    *,
    facility_code: str | None = None,
    zone_code: str | None = None,
    runtime: Any = None,
    settings: Settings | None = None,
) -> PanicPress:
    """Raise a silent P1 panic for where the caller is; returns the press (its `cancel_until`
    is the end of the cancel window). Flushes; the caller commits and then kicks the relay.
    `runtime`/`settings` only supply the cancel window (default 30 s)."""
    _require_person(principal)
    facility, zone = await resolve_location(db, principal, facility_code, zone_code)
    now = clock.now()
    ev = _event(
        principal,
        facility,
        zone.id if zone else None,
        "panic.pressed",
        now,
        f"panic-{uuid.uuid4().hex}",
        {"zone_code": zone.code if zone else None},
    )
    receipt = (await write_events(db, clock, [ev]))[0]
    press = PanicPress(
        user_id=principal.id,
        facility_id=facility.id,
        zone_id=zone.id if zone else None,
        event_id=receipt.event_id,
        pressed_at=now,
        cancel_until=now + _window(settings, runtime),
        failed_attempts=0,
    )
    db.add(press)
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "panic.raised",
        target_type="panic_press",
        target_id=press.id,
        facility_id=facility.id,
        details={"event_id": receipt.event_id, "zone": zone.code if zone else None},
    )
    return press


class WrongCode(InvalidInput):
    """A wrong code (422) with the attempts left; raised after the attempt was counted."""

    def __init__(self, attempts_left: int) -> None:
        self.attempts_left = attempts_left
        plural = "attempt" if attempts_left == 1 else "attempts"
        super().__init__(
            f"That code is not right: {attempts_left} {plural} left.",
            slug="wrong-code",
            errors=[
                {
                    "loc": ["body", "code"],
                    "msg": "wrong code",
                    "type": "wrong_code",
                    "attempts_left": attempts_left,
                }
            ],
        )


async def cancel_press(
    db: AsyncSession,
    clock: Clock,
    principal: Principal,
    press_id: int,
    code: str,
    *,
    runtime: Any = None,
    settings: Settings | None = None,
) -> str:
    """Enter a code for one's own press within its window. Returns "cancelled" for the cancel
    code AND for the duress code (which raises a P1 `duress.code` event instead of cancelling).
    Raises NotFound (not the caller's press), InvalidInput (not 4-8 digits; not an attempt),
    Conflict (window over, or attempts used up, or no codes set) or WrongCode (422, attempts
    left). The duress code raises its alarm in every case, even when the answer is a refusal
    (the same refusal the cancel code would get). The caller commits in every case (a wrong
    attempt must be counted) and kicks the relay."""
    _require_person(principal)
    press = await db.get(PanicPress, press_id, with_for_update=True)
    if press is None or press.user_id != principal.id:
        raise NotFound("No such panic press of yours.")
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidInput("A code is 4 to 8 digits.")  # not counted as an attempt
    now = clock.now()
    codes = await db.get(PanicCodes, principal.id)
    # check both codes every time, so the time taken does not tell which one was entered
    is_cancel = codes is not None and _verify(codes.cancel_code_hash, code)
    is_duress = codes is not None and _verify(codes.duress_code_hash, code)
    # The duress code always gets through, whatever else the sender's screen says: a person
    # under threat who is too late, or has fumbled three times, still raises the duress alarm.
    already_done = press.cancelled_at is not None or press.duress_at is not None
    if is_duress and press.duress_at is None:
        await _raise_duress(db, clock, principal, press, now)
    if already_done:
        return CANCELLED  # a later code changes nothing else: the same answer again
    refusal: Conflict | None = None
    if now > as_utc(press.cancel_until):
        refusal = Conflict(TOO_LATE, slug="too-late")
        reason = "too_late"
    elif press.failed_attempts >= MAX_ATTEMPTS:
        refusal = Conflict(NO_ATTEMPTS, slug="no-attempts-left")
        reason = "no_attempts_left"
    elif codes is None:
        refusal = Conflict(
            "You have not set a cancel code, so this press cannot be cancelled: the operator "
            "has been alerted.",
            slug="no-cancel-code",
        )
        reason = "no_codes"
    if refusal is not None:
        # (after a duress code too: the sender sees what a cancel code would have shown)
        await _audit_attempt(db, clock, principal, press, reason)
        raise refusal
    if is_duress:
        return CANCELLED
    if is_cancel:
        press.cancelled_at = now
        await db.flush()
        if press.event_id is not None:
            from watchfloor.alarms import service as alarms

            await alarms.cancel_by_sender(db, clock, principal, event_id=press.event_id)
        await audit.record(
            db,
            clock,
            principal,
            "panic.cancelled",
            target_type="panic_press",
            target_id=press.id,
            facility_id=press.facility_id,
            details={"event_id": press.event_id},
        )
        return CANCELLED
    press.failed_attempts += 1
    await db.flush()
    await _audit_attempt(db, clock, principal, press, "wrong_code")
    raise WrongCode(MAX_ATTEMPTS - press.failed_attempts)


async def _raise_duress(
    db: AsyncSession, clock: Clock, principal: Principal, press: PanicPress, now: Any
) -> None:
    """A P1 `duress.code` event for the press (through the ingest path), and its audit record."""
    facility = await db.get(Facility, press.facility_id)
    if facility is None:
        return
    ev = _event(
        principal,
        facility,
        press.zone_id,
        "duress.code",
        now,
        f"panic-duress-{press.id}",
        {"press_id": press.id, "panic_event_id": press.event_id},
    )
    receipt = (await write_events(db, clock, [ev]))[0]
    press.duress_at = now
    await db.flush()
    await audit.record(
        db,
        clock,
        principal,
        "panic.duress",
        target_type="panic_press",
        target_id=press.id,
        facility_id=press.facility_id,
        details={"event_id": receipt.event_id},
    )


async def _audit_attempt(
    db: AsyncSession, clock: Clock, principal: Principal, press: PanicPress, outcome: str
) -> None:
    await audit.record(
        db,
        clock,
        principal,
        "panic.cancel_refused",
        target_type="panic_press",
        target_id=press.id,
        facility_id=press.facility_id,
        details={"reason": outcome, "failed_attempts": press.failed_attempts},
    )


async def is_cancelled_by_sender(db: AsyncSession, event_id: int) -> bool:
    """Was the panic press that produced this event cancelled with its sender's cancel code?
    (For the alarms handler: an alarm created after the cancel should start "cancelled by
    sender".)"""
    cancelled = (
        await db.execute(select(PanicPress.cancelled_at).where(PanicPress.event_id == event_id))
    ).scalar_one_or_none()
    return cancelled is not None
