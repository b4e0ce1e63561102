"""Server-rendered console pages: log-in with MFA, facility list, facility page, offline map.

Page handlers call services directly (never the HTTP API). Callers are resolved with
auth/deps.optional_principal, which also refuses unsafe requests without the session's CSRF token;
a page without a logged-in caller redirects to /login. Errors on pages are plain HTML pages; the
API under /api keeps its problem documents.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import xstatic.pkg.leaflet as leaflet_pkg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from watchfloor.auth import service as auth_service
from watchfloor.auth.deps import (
    SESSION_COOKIE,
    CurrentPrincipal,
    optional_principal,
    session_from_cookie,
)
from watchfloor.auth.models import User, UserSession
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.auth.tokens import same
from watchfloor.clock import Clock
from watchfloor.config import Settings
from watchfloor.deps import DB, ClockDep, SettingsDep, client_ip
from watchfloor.problems import NotFound, Problem, Unauthorized
from watchfloor.sites import service as sites_service
from watchfloor.sites.models import Device, Facility, ResponseUnit
from watchfloor.web import perms, queries

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
LOGIN_COOKIE = "wf_login"
LOGIN_FORM_MAX_AGE = 3600
PAGE_SIZE = 100
MAX_QUERY_LEN = 100
DAYS = (
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["words"] = queries.words
templates.env.globals["HEALTH_LABELS"] = queries.HEALTH_LABELS
templates.env.globals["DEVICE_STATUS_LABELS"] = queries.DEVICE_STATUS_LABELS


class LoginRequired(Exception):
    """Raised by page dependencies when nobody is logged in; answered with a 303 to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


# ---------------------------------------------------------------------------- helpers


