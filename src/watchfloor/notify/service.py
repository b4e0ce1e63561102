"""Mass notification: alerts to audiences, each alert also a CAP 1.2 document, one delivery row
per recipient and channel, sent after commit by the delivery engine (notify/delivery.py).

``send_alert`` resolves the audience to recipients (people and response units), lists each
recipient's channels in order of preference (the first is queued, the rest wait as fallbacks),
renders the template per recipient, builds the CAP document and writes everything, with an outbox
message that wakes the senders, in the caller's transaction: nothing is sent before commit, and a
rolled-back transaction sends nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from itsdangerous import BadSignature, Signer
from sqlalchemy import ColumnElement, Table, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.auth.principal import Principal, Scope
from watchfloor.bus import outbox
from watchfloor.clock import Clock, as_utc
from watchfloor.notify import cap, templates
from watchfloor.notify.models import (
    Alert,
    AlertFacility,
    AlertStatus,
    Delivery,
    DeliveryState,
    NotifyGroupMember,
    RecipientKind,
)
from watchfloor.people.models import Person
from watchfloor.problems import InvalidInput, NotFound, Problem
from watchfloor.sites.models import Facility, ResponseUnit

DISPATCH_SUBJECT = "notify.dispatch"
CAP_SENDER = "alerts@watchfloor"
MAX_RECIPIENTS = 50_000
#: Person / unit contact channel names → the delivery channel used for them
CHANNEL_ALIASES = {
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "sms": "sms",
    "phone": "sms",
    "mobile": "sms",
    "slack": "slack",
    "teams": "teams",
    "msteams": "teams",
    "push": "push",
    "webhook": "webhook",
    "apprise": "apprise",
}
APPRISE_CHANNELS = {"slack", "teams", "push", "webhook", "apprise"}
CONSOLE = "console"
ACK_SALT = "watchfloor.notify-ack"
# Core executemany for the bulk insert of deliveries (the ORM bulk path is slower)
DELIVERIES = cast(Table, Delivery.__table__)


@dataclass
class Audience:
    staff_ids: list[int] = field(default_factory=list)  # people.models.Person ids
    roles: list[str] = field(default_factory=list)  # Person.role values, in the facilities
    unit_ids: list[int] = field(default_factory=list)  # sites.models.ResponseUnit ids
    group_ids: list[int] = field(default_factory=list)  # notify groups
    everyone_at_facilities: bool = False  # every active Person of the alert's facilities

    @property
    def empty(self) -> bool:
        return not (
            self.staff_ids
            or self.roles
            or self.unit_ids
            or self.group_ids
            or self.everyone_at_facilities
        )


@dataclass(frozen=True)
class Channel:
    channel: str
    address: str


@dataclass(frozen=True)
class Recipient:
    kind: str  # person | unit
    id: int
    name: str
    facility_id: int
    channels: tuple[Channel, ...]


def _channel_list(primary: Iterable[tuple[str, str]], contacts: Iterable[Any]) -> list[Channel]:
    """Channels in order of preference, without repeats; unknown channel kinds are skipped."""
    found: list[Channel] = []
    seen: set[tuple[str, str]] = set()
    pairs = list(primary)
    for c in contacts or []:
        if isinstance(c, dict):
            pairs.append((str(c.get("channel", "")), str(c.get("value", ""))))
    for kind, value in pairs:
        channel = CHANNEL_ALIASES.get(kind.strip().lower())
        value = value.strip()
        if not channel or not value:
            continue
        if (channel, value) in seen:
            continue
        seen.add((channel, value))
        found.append(Channel(channel, value[:400]))
    return found


def person_channels(person: Person) -> list[Channel]:
    return _channel_list([("email", person.email), ("sms", person.phone)], person.contacts)


def unit_channels(unit: ResponseUnit) -> list[Channel]:
    return _channel_list([], unit.contacts)


async def resolve_audience(
    db: AsyncSession, facility_ids: Sequence[int], audience: Audience
) -> list[Recipient]:
    """The people and units an audience names, each once, with their channels. People named by
    id or group are included wherever they work; roles and "everyone" are within the facilities.
    Inactive people are left out."""
    person_ids: set[int] = set(audience.staff_ids)
    unit_ids: set[int] = set(audience.unit_ids)
    if audience.group_ids:
        rows = (
            await db.execute(
                select(NotifyGroupMember.person_id, NotifyGroupMember.unit_id).where(
                    NotifyGroupMember.group_id.in_(audience.group_ids)
                )
            )
        ).all()
        person_ids |= {r.person_id for r in rows if r.person_id is not None}
        unit_ids |= {r.unit_id for r in rows if r.unit_id is not None}
    conds: list[ColumnElement[bool]] = []
    if person_ids:
        conds.append(Person.id.in_(person_ids))
    if audience.roles and facility_ids:
        conds.append(Person.facility_id.in_(facility_ids) & Person.role.in_(audience.roles))
    if audience.everyone_at_facilities and facility_ids:
        conds.append(Person.facility_id.in_(facility_ids))
    recipients: list[Recipient] = []
    if conds:
        people = (
            await db.execute(
                select(
                    Person.id,
                    Person.given_name,
                    Person.family_name,
                    Person.facility_id,
                    Person.email,
                    Person.phone,
                    Person.contacts,
                )
                .where(or_(*conds), Person.active.is_(True))
                .order_by(Person.id)
            )
        ).all()
        for p in people:
            channels = _channel_list([("email", p.email), ("sms", p.phone)], p.contacts)
            recipients.append(
                Recipient(
                    RecipientKind.PERSON,
                    p.id,
                    f"{p.given_name} {p.family_name}".strip(),
                    p.facility_id,
                    tuple(channels),
                )
            )
    if unit_ids:
        units = (
            (
                await db.execute(
                    select(ResponseUnit)
                    .where(ResponseUnit.id.in_(unit_ids))
                    .order_by(ResponseUnit.id)
                )
            )
            .scalars()
            .all()
        )
        for u in units:
            recipients.append(
                Recipient(RecipientKind.UNIT, u.id, u.name, u.facility_id, tuple(unit_channels(u)))
            )
    return recipients


def delivery_key(alert: Alert, recipient_kind: str, recipient_id: int, rank: int) -> str:
    """The idempotency key of one recipient on one channel of an alert: the same on every
    attempt, so it is the e-mail Message-ID (and the provider's idempotency key)."""
    return f"{alert.identifier}.{recipient_kind[0]}{recipient_id}.{rank}"


async def send_alert(
    db: AsyncSession,
    clock: Clock,
    *,
    template: str,
    facility_ids: list[int],
    audience: Audience,
    status: str = "Actual",
    context: dict[str, str] | None = None,
    per_person: dict[int, dict[str, str]] | None = None,
    incident_id: int | None = None,
    sender: str,
    key: str | None = None,
) -> Alert:
    """Write the alert, its CAP document, one delivery row per recipient and channel and the
    outbox message that wakes the senders, in the caller's transaction (nothing is sent before
    commit). With `key`, a second call with the same key returns the first alert and writes
    nothing. Flushes; the caller commits. Raises InvalidInput (422) for an unknown template or
    status, a missing template value, no facility, or an unknown facility."""
    if key is not None:
        existing = await alert_by_key(db, key)
        if existing is not None:
            return existing
    if status not in {s.value for s in AlertStatus}:
        raise InvalidInput(f"Unknown status '{status}'. Use Actual, Exercise or Test.")
    tmpl = templates.get(template)
    if not facility_ids:
        raise InvalidInput("An alert needs at least one facility.")
    facilities = list(
        (
            await db.execute(
                select(Facility).where(Facility.id.in_(set(facility_ids))).order_by(Facility.code)
            )
        )
        .scalars()
        .all()
    )
    if len(facilities) != len(set(facility_ids)):
        raise InvalidInput("An alert names a facility that does not exist.")
    if incident_id is not None:
        from watchfloor.incidents.models import Incident

        if await db.get(Incident, incident_id) is None:
            raise InvalidInput(f"There is no incident {incident_id}.")
    now = clock.now()
    base: dict[str, str] = {
        "facility_name": ", ".join(f.name for f in facilities),
        "facility_code": ", ".join(f.code for f in facilities),
    }
    by_id = {f.id: f for f in facilities}
    values = {**base, **(context or {})}
    personal_keys = {k for extra in (per_person or {}).values() for k in extra}
    placeholder = {k: f"[your {k.replace('_', ' ')}]" for k in personal_keys if k not in values}
    rendered = templates.render(template, status, {**values, **placeholder})
    recipients = await resolve_audience(db, facility_ids, audience)
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidInput(f"An alert may reach at most {MAX_RECIPIENTS} recipients.")
    identifier = f"watchfloor-{now.strftime('%Y%m%d')}-{uuid.uuid4().hex[:16]}"
    # an Update (lockdown lifted) references the alert it ends: for "<x>-lifted" the alert with
    # key "<x>-started"; without one it is sent as a plain Alert
    msg_type, references = tmpl.msg_type, ""
    if msg_type == "Update":
        earlier = (
            await alert_by_key(db, key.removesuffix("-lifted") + "-started")
            if key and key.endswith("-lifted")
            else None
        )
        if earlier is None:
            msg_type = "Alert"
        else:
            references = f"{CAP_SENDER},{earlier.identifier},{cap.cap_time(earlier.created_at)}"
    cap_xml = cap.build_alert(
        identifier=identifier,
        sender=CAP_SENDER,
        sent=now,
        status=status,
        msg_type=msg_type,
        references=references,
        event=tmpl.event,
        urgency=tmpl.urgency,
        severity=tmpl.severity,
        certainty=tmpl.certainty,
        headline=rendered.headline,
        description=rendered.body,
        instruction=rendered.instruction,
        facilities=facilities,
        sender_name=f"Watchfloor ({sender})"[:160],
        incident=f"watchfloor-incident-{incident_id}" if incident_id else "",
    )
    alert = Alert(
        identifier=identifier,
        template=template,
        status=status,
        msg_type=msg_type,
        severity=tmpl.severity,
        urgency=tmpl.urgency,
        certainty=tmpl.certainty,
        incident_id=incident_id,
        sender=sender[:160],
        headline=rendered.headline,
        text=rendered.body,
        instruction=rendered.instruction,
        cap_xml=cap_xml.decode(),
        recipient_count=len(recipients),
        created_at=now,
        idempotency_key=key,
    )
    db.add(alert)
    await db.flush()
    await db.execute(
        insert(AlertFacility), [{"alert_id": alert.id, "facility_id": f.id} for f in facilities]
    )
    rows: list[dict[str, Any]] = []
    cache: dict[tuple[tuple[str, str], ...], templates.Rendered] = {}
    for r in recipients:
        extra = (per_person or {}).get(r.id, {}) if r.kind == RecipientKind.PERSON else {}
        if extra:
            ck = tuple(sorted(extra.items()))
            text = cache.get(ck)
            if text is None:
                text = templates.render(template, status, {**values, **placeholder, **extra})
                cache[ck] = text
        else:
            text = rendered
        channels = list(r.channels) or [Channel(CONSOLE, "console")]
        for rank, ch in enumerate(channels):
            console = ch.channel == CONSOLE
            rows.append(
                {
                    "alert_id": alert.id,
                    "facility_id": r.facility_id if r.facility_id in by_id else None,
                    "recipient_kind": r.kind,
                    "recipient_id": r.id,
                    "recipient_name": r.name[:220],
                    "channel": ch.channel,
                    "rank": rank,
                    "address": ch.address,
                    "subject": text.headline,
                    "body": text.body,
                    "key": delivery_key(alert, r.kind, r.id, rank),
                    # the console "channel" is this alert on the console itself: there at once
                    "state": (
                        DeliveryState.SENT
                        if console
                        else DeliveryState.QUEUED
                        if rank == 0
                        else DeliveryState.STANDBY
                    ),
                    "attempts": 0,
                    "next_attempt_at": now if rank == 0 and not console else None,
                    "sent_at": now if console else None,
                    "last_error": (
                        "No e-mail, phone or other channel on record: shown on the console only."
                        if console
                        else None
                    ),
                    "created_at": now,
                }
            )
    for start in range(0, len(rows), 2000):
        await db.execute(DELIVERIES.insert(), rows[start : start + 2000])
    outbox.add(
        db,
        DISPATCH_SUBJECT,
        {"alert_id": alert.id, "status": status, "recipients": len(recipients)},
        msg_id=f"notify-alert-{alert.id}",
        clock=clock,
    )
    await audit.record(
        db,
        clock,
        sender,
        "notify.alert.send",
        target_type="alert",
        target_id=alert.id,
        facility_id=facilities[0].id if len(facilities) == 1 else None,
        details={
            "template": template,
            "status": status,
            "facilities": [f.code for f in facilities],
            "recipients": len(recipients),
            "deliveries": len(rows),
            "incident_id": incident_id,
            "key": key,
        },
    )
    if incident_id is not None:
        from watchfloor.incidents.service import record_on_timeline

        await record_on_timeline(
            db,
            clock,
            incident_id,
            "notification",
            f"{'[' + status.upper() + '] ' if status != 'Actual' else ''}"
            f"Alert '{tmpl.title}' sent to {len(recipients)} recipients",
            actor=sender,
            data={"alert_id": alert.id, "template": template, "status": status},
        )
    await db.flush()
    return alert


async def alert_by_key(db: AsyncSession, key: str) -> Alert | None:
    return (
        await db.execute(select(Alert).where(Alert.idempotency_key == key))
    ).scalar_one_or_none()


def preview(
    template: str, status: str, facilities: Sequence[Facility], context: dict[str, str]
) -> templates.Rendered:
    """What the alert would say (no recipient-specific values), without sending anything."""
    values = {
        "facility_name": ", ".join(f.name for f in facilities),
        "facility_code": ", ".join(f.code for f in facilities),
        **context,
    }
    if template == "rollcall_ask":
        values.setdefault("answer_url", "[your answer link]")
    return templates.render(template, status, values)


# -- reading -----------------------------------------------------------------------------------


def _visible_alerts(scope: Scope) -> ColumnElement[bool]:
    """Alerts with at least one facility inside the scope."""
    if scope.everything:
        return Alert.id.is_not(None)
    fac = select(Facility.id).where(
        or_(
            Facility.id.in_(scope.facility_ids),
            Facility.region_id.in_(scope.region_ids),
        )
    )
    return Alert.id.in_(select(AlertFacility.alert_id).where(AlertFacility.facility_id.in_(fac)))


def delivery_scope(scope: Scope) -> ColumnElement[bool]:
    """Deliveries whose recipient belongs to a facility inside the scope."""
    if scope.everything:
        return Delivery.id.is_not(None)
    fac = select(Facility.id).where(
        or_(
            Facility.id.in_(scope.facility_ids),
            Facility.region_id.in_(scope.region_ids),
        )
    )
    return Delivery.facility_id.in_(fac)


async def list_alerts(
    db: AsyncSession,
    scope: Scope,
    *,
    facility_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Alert], int]:
    stmt = select(Alert).where(_visible_alerts(scope))
    if facility_id is not None:
        stmt = stmt.where(
            Alert.id.in_(
                select(AlertFacility.alert_id).where(AlertFacility.facility_id == facility_id)
            )
        )
    if status:
        stmt = stmt.where(Alert.status == status)
    total = int((await db.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    rows = (
        (
            await db.execute(
                stmt.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
            )
        )
        .scalars()
        .all()
    )
    return list(rows), total


async def alert_facilities(db: AsyncSession, alert_ids: Sequence[int]) -> dict[int, list[Facility]]:
    found: dict[int, list[Facility]] = {i: [] for i in alert_ids}
    if not alert_ids:
        return found
    rows = (
        await db.execute(
            select(AlertFacility.alert_id, Facility)
            .join(Facility, Facility.id == AlertFacility.facility_id)
            .where(AlertFacility.alert_id.in_(alert_ids))
            .order_by(Facility.code)
        )
    ).all()
    for alert_id, facility in rows:
        found[alert_id].append(facility)
    return found


async def get_visible_alert(
    db: AsyncSession, principal: Principal, perm: Any, alert_id: int
) -> Alert:
    """The alert if it names a facility the principal may `perm` (else 404)."""
    alert = await db.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"There is no alert {alert_id}.")
    facilities = (await alert_facilities(db, [alert.id]))[alert.id]
    if not any(principal.allows(perm, facility_id=f.id, region_id=f.region_id) for f in facilities):
        raise NotFound(f"There is no alert {alert_id}.")
    return alert


async def delivery_counts(
    db: AsyncSession, alert_ids: Sequence[int], scope: Scope
) -> dict[int, dict[str, int]]:
    """Per alert: deliveries per state, recipients, acknowledged recipients (in scope)."""
    found: dict[int, dict[str, int]] = {
        i: {s.value: 0 for s in DeliveryState} | {"recipients": 0, "acknowledged": 0}
        for i in alert_ids
    }
    if not alert_ids:
        return found
    rows = (
        await db.execute(
            select(Delivery.alert_id, Delivery.state, func.count())
            .where(Delivery.alert_id.in_(alert_ids), delivery_scope(scope))
            .group_by(Delivery.alert_id, Delivery.state)
        )
    ).all()
    for alert_id, state, n in rows:
        found[alert_id][state] = int(n)
    only_acked = [Delivery.acknowledged_at.is_not(None)]
    for label, extra in (("recipients", []), ("acknowledged", only_acked)):
        distinct = (
            select(Delivery.alert_id, Delivery.recipient_kind, Delivery.recipient_id)
            .where(Delivery.alert_id.in_(alert_ids), delivery_scope(scope), *extra)
            .distinct()
            .subquery()
        )
        for alert_id, n in (
            await db.execute(
                select(distinct.c.alert_id, func.count()).group_by(distinct.c.alert_id)
            )
        ).all():
            found[alert_id][label] = int(n)
    return found


STATE_ORDER = {
    DeliveryState.FAILED: 0,
    DeliveryState.SENDING: 1,
    DeliveryState.QUEUED: 2,
    DeliveryState.SENT: 3,
    DeliveryState.DELIVERED: 4,
    DeliveryState.STANDBY: 5,
}


async def alert_deliveries(
    db: AsyncSession, alert_id: int, scope: Scope, *, limit: int = 5000
) -> list[Delivery]:
    """The alert's deliveries in scope: unacknowledged first, failed first among them, then
    in flight, queued, sent, delivered, fallbacks not used (ordered in SQL, so a large alert's
    first `limit` rows are the ones that need attention)."""
    state_rank = case(
        {str(state): rank for state, rank in STATE_ORDER.items()},
        value=Delivery.state,
        else_=9,
    )
    rows = (
        (
            await db.execute(
                select(Delivery)
                .where(Delivery.alert_id == alert_id, delivery_scope(scope))
                .order_by(
                    Delivery.acknowledged_at.is_not(None),
                    state_rank,
                    Delivery.recipient_name,
                    Delivery.recipient_id,
                    Delivery.rank,
                )
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    return list(rows)


# -- acknowledgement ---------------------------------------------------------------------------


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=ACK_SALT, sep=".")


def ack_expiry(alert_created_at: datetime, hours: float) -> datetime:
    return as_utc(alert_created_at) + timedelta(hours=hours)


def ack_token(secret: str, delivery_id: int, expires_at: datetime) -> str:
    """A signed token that acknowledges one delivery (and nothing else) until `expires_at`.
    Deterministic: the same delivery gets the same link on every attempt."""
    value = f"{int(delivery_id)}-{int(expires_at.timestamp())}"
    return _signer(secret).sign(value).decode()


def read_ack_token(secret: str, token: str, now: datetime) -> int:
    """The delivery id of a valid, unexpired token; NotFound otherwise (a forged or expired link
    says nothing about which delivery it named)."""
    if len(token) > 200:
        raise NotFound("This acknowledgement link is not valid.")
    try:
        value = _signer(secret).unsign(token).decode()
        first, _, second = value.partition("-")
        delivery_id, expires = int(first), int(second)
    except (BadSignature, TypeError, ValueError, UnicodeDecodeError):
        raise NotFound("This acknowledgement link is not valid.") from None
    if now.timestamp() >= expires:
        raise Problem(
            "This acknowledgement link has expired. Reply ACK to the text message, or call "
            "your security desk.",
            status=410,
            slug="link-expired",
        )
    return delivery_id


def ack_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/ack/{token}"


async def acknowledge(
    db: AsyncSession,
    clock: Clock,
    delivery: Delivery,
    *,
    how: str,
    by: str,
    actor: Principal | str,
) -> bool:
    """Record that the delivery's recipient acknowledged the alert (on every channel of that
    recipient). Idempotent: False when it was acknowledged already. Audited. Flushes."""
    if delivery.acknowledged_at is not None:
        return False
    now = clock.now()
    await db.execute(
        update(Delivery)
        .where(
            Delivery.alert_id == delivery.alert_id,
            Delivery.recipient_kind == delivery.recipient_kind,
            Delivery.recipient_id == delivery.recipient_id,
            Delivery.acknowledged_at.is_(None),
        )
        .values(acknowledged_at=now, acknowledged_how=how, acknowledged_by=by[:160])
        .execution_options(synchronize_session=False)
    )
    # nothing more needs to go to them: retries waiting on other channels stand down
    await db.execute(
        update(Delivery)
        .where(
            Delivery.alert_id == delivery.alert_id,
            Delivery.recipient_kind == delivery.recipient_kind,
            Delivery.recipient_id == delivery.recipient_id,
            Delivery.state == DeliveryState.QUEUED,
            # a link or SMS reply proves this message arrived (marked delivered below)
            *([Delivery.id != delivery.id] if how in ("link", "sms") else []),
        )
        .values(
            state=DeliveryState.STANDBY,
            next_attempt_at=None,
            last_error="Not sent: the recipient acknowledged the alert.",
        )
        .execution_options(synchronize_session=False)
    )
    # a link or an SMS reply is proof that this very message arrived: delivered
    # (an operator's acknowledgement says nothing about which message reached them)
    if how in ("link", "sms"):
        await db.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery.id,
                Delivery.state.in_(
                    [DeliveryState.SENT, DeliveryState.SENDING, DeliveryState.QUEUED]
                ),
            )
            .values(state=DeliveryState.DELIVERED, delivered_at=now)
            .execution_options(synchronize_session=False)
        )
    await audit.record(
        db,
        clock,
        actor,
        "notify.delivery.acknowledge",
        target_type="alert",
        target_id=delivery.alert_id,
        facility_id=delivery.facility_id,
        details={
            "delivery_id": delivery.id,
            "recipient": f"{delivery.recipient_kind}:{delivery.recipient_id}",
            "how": how,
            "by": by,
        },
    )
    await db.refresh(delivery)
    return True


def phone_digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())[-10:]


async def delivery_for_sms_reply(
    db: AsyncSession, clock: Clock, number: str, *, within_hours: float
) -> Delivery | None:
    """The newest unacknowledged SMS delivery sent to this number within the window."""
    digits = phone_digits(number)
    if len(digits) < 7:
        return None
    since = clock.now() - timedelta(hours=within_hours)
    rows = (
        (
            await db.execute(
                select(Delivery)
                .where(
                    Delivery.channel == "sms",
                    Delivery.created_at >= since,
                    Delivery.acknowledged_at.is_(None),
                    Delivery.state.in_(
                        [DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.SENDING]
                    ),
                )
                .order_by(Delivery.created_at.desc(), Delivery.id.desc())
                .limit(5000)
            )
        )
        .scalars()
        .all()
    )
    for d in rows:
        if phone_digits(d.address) == digits:
            return d
    return None


def short_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]
