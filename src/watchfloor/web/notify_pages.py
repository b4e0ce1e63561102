"""Console pages of the notify domain, and the public acknowledgement page.

- `/alerts`: recent alerts in scope (counts per state, acknowledged / recipients) and, for
  `notify:send` holders, the composer: template, facility, audience, status (Actual / Exercise /
  Test), the template's values; "Preview" shows the exact text and the CAP status, and only the
  confirmation form on the preview sends (one idempotency key per preview, so a double submit
  sends one alert);
- `/alerts/{id}`: the delivery dashboard: counts queued / sent / delivered / failed, who has not
  acknowledged, each delivery with failed and unacknowledged first; refreshed every few seconds
  from `/alerts/{id}/rows`; an operator can record a recipient's acknowledgement;
- `/ack/{token}`: the public page a recipient's link opens (no log-in): the alert's text and one
  button that acknowledges it. The link only acknowledges; it shows nothing about anyone else.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from watchfloor.auth.principal import Principal
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.notify import groups as notify_groups
from watchfloor.notify import service, templates
from watchfloor.notify.api import alert_detail, send_from_request, summaries
from watchfloor.notify.models import Alert, Delivery
from watchfloor.notify.schemas import AlertCreate, RoleName
from watchfloor.problems import Problem
from watchfloor.sites import service as sites_service
from watchfloor.sites.models import Facility
from watchfloor.web.perms import NOTIFY_READ, NOTIFY_SEND
from watchfloor.web.routes import (
    SECURITY_HEADERS,
    PagePrincipal,
    error_page,
    form_str,
    redirect,
    render,
    shell,
)
from watchfloor.web.routes import templates as jinja

router = APIRouter(include_in_schema=False)

ROLES: tuple[str, ...] = RoleName.__args__  # type: ignore[attr-defined]
COMPOSER_TEMPLATES = ("lockdown", "lockdown_lifted", "escalation", "test", "custom")
CONTEXT_FIELDS = ("headline", "message", "instruction", "zone_name", "reason")
STATE_LABELS = {
    "standby": "Fallback (not used)",
    "queued": "Queued",
    "sending": "Sending",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
}
jinja.env.globals["NOTIFY_STATE_LABELS"] = STATE_LABELS


def _no_alerts(request: Request, base: dict[str, Any]) -> HTMLResponse:
    return error_page(
        request,
        403,
        "No alerts for you",
        "Your roles do not include reading alerts. Ask a Watchfloor administrator.",
        base,
    )


async def _sendable_facilities(db: Any, principal: Principal) -> list[Facility]:
    if not principal.has_perm_anywhere(NOTIFY_SEND):
        return []
    stmt = (
        select(Facility)
        .where(sites_service.scope_filter(principal.scope(NOTIFY_SEND)))
        .order_by(Facility.code)
        .limit(2000)
    )
    return list((await db.execute(stmt)).scalars().all())


async def _list_context(
    request: Request, db: Any, principal: Principal, base: dict[str, Any]
) -> dict[str, Any]:
    alerts, total = await service.list_alerts(db, principal.scope(NOTIFY_READ), limit=100)
    facilities = await _sendable_facilities(db, principal)
    groups = await notify_groups.list_groups(db, principal.scope(NOTIFY_SEND)) if facilities else []
    return {
        **base,
        "alerts": await summaries(db, principal, alerts),
        "total": total,
        "facilities": facilities,
        "groups": groups,
        "roles": ROLES,
        "template_names": COMPOSER_TEMPLATES,
        "templates_info": templates.TEMPLATES,
        "form": {"status": "Actual", "template": "lockdown", "everyone": True},
    }


@router.get("/alerts")
async def alerts_page(request: Request, db: DB, principal: PagePrincipal) -> Response:
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(NOTIFY_READ):
        return _no_alerts(request, base)
    ctx = await _list_context(request, db, principal, base)
    return render(request, "notify_list.html", {**ctx, "nav": "alerts"})


def _form_to_body(form: Any) -> tuple[dict[str, Any], AlertCreate]:
    """The composer's fields as the API's AlertCreate (same validation as the API)."""
    raw: dict[str, Any] = {
        "template": form_str(form, "template", 40),
        "facility": form_str(form, "facility", 40),
        "status": form_str(form, "status", 20) or "Actual",
        "everyone": form_str(form, "everyone", 5) == "1",
        "roles": [r for r in form.getlist("roles") if isinstance(r, str)][:8],
        "groups": [g for g in form.getlist("groups") if isinstance(g, str) and g.isdigit()][:200],
        "people": [
            p.strip() for p in form_str(form, "people", 20000).replace(",", " ").split() if p
        ][:5000],
        "context": {k: form_str(form, k, 1000) for k in CONTEXT_FIELDS if form_str(form, k, 1000)},
        "idempotency_key": form_str(form, "idempotency_key", 120),
    }
    body = AlertCreate.model_validate(
        {
            "template": raw["template"],
            "facilities": [raw["facility"]] if raw["facility"] else [],
            "status": raw["status"],
            "audience": {
                "everyone": raw["everyone"],
                "roles": raw["roles"],
                "groups": [int(g) for g in raw["groups"]],
                "people": raw["people"],
            },
            "context": raw["context"],
            "idempotency_key": raw["idempotency_key"] or None,
        }
    )
    return raw, body


def _errors_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg')}")
    return "Check the form: " + "; ".join(parts)


@router.post("/alerts/compose")
async def alerts_compose(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    """Preview (action=preview) or, from the preview's confirmation, send (action=send)."""
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(NOTIFY_SEND):
        return error_page(
            request, 403, "You cannot send alerts", "Your roles do not include sending.", base
        )
    form = await request.form()
    action = form_str(form, "action", 10)
    ctx = await _list_context(request, db, principal, base)
    raw: dict[str, Any] = {}
    try:
        raw, body = _form_to_body(form)
        ctx["form"] = raw
        if action == "send" and body.idempotency_key:
            alert, _created = await send_from_request(db, clock, principal, body)
            return redirect(f"/alerts/{alert.id}?sent=1")
        # preview: the exact text, the CAP status, and a confirmation form with a fresh key
        facilities = [f for f in ctx["facilities"] if f.code in body.facilities]
        if not facilities:
            raise Problem("Choose a facility you may send alerts to.", status=422)
        rendered = service.preview(body.template, body.status, facilities, dict(body.context))
        ctx["preview"] = {
            "headline": rendered.headline,
            "body": rendered.body,
            "instruction": rendered.instruction,
            "status": body.status,
            "template": templates.get(body.template),
            "facility": facilities[0],
        }
        ctx["form"] = {**raw, "idempotency_key": uuid.uuid4().hex}
    except ValidationError as exc:
        ctx["form"] = raw or ctx["form"]
        ctx["error"] = _errors_text(exc)
        return render(request, "notify_list.html", {**ctx, "nav": "alerts"}, status_code=422)
    except Problem as exc:
        await db.rollback()  # nothing half-written stays; the page is read afresh
        ctx = await _list_context(request, db, principal, base)
        ctx["form"] = raw or ctx["form"]
        ctx["error"] = exc.detail
        return render(request, "notify_list.html", {**ctx, "nav": "alerts"}, status_code=exc.status)
    return render(request, "notify_list.html", {**ctx, "nav": "alerts"})


