"""Console pages of the lockdown domain.

- `/lockdowns`: active lockdowns first (live), recent ones, and a lockdown control per facility
  and zone in the caller's `lockdown:start` scope.
- `/lockdowns/new?facility=CODE[&zone=CODE]`: the second step — a confirmation naming the
  facility or zone and how many doors will lock; only its big red button starts the lockdown.
- `/lockdowns/{id}`: the live door list (locked / pending / failed counts, failed doors first),
  the lift with its approval flow, retry of failed doors, and the EXERCISE banner for drills.
- `/lockdowns/stream`: server-sent events of lockdown progress in the caller's scope.

Reading needs `alarms:read` at the facility (out of scope answers like missing); starting and
retrying `lockdown:start`, lifting and approving `lockdown:lift`. Changes go through
lockdown.service, then the engine; every form carries the session's CSRF token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette.sse import EventSourceResponse

from watchfloor.auth.principal import Principal
from watchfloor.clock import as_utc
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.lockdown import service
from watchfloor.lockdown.handlers import engine_of
from watchfloor.lockdown.models import Lockdown
from watchfloor.problems import Problem
from watchfloor.sites import service as sites_service
from watchfloor.sites.models import Device, DeviceKind, DeviceStatus, Facility, Zone
from watchfloor.web import live
from watchfloor.web.perms import ALARMS_READ, LOCKDOWN_LIFT, LOCKDOWN_START
from watchfloor.web.routes import (
    PagePrincipal,
    clean,
    error_page,
    form_str,
    redirect,
    render,
    shell,
)

router = APIRouter(include_in_schema=False)

RECENT = 20
CONTROL_PAGE = 200


def _utc(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def _local(value: datetime | None, tz: str, fmt: str = "%H:%M:%S %Z") -> str:
    """A time in the facility's own time zone (the console's rule); UTC in storage and APIs."""
    if value is None:
        return "—"
    from watchfloor.web.queries import local_time

    return local_time(as_utc(value), tz).strftime(fmt)


def _iso(value: datetime | None) -> str:
    return as_utc(value).isoformat() if value is not None else ""


def _not_found(request: Request, base: dict[str, Any], lockdown_id: int) -> Response:
    return error_page(
        request,
        404,
        "No such lockdown",
        f"There is no lockdown {lockdown_id} among the facilities you watch.",
        base,
    )


async def _visible(
    db: AsyncSession, principal: Principal, lockdown_id: int
) -> tuple[Lockdown, Facility] | None:
    if not 0 < lockdown_id < 2**62:
        return None
    lockdown = await db.get(Lockdown, lockdown_id)
    facility = await db.get(Facility, lockdown.facility_id) if lockdown else None
    if lockdown is None or facility is None:
        return None
    if not principal.allows(ALARMS_READ, facility_id=facility.id, region_id=facility.region_id):
        return None
    return lockdown, facility


async def _door_counts_by_facility(
    db: AsyncSession, facility_ids: list[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Doors in service per facility and per zone (what a lockdown would command)."""
    if not facility_ids:
        return {}, {}
    rows = (
        await db.execute(
            select(Device.facility_id, Device.zone_id, func.count())
            .where(
                Device.facility_id.in_(facility_ids),
                Device.kind == DeviceKind.DOOR.value,
                Device.status != DeviceStatus.DISABLED.value,
            )
            .group_by(Device.facility_id, Device.zone_id)
        )
    ).all()
    per_facility: dict[int, int] = {}
    per_zone: dict[int, int] = {}
    for facility_id, zone_id, count in rows:
        per_facility[facility_id] = per_facility.get(facility_id, 0) + int(count)
        if zone_id is not None:
            per_zone[zone_id] = int(count)
    return per_facility, per_zone