def safe_next(value: str | None) -> str:
    """Only same-site paths may follow a log-in (never //host or a full URL)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if value.startswith(("/login", "/logout")):
        return "/"
    return value[:500]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def back_to(page: str, *, error: str = "", notice: str = "") -> RedirectResponse:
    """Back to a console page after a form, with the one line it shows: what went wrong, or
    what was done."""
    message = {"error": error} if error else {"notice": notice} if notice else {}
    return redirect(f"{page}?{urlencode(message)}" if message else page)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def form_str(form: FormData, name: str, max_len: int = 200) -> str:
    value = form.get(name)
    return clean(value, max_len) if isinstance(value, str) else ""


def clean(value: str, max_len: int = MAX_QUERY_LEN) -> str:
    """Text any database can compare: no NUL or other control characters, no lone surrogates."""
    value = "".join(ch for ch in value if ch.isprintable() or ch == " ")
    value = value.encode("utf-8", "ignore").decode("utf-8")
    return value.strip()[:max_len]


def query_str(request: Request, name: str) -> str:
    return clean(request.query_params.get(name, ""))


def set_session_cookie(response: Response, settings: Settings, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
    )


def login_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.secret_key, salt="watchfloor.login-form")


async def page_principal(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Principal:
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


async def shell(request: Request, db: AsyncSession, principal: Principal) -> dict[str, Any]:
    """What every logged-in page shows in its top bar."""
    return {
        "principal": principal,
        "display_name": principal.extra.get("display_name", principal.name),
        "scopes": await queries.scope_labels(db, principal),
        "csrf": principal.extra.get("csrf", ""),
        "can_watch": principal.has_perm_anywhere(perms.ALARMS_READ),
        "can_lockdown": principal.has_perm_anywhere(perms.ALARMS_READ),
        "can_alerts": principal.has_perm_anywhere(perms.NOTIFY_READ),
        "can_rollcall": principal.has_perm_anywhere(perms.ROLLCALL_READ),
        "can_assessments": principal.has_perm_anywhere(perms.ASSESSMENTS_READ),
        "can_programme": principal.has_perm_anywhere(perms.PROGRAMME_READ),
        "can_drills": principal.has_perm_anywhere(perms.DRILLS_READ),
        "can_training": principal.has_perm_anywhere(perms.TRAINING_READ),
        "can_sites": principal.has_perm_anywhere(Perm.SITES_READ),
        "can_panic": principal.kind == "user" and principal.has_perm_anywhere(perms.PANIC_RAISE),
    }


async def pre_mfa_session(
    request: Request, db: AsyncSession, clock: Clock
) -> tuple[UserSession, User] | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    return await session_from_cookie(db, clock, cookie)


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    context: dict[str, Any] | None = None,
) -> HTMLResponse:
    ctx = {"status": status, "title": title, "message": message, **(context or {})}
    return render(request, "error.html", ctx, status_code=status)


def fmt_local(now: datetime, tz: str) -> str:
    local = queries.local_time(now, tz)
    return local.strftime("%H:%M %Z")


# ---------------------------------------------------------------------------- log-in


def _login_form(
    request: Request,
    *,
    error: str = "",
    username: str = "",
    next_url: str = "/",
    status_code: int = 200,
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    ctx = {
        "error": error,
        "username": username,
        "next": next_url,
        "login_csrf": login_serializer(request).dumps(nonce),
    }
    response = render(request, "login.html", ctx, status_code=status_code)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_FORM_MAX_AGE,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.cookie_secure,
    )
    return response


@router.get("/login")
async def login_page(request: Request, db: DB, clock: ClockDep) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    found = await pre_mfa_session(request, db, clock)
    if found is not None:
        sess, user = found
        if sess.mfa_verified:
            return redirect(next_url)
        return redirect(_mfa_step(user) + "?" + urlencode({"next": next_url}))
    return _login_form(request, next_url=next_url)


def _mfa_step(user: User) -> str:
    return "/login/mfa" if user.totp_enabled else "/login/enrol"


@router.post("/login")
async def login_submit(
    request: Request, db: DB, clock: ClockDep, settings: SettingsDep
) -> Response:
    form = await request.form()
    username = form_str(form, "username", 80)
    raw_password = form.get("password")
    password = raw_password[:1024] if isinstance(raw_password, str) else ""  # kept exactly
    next_url = safe_next(form_str(form, "next", 500))
    token = form_str(form, "csrf_token", 500)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    try:
        signed = login_serializer(request).loads(token, max_age=LOGIN_FORM_MAX_AGE)
        valid = bool(nonce) and isinstance(signed, str) and same(signed, nonce)
    except BadSignature:
        valid = False
    if not valid:
        return _login_form(
            request,
            error="This log-in form had expired or was not sent from this page. "
            "Enter your user name and password again.",
            username=username,
            next_url=next_url,
            status_code=403,
        )
    if not username or not password:
        return _login_form(
            request,
            error="Enter both your user name and your password.",
            username=username,
            next_url=next_url,
            status_code=422,
        )
    try:
        sess, secret = await auth_service.password_login(
            db,
            clock,
            settings,
            username=username,
            password=password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", "")[:300],
        )
    except Problem as exc:
        # failed attempts are recorded by the service: keep them (throttling, lock-out, audit)
        await db.commit()
        return _login_form(
            request,
            error=_login_error(exc),
            username=username,
            next_url=next_url,
            status_code=exc.status,
        )
    user = await db.get(User, sess.user_id)
    await db.commit()
    step = _mfa_step(user) if user is not None else "/login/mfa"
    response = redirect(step + "?" + urlencode({"next": next_url}))
    set_session_cookie(response, settings, secret)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _login_error(exc: Problem) -> str:
    if isinstance(exc, Unauthorized):
        return "That user name and password do not match. Check them and try again."
    return exc.detail  # locked until ..., too many attempts, disabled: already plain words


async def _pre_mfa_or_redirect(
    request: Request, db: AsyncSession, clock: Clock
) -> tuple[UserSession, User] | Response:
    found = await pre_mfa_session(request, db, clock)
    next_url = safe_next(request.query_params.get("next"))
    if found is None:
        return redirect("/login?" + urlencode({"next": next_url}))
    if found[0].mfa_verified:
        return redirect(next_url)
    return found


def _pre_mfa_csrf_ok(form: FormData, sess: UserSession) -> bool:
    sent = form_str(form, "csrf_token", 200)
    return bool(sent) and same(sent, sess.csrf_token)


def _stale_form(request: Request) -> HTMLResponse:
    return error_page(
        request,
        403,
        "This form has expired",
        "The form's security token is missing or stale. Go back, reload the page and try again.",
    )


@router.get("/login/mfa")
async def mfa_page(request: Request, db: DB, clock: ClockDep) -> Response:
    found = await _pre_mfa_or_redirect(request, db, clock)
    if isinstance(found, Response):
        return found
    sess, user = found
    if not user.totp_enabled:
        return redirect("/login/enrol?" + urlencode({"next": _next_of(request)}))
    return _mfa_form(request, sess, user)


def _next_of(request: Request) -> str:
    return safe_next(request.query_params.get("next"))


def _mfa_form(
    request: Request, sess: UserSession, user: User, error: str = "", status_code: int = 200
) -> HTMLResponse:
    ctx = {
        "csrf": sess.csrf_token,
        "username": user.username,
        "error": error,
        "next": _next_of(request),
    }
    return render(request, "login_mfa.html", ctx, status_code=status_code)


@router.post("/login/mfa")
async def mfa_submit(request: Request, db: DB, clock: ClockDep, settings: SettingsDep) -> Response:
    found = await _pre_mfa_or_redirect(request, db, clock)
    if isinstance(found, Response):
        return found
    sess, user = found
    form = await request.form()
    if not _pre_mfa_csrf_ok(form, sess):
        return _stale_form(request)
    code = "".join(form_str(form, "code", 64).split())
    if not code:
        return _mfa_form(request, sess, user, "Enter the 6-digit code from your app.", 422)
    try:
        await auth_service.verify_mfa(db, clock, sess, code, settings=settings)
    except Problem as exc:
        await db.commit()
        if exc.status == 423:
            # locked out: the session was ended; start again from the password
            return _login_form(
                request, error=exc.detail, next_url=_next_of(request), status_code=423
            )
        return _mfa_form(request, sess, user, exc.detail, exc.status)
    await db.commit()
    return redirect(_landing(user, _next_of(request)))


def _landing(user: User, next_url: str) -> str:
    """Where a fresh log-in goes when no page was asked for: operators to the alarm queue, a
    person who can only raise alarms to the panic page, everyone else to the facility list."""
    if next_url != "/":
        return next_url
    from watchfloor.auth.deps import grants_of

    who = Principal(kind="user", id=user.id, name=user.username, grants=grants_of(user.grants))
    if who.has_perm_anywhere(perms.ALARMS_READ):
        return "/watch"
    if not who.has_perm_anywhere(Perm.SITES_READ) and who.has_perm_anywhere(perms.PANIC_RAISE):
        return "/panic"
    return next_url


@router.get("/login/enrol")
async def enrol_page(request: Request, db: DB, clock: ClockDep) -> Response:
    found = await _pre_mfa_or_redirect(request, db, clock)
    if isinstance(found, Response):
        return found
    sess, user = found
    if user.totp_enabled:
        return redirect("/login/mfa?" + urlencode({"next": _next_of(request)}))
    if user.totp_secret:
        # set-up already started (a reload, or a code that did not match): keep the same secret,
        # the person may have scanned it already
        secret = user.totp_secret
    else:
        secret, _uri = await auth_service.begin_totp_enrolment(db, clock, user)
        await db.commit()
    return _enrol_form(request, sess, user, secret)


def _enrol_form(
    request: Request,
    sess: UserSession,
    user: User,
    secret: str,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    ctx = {
        "csrf": sess.csrf_token,
        "qr_svg": auth_service.totp_qr_svg(auth_service.totp_uri(user.username, secret)),
        "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
        "error": error,
        "next": _next_of(request),
    }
    return render(request, "login_enrol.html", ctx, status_code=status_code)


@router.post("/login/enrol")
async def enrol_submit(request: Request, db: DB, clock: ClockDep) -> Response:
    found = await _pre_mfa_or_redirect(request, db, clock)
    if isinstance(found, Response):
        return found
    sess, user = found
    if user.totp_enabled:
        return redirect("/login/mfa?" + urlencode({"next": _next_of(request)}))
    form = await request.form()
    if not _pre_mfa_csrf_ok(form, sess):
        return _stale_form(request)
    code = "".join(form_str(form, "code", 64).split())
    if not user.totp_secret:
        return redirect("/login/enrol?" + urlencode({"next": _next_of(request)}))
    if not code:
        return _enrol_form(
            request, sess, user, user.totp_secret, "Enter the 6-digit code the app shows.", 422
        )
    try:
        codes = await auth_service.confirm_totp_enrolment(db, clock, sess, code)
    except Problem as exc:
        await db.commit()  # nothing was changed; keeps the loaded rows usable
        # the same secret again: the person has probably scanned it already
        return _enrol_form(request, sess, user, user.totp_secret, exc.detail, exc.status)
    await db.commit()
    ctx = {"codes": codes, "next": _next_of(request)}
    return render(request, "recovery_codes.html", ctx)


@router.post("/logout")
async def logout(request: Request, db: DB, clock: ClockDep, principal: PagePrincipal) -> Response:
    if principal.session_id is not None:
        sess = await db.get(UserSession, principal.session_id)
        if sess is not None:
            await auth_service.logout(db, clock, sess)
            await db.commit()
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------------------- facilities


@router.get("/")
async def facility_list(
    request: Request, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    scope = principal.scope(Perm.SITES_READ)
    if scope.empty:
        return error_page(
            request,
            403,
            "No facilities to show",
            "Your roles do not include viewing facilities anywhere. "
            "Ask a Watchfloor administrator for access.",
            base,
        )
    sort = query_str(request, "sort")
    filters = queries.Filters(
        q=query_str(request, "q"),
        region=query_str(request, "region"),
        kind=query_str(request, "kind"),
        state=query_str(request, "state"),
        sort=sort if sort in queries.SORTS else "urgent",
    )
    try:
        page = max(1, min(int(request.query_params.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    rows = await queries.facility_rows(db, scope, filters)
    pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
    page = min(page, pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    now = clock.now()
    params = {
        k: v
        for k, v in {
            "q": filters.q,
            "region": filters.region,
            "kind": filters.kind,
            "state": filters.state,
            "sort": filters.sort if filters.sort != "urgent" else "",
        }.items()
        if v
    }
    needing = [r for r in rows if r.health in ("offline", "trouble")]
    ctx = {
        **base,
        "rows": shown,
        "total": len(rows),
        "needing_attention": len(needing),
        "offline_devices": sum(r.offline for r in rows),
        "trouble_devices": sum(r.trouble for r in rows),
        "local_times": {r.id: fmt_local(now, r.timezone) for r in shown},
        "filters": filters,
        "choices": await queries.filter_choices(db, scope),
        "sorts": queries.SORTS,
        "page": page,
        "pages": pages,
        "page_link": lambda n: "/?" + urlencode({**params, "page": n}),
        "now_utc": now.strftime("%H:%M UTC"),
    }
    return render(request, "facilities.html", ctx)


async def _facility_detail(db: AsyncSession, facility_id: int) -> Facility:
    found = (
        await db.execute(
            select(Facility)
            .where(Facility.id == facility_id)
            .options(
                selectinload(Facility.region),
                selectinload(Facility.zones),
                selectinload(Facility.devices).selectinload(Device.zone),
                selectinload(Facility.response_units),
            )
        )
    ).scalar_one()
    return found


@router.get("/facilities/{code}")
async def facility_page(
    request: Request, code: str, db: DB, clock: ClockDep, principal: PagePrincipal
) -> Response:
    base = await shell(request, db, principal)
    code = clean(code)
    try:
        facility = await sites_service.get_facility(db, code)
    except NotFound:
        return error_page(
            request,
            404,
            "No such facility",
            f"No facility has the code “{code}”. Check the code, or search the "
            "facility list by name or city.",
            base,
        )
    if not principal.allows(Perm.SITES_READ, facility_id=facility.id, region_id=facility.region_id):
        return error_page(
            request,
            403,
            "Not in your scope",
            f"Facility {facility.code} is outside the facilities your roles cover. "
            "If you need it, ask a Watchfloor administrator to extend your access.",
            base,
        )
    facility = await _facility_detail(db, facility.id)
    now = clock.now()
    local = queries.local_time(now, facility.timezone)
    staff_allowed = principal.allows(
        Perm.PEOPLE_READ, facility_id=facility.id, region_id=facility.region_id
    )
    staff = (
        await queries.staff_of(
            db, clock, principal.scope(Perm.PEOPLE_READ), facility.id, local.date()
        )
        if staff_allowed
        else []
    )
    counts: dict[str, int] = {}
    for d in facility.devices:
        counts[d.status] = counts.get(d.status, 0) + 1
    row = queries.FacilityRow(
        id=facility.id,
        code=facility.code,
        name=facility.name,
        kind=facility.kind,
        city=facility.city,
        state=facility.state,
        region_code=facility.region.code,
        region_name=facility.region.name,
        timezone=facility.timezone,
        latitude=facility.latitude,
        longitude=facility.longitude,
        counts=counts,
    )
    hours = facility.operating_hours or {}
    today_key = DAYS[local.weekday()][0]
    ctx = {
        **base,
        "f": facility,
        "row": row,
        "local_time": local.strftime("%H:%M"),
        "local_day": local.strftime("%A %d %B %Y"),
        "local_zone": local.strftime("%Z"),
        "now_utc": now.strftime("%H:%M UTC"),
        "hours": [
            (key, label, _hours_text(hours.get(key)) if hours else "Not recorded")
            for key, label in DAYS
        ],
        "today_key": today_key,
        "open_now": _open_now(hours.get(today_key), local) if hours else None,
        "device_groups": queries.group_devices(list(facility.devices)),
        "attention_devices": [d for d in facility.devices if d.status in ("offline", "trouble")],
        "units": _units(facility.response_units),
        "staff_allowed": staff_allowed,
        "staff": staff,
        "expired_staff": sum(1 for s in staff if s.expired),
    }
    from watchfloor.events.test_signal import facility_status

    settings = request.app.state.settings
    ctx["test_signal"] = await facility_status(
        db,
        facility,
        now,
        minutes=settings.test_signal_minutes,
        grace_seconds=settings.test_signal_grace_seconds,
        recent=1,
    )
    return render(request, "facility.html", ctx)


def _hours_text(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]}–{value[1]}"
    if isinstance(value, str) and value:
        return value
    return "Closed"


def _open_now(value: Any, local: datetime) -> bool | None:
    if not (isinstance(value, list | tuple) and len(value) == 2):
        return False if value in (None, "", []) else None
    now = local.strftime("%H:%M")
    start, end = str(value[0]), str(value[1])
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # hours that run past midnight


def _units(units: list[ResponseUnit]) -> list[dict[str, Any]]:
    order = {"onsite_security": 0, "police": 1, "ems": 2, "fire": 3}
    out = []
    for u in sorted(units, key=lambda u: (order.get(u.kind, 9), u.name)):
        contacts = [c for c in (u.contacts or []) if isinstance(c, dict)]
        out.append({"unit": u, "contacts": contacts})
    return out


# ---------------------------------------------------------------------------- map


@router.get("/map")
async def map_page(request: Request, db: DB, principal: PagePrincipal) -> Response:
    base = await shell(request, db, principal)
    if principal.scope(Perm.SITES_READ).empty:
        return error_page(
            request,
            403,
            "No facilities to show",
            "Your roles do not include viewing facilities anywhere. "
            "Ask a Watchfloor administrator for access.",
            base,
        )
    return render(request, "map.html", {**base, "health_order": queries.HEALTH_ORDER})


@router.get("/map/facilities.json")
async def map_data(db: DB, clock: ClockDep, principal: CurrentPrincipal) -> JSONResponse:
    """Facilities in the caller's scope with their position and health, for the map."""
    scope = principal.scope(Perm.SITES_READ)
    rows = await queries.facility_rows(db, scope, queries.Filters()) if not scope.empty else []
    now = clock.now()
    items = [
        {
            "code": r.code,
            "name": r.name,
            "kind": queries.words(r.kind),
            "city": r.city,
            "state": r.state,
            "lat": r.latitude,
            "lon": r.longitude,
            "health": r.health,
            "health_label": r.health_label,
            "devices": r.total_devices,
            "offline": r.offline,
            "trouble": r.trouble,
            "local_time": fmt_local(now, r.timezone),
            "url": "/facilities/" + quote(r.code, safe=""),
        }
        for r in rows
    ]
    return JSONResponse(
        {"facilities": items, "total": len(items)}, headers={"Cache-Control": "no-store"}
    )