async def _visible(db: Any, principal: Principal, alert_id: int) -> Alert | None:
    try:
        return await service.get_visible_alert(db, principal, NOTIFY_READ, alert_id)
    except Problem:
        return None


def _parse_id(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < len(value) < 19 else None


async def _dashboard_context(
    db: Any, principal: Principal, alert: Alert, public_url: str
) -> dict[str, Any]:
    detail = await alert_detail(db, principal, alert, public_url)
    facilities = (await service.alert_facilities(db, [alert.id]))[alert.id]
    can_ack = {
        f.id
        for f in facilities
        if principal.allows(NOTIFY_SEND, facility_id=f.id, region_id=f.region_id)
    }
    return {"alert": detail, "can_ack_facilities": can_ack, "alert_row": alert}


@router.get("/alerts/{alert_id}")
async def alert_page(
    request: Request, alert_id: str, db: DB, principal: PagePrincipal, settings: SettingsDep
) -> Response:
    base = await shell(request, db, principal)
    if not principal.has_perm_anywhere(NOTIFY_READ):
        return _no_alerts(request, base)
    aid = _parse_id(alert_id)
    alert = await _visible(db, principal, aid) if aid else None
    if alert is None:
        return error_page(request, 404, "No such alert", "There is no such alert.", base)
    ctx = {
        **base,
        **await _dashboard_context(db, principal, alert, settings.public_url),
        "nav": "alerts",
        "sent": request.query_params.get("sent") == "1",
        "done": request.query_params.get("done", "")[:200],
    }
    return render(request, "notify_alert.html", ctx)


@router.get("/alerts/{alert_id}/rows")
async def alert_rows(
    request: Request, alert_id: str, db: DB, principal: PagePrincipal, settings: SettingsDep
) -> Response:
    """The dashboard's counts and delivery table as an HTML fragment, for the live refresh."""
    aid = _parse_id(alert_id)
    alert = await _visible(db, principal, aid) if aid else None
    if alert is None:
        return error_page(request, 404, "No such alert", "There is no such alert.")
    ctx = {
        **await _dashboard_context(db, principal, alert, settings.public_url),
        "csrf": principal.extra.get("csrf", ""),
    }
    response = render(request, "notify_rows.html", ctx)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/alerts/{alert_id}/deliveries/{delivery_id}/acknowledge")
async def alert_ack(
    request: Request,
    alert_id: str,
    delivery_id: str,
    db: DB,
    clock: ClockDep,
    principal: PagePrincipal,
) -> Response:
    """An operator records that a recipient acknowledged (e.g. they phoned in)."""
    base = await shell(request, db, principal)
    aid, did = _parse_id(alert_id), _parse_id(delivery_id)
    alert = await _visible(db, principal, aid) if aid else None
    delivery = await db.get(Delivery, did) if did and alert else None
    if alert is None or delivery is None or delivery.alert_id != alert.id:
        return error_page(request, 404, "No such alert", "There is no such alert.", base)
    facility = await db.get(Facility, delivery.facility_id) if delivery.facility_id else None
    if facility is None or not principal.allows(
        NOTIFY_READ, facility_id=facility.id, region_id=facility.region_id
    ):
        return error_page(request, 404, "No such alert", "There is no such alert.", base)
    if not principal.allows(NOTIFY_SEND, facility_id=facility.id, region_id=facility.region_id):
        return error_page(request, 403, "Not allowed", "Your roles do not allow this here.", base)
    name = delivery.recipient_name
    await service.acknowledge(
        db, clock, delivery, how="console", by=principal.label, actor=principal
    )
    await db.commit()
    return redirect(f"/alerts/{alert.id}?done=Recorded+acknowledgement+of+{name[:80]}")


# ---------------------------------------------------------------------------- public ack page


def _public(request: Request, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = jinja.TemplateResponse(request, "notify_ack.html", context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Cache-Control"] = "no-store"
    return response


async def _delivery_for(
    request: Request, db: Any, clock: Any, token: str
) -> tuple[Delivery, Alert] | HTMLResponse:
    try:
        delivery_id = service.read_ack_token(request.app.state.secret_key, token, clock.now())
    except Problem as exc:
        title = "This link has expired" if exc.status == 410 else "This link is not valid"
        return _public(
            request, {"state": "problem", "title": title, "hint": exc.detail}, exc.status
        )
    delivery = await db.get(Delivery, delivery_id)
    alert = await db.get(Alert, delivery.alert_id) if delivery else None
    if delivery is None or alert is None:
        return _public(
            request,
            {"state": "problem", "title": "This link is not valid", "hint": "No such alert."},
            404,
        )
    return delivery, alert


@router.get("/ack/{token}")
async def ack_page(request: Request, token: str, db: DB, clock: ClockDep) -> Response:
    """The alert's text and one button: "I received this"."""
    found = await _delivery_for(request, db, clock, token)
    if isinstance(found, HTMLResponse):
        return found
    delivery, alert = found
    return _public(
        request,
        {
            "state": "done" if delivery.acknowledged_at else "ask",
            "status": alert.status,
            "headline": delivery.subject,
            "body": delivery.body,
            "action": f"/ack/{token}",
            "acknowledged_at": delivery.acknowledged_at,
        },
    )


@router.post("/ack/{token}")
async def ack_submit(request: Request, token: str, db: DB, clock: ClockDep) -> Response:
    found = await _delivery_for(request, db, clock, token)
    if isinstance(found, HTMLResponse):
        return found
    delivery, alert = found
    await service.acknowledge(
        db,
        clock,
        delivery,
        how="link",
        by=f"{delivery.recipient_kind}:{delivery.recipient_id}",
        actor="system:ack-link",
    )
    await db.commit()
    return _public(
        request,
        {
            "state": "done",
            "status": alert.status,
            "headline": delivery.subject,
            "body": delivery.body,
            "action": f"/ack/{token}",
            "acknowledged_at": delivery.acknowledged_at,
        },
    )