async def _cards(db: AsyncSession, rows: list[Lockdown]) -> list[dict[str, Any]]:
    counts = await service.door_counts(db, [r.id for r in rows])
    out = []
    for ld in rows:
        facility = await db.get(Facility, ld.facility_id)
        data = service.summary(ld, facility, counts[ld.id])
        tz = facility.timezone if facility else "UTC"
        data["started"] = _local(ld.started_at, tz, "%Y-%m-%d %H:%M %Z")
        out.append(data)
    return out


async def _list_context(db: AsyncSession, principal: Principal) -> dict[str, Any]:
    scope = principal.scope(ALARMS_READ)
    active, _ = await service.list_lockdowns(db, scope, active_only=True, limit=200)
    recent_rows = (
        await db.scalars(
            select(Lockdown)
            .where(service.scope_condition(scope), Lockdown.active_facility_id.is_(None))
            .order_by(Lockdown.started_at.desc(), Lockdown.id.desc())
            .limit(RECENT)
        )
    ).all()
    return {"active": await _cards(db, active), "recent": await _cards(db, list(recent_rows))}


# ---------------------------------------------------------------------------- list and controls


@router.get("/lockdowns")
async def lockdowns_page(request: Request, db: DB, principal: PagePrincipal) -> Response:
    base = await shell(request, db, principal)
    if principal.scope(ALARMS_READ).empty:
        return error_page(
            request, 403, "No lockdowns for you", "Your roles do not include watching alarms.", base
        )
    q = clean(request.query_params.get("q", ""), 100)
    controls: list[dict[str, Any]] = []
    start_scope = principal.scope(LOCKDOWN_START)
    total_controls = 0
    if not start_scope.empty:
        stmt = sites_service.facility_query(start_scope, q=q or None)
        total_controls = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        facilities = (
            await db.scalars(stmt.order_by(Facility.name, Facility.code).limit(CONTROL_PAGE))
        ).all()
        ids = [f.id for f in facilities]
        per_facility, per_zone = await _door_counts_by_facility(db, ids)
        zones = (
            (
                await db.scalars(select(Zone).where(Zone.facility_id.in_(ids)).order_by(Zone.code))
            ).all()
            if ids
            else []
        )
        active_by_facility = (
            {
                ld.facility_id: ld
                for ld in (
                    await db.scalars(select(Lockdown).where(Lockdown.active_facility_id.in_(ids)))
                ).all()
            }
            if ids
            else {}
        )
        for f in facilities:
            controls.append(
                {
                    "f": f,
                    "doors": per_facility.get(f.id, 0),
                    "active": active_by_facility.get(f.id),
                    "zones": [
                        {"z": z, "doors": per_zone.get(z.id, 0)}
                        for z in zones
                        if z.facility_id == f.id
                    ],
                }
            )
    ctx = {
        **base,
        "nav": "lockdown",
        **await _list_context(db, principal),
        "controls": controls,
        "total_controls": total_controls,
        "can_start": not start_scope.empty,
        "q": q,
        "message": clean(request.query_params.get("done", ""), 200),
    }
    return render(request, "lockdown_list.html", ctx)


@router.get("/lockdowns/active")
async def lockdowns_active(request: Request, db: DB, principal: PagePrincipal) -> Response:
    """The active and recent lockdowns as an HTML fragment (live refresh of the list page)."""
    if principal.scope(ALARMS_READ).empty:
        return error_page(request, 403, "No lockdowns", "Your roles do not include alarms.")
    return render(request, "lockdown_cards.html", await _list_context(db, principal))


