"""REST API of the notify domain: send an alert, list and inspect alerts with their deliveries,
acknowledge on a recipient's behalf, recipient groups, the CAP 1.2 feed, and the SMS-reply
webhook.

Reading needs `notify:read` at one of the alert's facilities (an alert outside the caller's scope
is a 404, and only the deliveries of facilities in scope are shown); sending and acknowledging
need `notify:send` at every facility concerned. Every change is audited.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.notify import cap, groups, service, templates
from watchfloor.notify.models import Alert, Delivery, NotifyGroup
from watchfloor.notify.schemas import (
    AckOut,
    AlertCreate,
    AlertDetail,
    AlertPage,
    AlertPreview,
    AlertPreviewIn,
    AlertSummary,
    DeliveryCounts,
    DeliveryOut,
    GroupIn,
    GroupOut,
    GroupUpdate,
    SmsReplyIn,
    SmsReplyOut,
)
from watchfloor.people.models import Person
from watchfloor.problems import InvalidInput, NotFound, Unauthorized
from watchfloor.sites import service as sites
from watchfloor.sites.models import Facility, ResponseUnit
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["notify"])

AlertId = Annotated[int, Path(ge=1, le=9_223_372_036_854_775_807, description="Alert id.")]
DeliveryId = Annotated[int, Path(ge=1, le=9_223_372_036_854_775_807, description="Delivery id.")]
GroupId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Group id.")]
FacilityQuery = Annotated[
    str | None, Query(pattern=CODE_PATTERN, max_length=40, description="Facility code.")
]
ACK_WORDS = re.compile(r"^\s*(ack|ok|okay|yes|received)\W*$", re.IGNORECASE)


def cap_url(public_url: str, alert_id: int) -> str:
    return f"{public_url.rstrip('/')}/api/v1/alerts/{alert_id}/cap"


async def summaries(db: DB, principal: Principal, alerts: list[Alert]) -> list[AlertSummary]:
    ids = [a.id for a in alerts]
    facilities = await service.alert_facilities(db, ids)
    counts = await service.delivery_counts(db, ids, principal.scope(Perm.NOTIFY_READ))
    return [
        AlertSummary(
            alert_id=a.id,
            identifier=a.identifier,
            template=a.template,
            status=a.status,
            headline=a.headline,
            sender=a.sender,
            created_at=a.created_at,
            incident_id=a.incident_id,
            facilities=[f.code for f in facilities[a.id]],
            recipient_count=a.recipient_count,
            counts=DeliveryCounts(**counts[a.id]),
        )
        for a in alerts
    ]


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        delivery_id=d.id,
        recipient_kind=d.recipient_kind,
        recipient_id=d.recipient_id,
        recipient_name=d.recipient_name,
        channel=d.channel,
        rank=d.rank,
        address=d.address,
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_error=d.last_error,
        sent_at=d.sent_at,
        delivered_at=d.delivered_at,
        failed_at=d.failed_at,
        acknowledged_at=d.acknowledged_at,
        acknowledged_how=d.acknowledged_how,
        acknowledged_by=d.acknowledged_by,
    )


async def alert_detail(db: DB, principal: Principal, alert: Alert, public_url: str) -> AlertDetail:
    summary = (await summaries(db, principal, [alert]))[0]
    deliveries = await service.alert_deliveries(db, alert.id, principal.scope(Perm.NOTIFY_READ))
    acked = {(d.recipient_kind, d.recipient_id) for d in deliveries if d.acknowledged_at}
    waiting: dict[tuple[str, int], str] = {}
    for d in deliveries:
        k = (d.recipient_kind, d.recipient_id)
        if k not in acked:
            waiting.setdefault(k, d.recipient_name)
    return AlertDetail(
        **summary.model_dump(),
        text=alert.text,
        instruction=alert.instruction,
        cap_url=cap_url(public_url, alert.id),
        deliveries=[delivery_out(d) for d in deliveries],
        unacknowledged=sorted(waiting.values()),
    )


async def _facilities_for_send(db: DB, principal: Principal, codes: list[str]) -> list[Facility]:
    principal.require_anywhere(Perm.NOTIFY_SEND)
    found: list[Facility] = []
    for code in dict.fromkeys(codes):
        facility = (
            await db.execute(select(Facility).where(Facility.code == code))
        ).scalar_one_or_none()
        if facility is None or not principal.allows(
            Perm.NOTIFY_READ, facility_id=facility.id, region_id=facility.region_id
        ):
            raise NotFound(f"There is no facility '{code}'.")
        principal.require(Perm.NOTIFY_SEND, facility_id=facility.id, region_id=facility.region_id)
        found.append(facility)
    return found


@router.get("/alerts/cap", response_class=Response)
async def cap_feed(
    db: DB,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    clock: ClockDep,
    facility: FacilityQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Atom feed of the recent alerts in the caller's scope, each entry carrying its CAP 1.2
    document inline (content type application/cap+xml)."""
    principal.require_anywhere(Perm.NOTIFY_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.NOTIFY_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    alerts, _total = await service.list_alerts(
        db, principal.scope(Perm.NOTIFY_READ), facility_id=facility_id, limit=limit
    )
    base = settings.public_url.rstrip("/")
    body = cap.atom_feed(
        feed_id=f"{base}/api/v1/alerts/cap",
        title="Watchfloor alerts (CAP 1.2)",
        self_url=f"{base}/api/v1/alerts/cap",
        updated=alerts[0].created_at if alerts else clock.now(),
        entries=[
            (
                f"urn:watchfloor:alert:{a.identifier}",
                a.headline,
                a.created_at,
                cap_url(base, a.id),
                a.cap_xml.encode(),
            )
            for a in alerts
        ],
    )
    return Response(body, media_type=cap.ATOM_MEDIA_TYPE)


@router.post("/alerts/preview", response_model=AlertPreview)
async def preview_alert(body: AlertPreviewIn, db: DB, principal: CurrentPrincipal) -> Any:
    """The exact text an alert would carry and its CAP values; sends nothing."""
    facilities = await _facilities_for_send(db, principal, body.facilities)
    rendered = service.preview(body.template, body.status, facilities, dict(body.context))
    t = templates.get(body.template)
    return AlertPreview(
        headline=rendered.headline,
        body=rendered.body,
        instruction=rendered.instruction,
        status=body.status,
        cap_event=t.event,
        cap_urgency=t.urgency,
        cap_severity=t.severity,
        cap_certainty=t.certainty,
    )


@router.get("/alerts", response_model=AlertPage)
async def list_alerts(
    db: DB,
    principal: CurrentPrincipal,
    facility: FacilityQuery = None,
    status: Annotated[str | None, Query(pattern="^(Actual|Exercise|Test)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AlertPage:
    """Alerts in the caller's scope, newest first, with delivery counts per state."""
    principal.require_anywhere(Perm.NOTIFY_READ)
    facility_id = None
    if facility:
        f = await sites.get_facility(db, facility)
        principal.require(Perm.NOTIFY_READ, facility_id=f.id, region_id=f.region_id)
        facility_id = f.id
    rows, total = await service.list_alerts(
        db,
        principal.scope(Perm.NOTIFY_READ),
        facility_id=facility_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return AlertPage(items=await summaries(db, principal, rows), total=total)


async def send_from_request(
    db: DB, clock: ClockDep, principal: Principal, body: AlertCreate
) -> tuple[Alert, bool]:
    """Validate the audience against the caller's scope and send. (alert, created)."""
    facilities = await _facilities_for_send(db, principal, body.facilities)
    if body.idempotency_key:
        existing = await service.alert_by_key(db, f"api:{body.idempotency_key}")
        if existing is not None:
            return existing, False
    a = body.audience
    if not (a.people or a.roles or a.units or a.groups or a.everyone):
        raise InvalidInput("Say who gets the alert: people, roles, units, groups or everyone.")
    staff_ids: list[int] = []
    if a.people:
        rows = (
            await db.execute(
                select(Person.id, Person.employee_id, Facility.id, Facility.region_id)
                .join(Facility, Facility.id == Person.facility_id)
                .where(Person.employee_id.in_(set(a.people)))
            )
        ).all()
        ok = {
            r[1]: r[0]
            for r in rows
            if principal.allows(Perm.NOTIFY_SEND, facility_id=r[2], region_id=r[3])
        }
        missing = sorted(set(a.people) - set(ok))
        if missing:
            raise InvalidInput(f"Unknown people: {', '.join(missing[:10])}.")
        staff_ids = list(ok.values())
    unit_ids: list[int] = []
    if a.units:
        urows = (
            await db.execute(
                select(ResponseUnit.id, ResponseUnit.code).where(
                    ResponseUnit.facility_id.in_([f.id for f in facilities]),
                    ResponseUnit.code.in_(set(a.units)),
                )
            )
        ).all()
        missing = sorted(set(a.units) - {r[1] for r in urows})
        if missing:
            raise InvalidInput(f"Unknown response units: {', '.join(missing[:10])}.")
        unit_ids = [r[0] for r in urows]
    if a.groups:
        visible = {g.id for g in await groups.list_groups(db, principal.scope(Perm.NOTIFY_SEND))}
        missing_groups = sorted(set(a.groups) - visible)
        if missing_groups:
            raise InvalidInput(f"Unknown groups: {', '.join(map(str, missing_groups[:10]))}.")
    if body.incident_id is not None:
        from watchfloor.incidents.models import Incident

        incident = await db.get(Incident, body.incident_id)
        if incident is None or incident.facility_id not in {f.id for f in facilities}:
            raise InvalidInput(
                f"Incident {body.incident_id} is not an incident of the alert's facilities."
            )
    try:
        alert = await service.send_alert(
            db,
            clock,
            template=body.template,
            facility_ids=[f.id for f in facilities],
            audience=service.Audience(
                staff_ids=staff_ids,
                roles=list(a.roles),
                unit_ids=unit_ids,
                group_ids=list(a.groups),
                everyone_at_facilities=a.everyone,
            ),
            status=body.status,
            context=dict(body.context),
            incident_id=body.incident_id,
            sender=principal.label,
            key=f"api:{body.idempotency_key}" if body.idempotency_key else None,
        )
        await db.commit()
    except IntegrityError:
        # the same key sent at the same moment by another request: answer with its alert
        await db.rollback()
        if not body.idempotency_key:
            raise
        existing = await service.alert_by_key(db, f"api:{body.idempotency_key}")
        if existing is None:
            raise
        return existing, False
    return alert, True


@router.post("/alerts", response_model=AlertDetail, status_code=201)
async def send(
    body: AlertCreate,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=8, max_length=120, pattern=r"^[\w.:-]+$", alias="Idempotency-Key"),
    ] = None,
) -> Any:
    """Send an alert now. With an idempotency key (body field or Idempotency-Key header), the
    same key again returns the first alert (200) and sends nothing."""
    if idempotency_key and not body.idempotency_key:
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    alert, created = await send_from_request(db, clock, principal, body)
    if not created:
        response.status_code = 200
    return await alert_detail(db, principal, alert, settings.public_url)


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
async def get_alert(
    alert_id: AlertId, db: DB, principal: CurrentPrincipal, settings: SettingsDep
) -> Any:
    """One alert with its deliveries (failed and unacknowledged first) and counts per state."""
    principal.require_anywhere(Perm.NOTIFY_READ)
    alert = await service.get_visible_alert(db, principal, Perm.NOTIFY_READ, alert_id)
    return await alert_detail(db, principal, alert, settings.public_url)


@router.get("/alerts/{alert_id}/cap", response_class=Response)
async def get_alert_cap(alert_id: AlertId, db: DB, principal: CurrentPrincipal) -> Response:
    """The alert's CAP 1.2 document."""
    principal.require_anywhere(Perm.NOTIFY_READ)
    alert = await service.get_visible_alert(db, principal, Perm.NOTIFY_READ, alert_id)
    return Response(alert.cap_xml.encode(), media_type=cap.CAP_MEDIA_TYPE)


@router.post("/alerts/{alert_id}/deliveries/{delivery_id}/acknowledge", response_model=AckOut)
async def acknowledge_for(
    alert_id: AlertId,
    delivery_id: DeliveryId,
    db: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
) -> Any:
    """Record that the delivery's recipient acknowledged (e.g. they phoned the watch floor)."""
    principal.require_anywhere(Perm.NOTIFY_SEND)
    alert = await service.get_visible_alert(db, principal, Perm.NOTIFY_READ, alert_id)
    delivery = await db.get(Delivery, delivery_id)
    if delivery is None or delivery.alert_id != alert.id:
        raise NotFound(f"Alert {alert_id} has no delivery {delivery_id}.")
    facility = await db.get(Facility, delivery.facility_id) if delivery.facility_id else None
    if facility is None or not principal.allows(
        Perm.NOTIFY_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        raise NotFound(f"Alert {alert_id} has no delivery {delivery_id}.")
    principal.require(Perm.NOTIFY_SEND, facility_id=facility.id, region_id=facility.region_id)
    done = await service.acknowledge(
        db, clock, delivery, how="console", by=principal.label, actor=principal
    )
    await db.commit()
    return AckOut(
        alert_id=alert.id,
        delivery_id=delivery.id,
        acknowledged=True,
        acknowledged_at=delivery.acknowledged_at,
        status="acknowledged" if done else "already acknowledged",
    )


@router.post("/notify/sms-reply", response_model=SmsReplyOut)
async def sms_reply(
    body: SmsReplyIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    x_webhook_token: Annotated[str | None, Header(max_length=400)] = None,
) -> Any:
    """The SMS gateway posts replies here (header X-Webhook-Token: the shared secret).
    "ACK" / "OK" acknowledges the newest alert sent to that number by SMS."""
    expected = settings.notify_sms_reply_token
    if (
        not expected
        or not x_webhook_token
        or not hmac.compare_digest(x_webhook_token.encode(), expected.encode())
    ):
        raise Unauthorized("Send the SMS gateway's shared secret in X-Webhook-Token.")
    if not ACK_WORDS.match(body.text):
        return SmsReplyOut(acknowledged=False, detail="Not an acknowledgement; nothing changed.")
    delivery = await service.delivery_for_sms_reply(
        db, clock, body.sender, within_hours=settings.notify_ack_link_hours
    )
    if delivery is None:
        raise NotFound("No alert sent to this number is waiting for an acknowledgement.")
    await service.acknowledge(
        db,
        clock,
        delivery,
        how="sms",
        by=f"sms:{body.sender}",
        actor="system:sms-reply",
    )
    await db.commit()
    return SmsReplyOut(acknowledged=True, alert_id=delivery.alert_id, detail="Acknowledged.")


# -- groups ------------------------------------------------------------------------------------


async def _group(db: DB, principal: Principal, group_id: int, *, write: bool) -> NotifyGroup:
    principal.require_anywhere(Perm.NOTIFY_READ)
    group = await db.get(NotifyGroup, group_id)
    if group is None:
        raise NotFound(f"There is no group {group_id}.")
    if group.facility_id is None:
        if not principal.allows_org(Perm.NOTIFY_READ):
            raise NotFound(f"There is no group {group_id}.")
        if write:
            principal.require_org(Perm.NOTIFY_SEND)
        return group
    facility = await db.get(Facility, group.facility_id)
    region_id = facility.region_id if facility else None
    if not principal.allows(Perm.NOTIFY_READ, facility_id=group.facility_id, region_id=region_id):
        raise NotFound(f"There is no group {group_id}.")
    if write:
        principal.require(Perm.NOTIFY_SEND, facility_id=group.facility_id, region_id=region_id)
    return group


@router.get("/notify/groups", response_model=list[GroupOut])
async def list_groups(db: DB, principal: CurrentPrincipal) -> Any:
    principal.require_anywhere(Perm.NOTIFY_READ)
    return [
        await groups.group_out(db, g)
        for g in await groups.list_groups(db, principal.scope(Perm.NOTIFY_READ))
    ]


@router.post("/notify/groups", response_model=GroupOut, status_code=201)
async def create_group(body: GroupIn, db: DB, clock: ClockDep, principal: CurrentPrincipal) -> Any:
    """A group of one facility (facility set) or of the organisation (needs an org-wide role)."""
    principal.require_anywhere(Perm.NOTIFY_SEND)
    facility = None
    if body.facility:
        facility = (
            await db.execute(select(Facility).where(Facility.code == body.facility))
        ).scalar_one_or_none()
        if facility is None or not principal.allows(
            Perm.NOTIFY_READ, facility_id=facility.id, region_id=facility.region_id
        ):
            raise NotFound(f"There is no facility '{body.facility}'.")
        principal.require(Perm.NOTIFY_SEND, facility_id=facility.id, region_id=facility.region_id)
    else:
        principal.require_org(Perm.NOTIFY_SEND)
    group = await groups.create_group(db, clock, principal, Perm.NOTIFY_SEND, body, facility)
    await db.commit()
    return await groups.group_out(db, group)


@router.get("/notify/groups/{group_id}", response_model=GroupOut)
async def get_group(group_id: GroupId, db: DB, principal: CurrentPrincipal) -> Any:
    group = await _group(db, principal, group_id, write=False)
    return await groups.group_out(db, group)


@router.patch("/notify/groups/{group_id}", response_model=GroupOut)
async def update_group(
    group_id: GroupId, body: GroupUpdate, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Any:
    group = await _group(db, principal, group_id, write=True)
    await groups.update_group(db, clock, principal, Perm.NOTIFY_SEND, group, body)
    await db.commit()
    return await groups.group_out(db, group)


@router.delete("/notify/groups/{group_id}", status_code=204)
async def delete_group(
    group_id: GroupId, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> Response:
    group = await _group(db, principal, group_id, write=True)
    await groups.delete_group(db, clock, principal, group)
    await db.commit()
    return Response(status_code=204)