# ---------------------------------------------------------------------------- mounting


def _is_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(("/api/", "/static/", "/vendor/")) and not path.endswith(".json")


async def _call(handler: Callable[..., Any], request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Response)
    return result


def _install_page_errors(app: FastAPI) -> None:
    """Pages answer errors with plain HTML pages; everything else keeps the problem documents."""
    problem_handler = app.exception_handlers.get(Problem)
    http_handler = app.exception_handlers.get(StarletteHTTPException)

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return redirect("/login?" + urlencode({"next": safe_next(exc.next_url)}))

    async def page_problem(request: Request, exc: Exception) -> Response:
        if _is_page(request) and isinstance(exc, Problem):
            return error_page(request, exc.status, exc.title, exc.detail)
        if problem_handler is None:
            raise exc
        return await _call(problem_handler, request, exc)

    async def page_http(request: Request, exc: Exception) -> Response:
        if _is_page(request) and isinstance(exc, StarletteHTTPException):
            if exc.status_code == 404:
                return error_page(
                    request,
                    404,
                    "Page not found",
                    "There is no page at this address. Use the facility list or the map.",
                )
            if exc.status_code == 405:
                return error_page(
                    request,
                    405,
                    "Not available",
                    "This address does not accept that kind of request.",
                )
        if http_handler is None:
            raise exc
        return await _call(http_handler, request, exc)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Problem, page_problem)
    app.add_exception_handler(StarletteHTTPException, page_http)


def mount_static(app: FastAPI) -> None:
    """Our own assets and Leaflet from its Python package: nothing comes from a CDN.

    Also installs the page error handlers (HTML for pages, problem documents for the API).
    """
    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/vendor/leaflet", StaticFiles(directory=leaflet_pkg.BASE_DIR), name="leaflet")
    _install_page_errors(app)
    from watchfloor.web.console_routes import router as console_router

    app.include_router(console_router)