@router.get("/lockdowns/new")
async def lockdown_confirm(request: Request, db: DB, principal: PagePrincipal) -> Response:
    """Step two: say exactly what will lock, then one unmistakable button."""
    base = await shell(request, db, principal)
    code = clean(request.query_params.get("facility", ""), 40)
    zone_code = clean(request.query_params.get("zone", ""), 40)
    facility = None
    if code:
        facility = (
            await db.execute(select(Facility).where(Facility.code == code))
        ).scalar_one_or_none()
    if facility is None or not principal.allows(
        LOCKDOWN_START, facility_id=facility.id, region_id=facility.region_id
    ):
        return error_page(
            request,
            404,
            "No such facility",
            "There is no such facility among those you may lock down. Go back to Lockdown.",
            base,
        )
    zone = None
    if zone_code:
        zone = await sites_service.find_zone(db, facility, zone_code)
        if zone is None:
            return error_page(
                request, 404, "No such zone", f"{facility.name} has no zone {zone_code}.", base
            )
    existing = await service.active_lockdown(db, facility.id)
    incident = clean(request.query_params.get("incident", ""), 19)
    ctx = {
        **base,
        "nav": "lockdown",
        "f": facility,
        "zone": zone,
        "incident": incident if incident.isdigit() else "",
        "doors": await service.door_count(db, facility, zone),
        "existing": existing,
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "lockdown_confirm.html", ctx)


@router.post("/lockdowns/start")
async def lockdown_start(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    form = await request.form()
    code = form_str(form, "facility", 40)
    zone_code = form_str(form, "zone", 40)
    reason = form_str(form, "reason", 500)
    exercise = form_str(form, "exercise", 10) in ("1", "on", "true", "yes")
    incident = form_str(form, "incident", 19)
    incident_id = int(incident) if incident.isdigit() and 0 < int(incident) < 2**62 else None
    base = await shell(request, db, principal)
    facility = (
        (await db.execute(select(Facility).where(Facility.code == code))).scalar_one_or_none()
        if code
        else None
    )
    if facility is None or not principal.allows(
        LOCKDOWN_START, facility_id=facility.id, region_id=facility.region_id
    ):
        return error_page(
            request,
            404,
            "No such facility",
            "There is no such facility among those you may lock down.",
            base,
        )
    back = "/lockdowns/new?" + urlencode(
        {
            "facility": code,
            **({"zone": zone_code} if zone_code else {}),
            **({"incident": str(incident_id)} if incident_id else {}),
        }
    )
    zone = await sites_service.find_zone(db, facility, zone_code) if zone_code else None
    if zone_code and zone is None:
        return redirect(back + "&" + urlencode({"error": f"There is no zone {zone_code}."}))
    try:
        result = await service.start(
            db,
            clock,
            principal,
            [service.Target(facility, zone)],
            exercise=exercise,
            reason=reason,
            incident_id=incident_id,
            source="console",
        )
        await db.commit()
    except Problem as exc:
        await db.rollback()
        return redirect(back + "&" + urlencode({"error": exc.detail}))
    except IntegrityError:  # another request locked the facility down a moment ago
        await db.rollback()
        return redirect(back + "&" + urlencode({"error": service.raced().detail}))
    ids = [ld.id for ld in result.lockdowns]
    engine = engine_of(request.app)
    if engine is not None:
        await engine.ensure(ids)
    return redirect(f"/lockdowns/{ids[0]}")


# ---------------------------------------------------------------------------- one lockdown


async def _detail_context(
    db: AsyncSession, principal: Principal, lockdown: Lockdown, facility: Facility
) -> dict[str, Any]:
    data = await service.detail(db, lockdown)
    me = service.actor_key(principal)
    can_lift = principal.allows(
        LOCKDOWN_LIFT, facility_id=facility.id, region_id=facility.region_id
    )
    return {
        "ld": data,
        "f": facility,
        "doors": data["doors"],
        "counts": data["counts"],
        "utc": _utc,
        "local": lambda value: _local(value, facility.timezone),
        "iso": _iso,
        "can_lift_role": can_lift,
        "can_lift": can_lift and data["active"] and data["state"] != "lifting",
        "can_retry": principal.allows(
            LOCKDOWN_START, facility_id=facility.id, region_id=facility.region_id
        )
        and data["counts"]["failed"] > 0
        and data["state"] in ("partial", "locked", "locking"),
        "lift_pending": lockdown.lift_requested_key is not None and data["active"],
        "mine": lockdown.lift_requested_key == me,
        "csrf": principal.extra.get("csrf", ""),
    }


@router.get("/lockdowns/stream")
async def lockdowns_stream(request: Request, db: DB, principal: PagePrincipal) -> Response:
    """Server-sent events: progress of the lockdowns of the facilities in the caller's scope."""
    scope = principal.scope(ALARMS_READ)
    if scope.empty:
        return error_page(request, 403, "No lockdowns", "Your roles do not include alarms.")
    runtime = getattr(request.app.state, "runtime", None)
    broadcaster = getattr(runtime, "lockdown_live", None)
    if not isinstance(broadcaster, live.Broadcaster):
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


@router.get("/lockdowns/{lockdown_id}")
async def lockdown_page(
    request: Request, lockdown_id: int, db: DB, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    found = await _visible(db, principal, lockdown_id)
    if found is None:
        return _not_found(request, base, lockdown_id)
    lockdown, facility = found
    ctx = {
        **base,
        "nav": "lockdown",
        **await _detail_context(db, principal, lockdown, facility),
        "message": clean(request.query_params.get("done", ""), 300),
        "error": clean(request.query_params.get("error", ""), 300),
    }
    return render(request, "lockdown_detail.html", ctx)


@router.get("/lockdowns/{lockdown_id}/doors")
async def lockdown_doors(
    request: Request, lockdown_id: int, db: DB, principal: PagePrincipal
) -> Response:
    """The status strip, controls and door list as an HTML fragment (live refresh)."""
    base = await shell(request, db, principal)
    found = await _visible(db, principal, lockdown_id)
    if found is None:
        return _not_found(request, base, lockdown_id)
    lockdown, facility = found
    ctx = await _detail_context(db, principal, lockdown, facility)
    return render(request, "lockdown_doors.html", ctx)


ACTIONS = {"lift", "approve", "cancel_lift", "retry"}


@router.post("/lockdowns/{lockdown_id}/action")
async def lockdown_action(
    request: Request,
    lockdown_id: int,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: PagePrincipal,
) -> Response:
    form = await request.form()
    action = form_str(form, "action", 20)
    base = await shell(request, db, principal)
    found = await _visible(db, principal, lockdown_id)
    if found is None:
        return _not_found(request, base, lockdown_id)
    _lockdown, facility = found
    perm = LOCKDOWN_START if action == "retry" else LOCKDOWN_LIFT
    if not principal.allows(perm, facility_id=facility.id, region_id=facility.region_id):
        return error_page(
            request,
            403,
            "Not allowed",
            "Your roles let you watch this lockdown but not do that. Lifting needs a facility "
            "security manager or an administrator.",
            base,
        )
    back = f"/lockdowns/{lockdown_id}"
    if action not in ACTIONS:
        return redirect(back)
    try:
        lockdown = await service.get_lockdown(db, lockdown_id, lock=True)
        if action == "lift":
            lifting = await service.request_lift(
                db,
                clock,
                principal,
                lockdown,
                reason=form_str(form, "reason", 500),
                requires_approval=settings.lockdown_lift_requires_approval,
            )
            done = (
                "Lifting: doors are returning to their normal schedule."
                if lifting
                else "Lift requested. A second person must approve it; the lockdown stays in "
                "force until then."
            )
        elif action == "approve":
            await service.approve_lift(db, clock, principal, lockdown)
            done = "Approved: doors are returning to their normal schedule."
        elif action == "cancel_lift":
            await service.cancel_lift_request(db, clock, principal, lockdown)
            done = "Lift request withdrawn; the lockdown stays in force."
        else:
            n = await service.retry_failed(db, clock, principal, lockdown)
            done = f"Retrying {n} failed door(s)."
    except Problem as exc:
        await db.rollback()
        return redirect(back + "?" + urlencode({"error": exc.detail}))
    await db.commit()
    engine = engine_of(request.app)
    if engine is not None:
        await engine.ensure([lockdown_id])
    return redirect(back + "?" + urlencode({"done": done}))
