"""Every route of the app, found by walking the app's routes (not a hand-kept list), is refused
to a caller who is not logged in, and refuses a strong caller scoped to another facility.

A new route with a path parameter this file does not know fails the test: add the parameter to
`Estate.path_values` (tests/security/conftest.py) so the route is exercised with facility A's
object. A new public route fails until it is added to PUBLIC with the reason it may be public.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from authz_estate import MARKER, Estate
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

PROBLEM = "application/problem+json"

# (method, path) → why anyone may call it without logging in. Keep this short.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/api/health"): "load balancers and monitoring probe it; says only 'ok' and a version",
    ("GET", "/api/docs"): "the OpenAPI viewer: a static page around the public schema",
    ("GET", "/api/openapi.json"): "the API's description; contains no data",
    ("GET", "/docs/oauth2-redirect"): "FastAPI's static Swagger UI helper page",
    ("GET", "/login"): "the log-in form",
    ("POST", "/login"): "log-in step 1: username and password",
    ("GET", "/login/mfa"): "log-in step 2 form; works only on the half-logged-in cookie",
    ("POST", "/login/mfa"): "log-in step 2: the TOTP or recovery code",
    ("GET", "/login/enrol"): "first log-in: TOTP enrolment form (half-logged-in cookie only)",
    ("POST", "/login/enrol"): "first log-in: confirm the authenticator",
    ("POST", "/api/v1/auth/login"): "API log-in step 1: exchanges a password for a session cookie",
    ("POST", "/api/v1/auth/logout"): "ends the caller's own session; without one it does nothing",
    ("GET", "/ack/{token}"): "an alert recipient's signed, expiring acknowledgement link: shows "
    "only that one message; a forged token is 404, an expired one 410 (notify)",
    ("POST", "/ack/{token}"): "acknowledges exactly the one delivery its signed token names",
    ("GET", "/r/{token}"): "a person's signed, expiring roll-call link: two buttons, no other "
    "data; forged or expired tokens are refused (roll call)",
    ("POST", "/r/{token}"): "records that one person's answer to that one roll call",
}
# Mounted static files: our CSS/JS and the vendored Leaflet; no data, needed by the log-in page.
PUBLIC_MOUNTS = {"/static", "/vendor/leaflet"}

PARAM_RE = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")
# Unsafe methods run after the reads, and DELETE last, so a wrongly allowed delete cannot hide
# other failures behind 404s for A's objects (it is reported itself).
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    params: tuple[str, ...]
    body_schema: dict[str, Any] | None

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> tuple[list[Endpoint], list[str]]:
    """Every method+path the app serves, and the mounts (paths) it serves files under."""
    spec = app.openapi()
    found: list[Endpoint] = []
    mounts: list[str] = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, Mount):
            mounts.append(ctx.path or "")
            continue
        path = ctx.path or ""
        for method in sorted((ctx.methods or set()) - {"HEAD", "OPTIONS"}):
            op = spec.get("paths", {}).get(path, {}).get(method.lower(), {})
            content = op.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            found.append(Endpoint(method, path, tuple(PARAM_RE.findall(path)), body))
    found.sort(key=lambda e: (METHOD_ORDER.get(e.method, 1), e.path))
    return found, mounts


def fill(path: str, values: dict[str, Any]) -> str:
    return PARAM_RE.sub(lambda m: str(values[m.group(1)]), path)


# -- a plausible body for a write, from the operation's JSON schema -------------------------------

STRING_CANDIDATES = [
    "AUTHZ-1",
    "authz.probe@example.org",
    "2030-01-01",
    "2030-01-01T00:00:00Z",
    "+1 555 0100",
    "Authz probe",
    "x",
]


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def sample(
    schema: dict[str, Any], spec: dict[str, Any], values: dict[str, Any], name: str = ""
) -> Any:
    """A value that satisfies `schema`, preferring facility A's values for fields named after them
    (so a write that names A's objects in its body is also exercised)."""
    schema = _resolve(schema, spec)
    if name in values and name != "code":
        return values[name]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [_resolve(s, spec) for s in schema[key]]
            options = [s for s in options if s.get("type") != "null"] or options
            return sample(options[0], spec, values, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            key: sample(props[key], spec, values, key)
            for key in schema.get("required", [])
            if key in props
        }
    if kind == "array":
        count = schema.get("minItems", 0)
        return [sample(schema.get("items", {}), spec, values) for _ in range(count)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "string":
        if schema.get("format") == "password" or "password" in name:
            return "Correct-Horse-Battery-9"
        pattern = schema.get("pattern")
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 10_000)
        for candidate in STRING_CANDIDATES:
            if lo <= len(candidate) <= hi and (not pattern or re.search(pattern, candidate)):
                return candidate
        return "x" * max(lo, 1)
    return None


# -- the checks ----------------------------------------------------------------------------------


def refused_unauthenticated(ep: Endpoint, resp: httpx.Response) -> str | None:
    """None when the response refuses an anonymous caller properly, else what is wrong."""
    if ep.is_api:
        if resp.status_code != 401:
            return f"expected 401, got {resp.status_code}: {resp.text[:200]}"
        if not resp.headers.get("content-type", "").startswith(PROBLEM):
            return f"401 is not a problem document ({resp.headers.get('content-type')})"
        return None
    if resp.status_code in (302, 303, 307) and resp.headers.get("location", "").startswith(
        "/login"
    ):
        return None
    if (ep.method != "GET" or ep.path.endswith(".json")) and resp.status_code in (401, 403):
        return None  # a form post, or a page's JSON feed, refused outright
    return (
        f"expected a redirect to /login, got {resp.status_code} {resp.headers.get('location', '')}"
    )


async def test_every_route_refuses_anonymous_callers(
    app: FastAPI, client: httpx.AsyncClient, estate: Estate
) -> None:
    found, mounts = endpoints(app)
    assert len(found) > 10, "the route walk found almost nothing: has FastAPI's router changed?"
    values = estate.path_values()
    failures: list[str] = []
    unknown = sorted({f"{ep}: {{{p}}}" for ep in found for p in ep.params if p not in values})
    assert not unknown, (
        "routes with path parameters the authorisation test cannot fill; add them to "
        "Estate.path_values in tests/security/conftest.py:\n  " + "\n  ".join(unknown)
    )
    for mount in mounts:
        if mount not in PUBLIC_MOUNTS:
            failures.append(f"mount {mount}: not in PUBLIC_MOUNTS (static files are public: why?)")
    for ep in found:
        if (ep.method, ep.path) in PUBLIC:
            continue
        url = fill(ep.path, values)
        kwargs: dict[str, Any] = {}
        if ep.method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = sample(ep.body_schema, app.openapi(), values) if ep.body_schema else {}
        resp = await client.request(ep.method, url, follow_redirects=False, **kwargs)
        problem = refused_unauthenticated(ep, resp)
        if problem:
            failures.append(f"{ep}  [{url}]  {problem}")
    # a public route that is gone from the app should leave the allow-list too
    served = {(ep.method, ep.path) for ep in found}
    stale = sorted(f"{m} {p}" for m, p in PUBLIC if (m, p) not in served)
    assert not stale, f"PUBLIC lists routes the app no longer has: {stale}"
    assert not failures, "anonymous callers were not refused:\n  " + "\n  ".join(failures)


def leaks(resp: httpx.Response, estate: Estate) -> str | None:
    """Does a response given to B's caller show any of facility A's data?"""
    text = resp.text
    if MARKER in text or MARKER.lower() in text or "Alfa" in text:
        at = max(text.find(MARKER), text.find(MARKER.lower()), text.find("Alfa"))
        return f"shows facility A's data: ...{text[max(0, at - 80) : at + 80]}..."
    return None


async def _cross_facility(
    app: FastAPI, client: httpx.AsyncClient, estate: Estate, caller: str
) -> list[str]:
    headers = estate.callers[caller]
    found, _mounts = endpoints(app)
    values = estate.path_values()
    spec = app.openapi()
    failures: list[str] = []
    for ep in found:
        if (ep.method, ep.path) in PUBLIC:
            continue
        url = fill(ep.path, values)
        kwargs: dict[str, Any] = {}
        if ep.method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = sample(ep.body_schema, spec, values) if ep.body_schema else {}
        resp = await client.request(
            ep.method, url, headers=headers, follow_redirects=False, **kwargs
        )
        status = resp.status_code
        where = f"{ep}  [{url}]"
        if status >= 500:
            failures.append(f"{where}  server error {status}: {resp.text[:200]}")
            continue
        if ep.params:
            # the path names one of facility A's objects: B's caller must be refused
            redirected_to_login = status in (302, 303, 307) and resp.headers.get(
                "location", ""
            ).startswith("/login")
            if status not in (403, 404) and not redirected_to_login:
                body = json.dumps(kwargs.get("json")) if "json" in kwargs else ""
                failures.append(
                    f"{where}  expected 403/404, got {status} {body}: {resp.text[:200]}"
                )
            elif (
                ep.is_api
                and status in (403, 404)
                and not resp.headers.get("content-type", "").startswith(PROBLEM)
            ):
                failures.append(f"{where}  {status} is not a problem document")
        else:
            # a collection, or a write that does not name A in its path: no A data either way
            # (a 409 may echo the caller's own input, e.g. "username 'alfa-user' is taken")
            if 200 <= status < 300:
                leak = leaks(resp, estate)
                if leak:
                    failures.append(f"{where}  {leak}")
    return failures


async def test_facility_manager_of_b_cannot_reach_facility_a(
    app: FastAPI, client: httpx.AsyncClient, estate: Estate
) -> None:
    failures = await _cross_facility(app, client, estate, "facility_manager@B")
    assert not failures, "facility_manager@B reached facility A:\n  " + "\n  ".join(failures)


async def test_admin_scoped_to_b_cannot_reach_facility_a(
    app: FastAPI, client: httpx.AsyncClient, estate: Estate
) -> None:
    failures = await _cross_facility(app, client, estate, "admin@B")
    assert not failures, (
        "admin@B (every permission, facility B only) reached facility A:\n  "
        + "\n  ".join(failures)
    )


async def test_the_probe_values_are_real(client: httpx.AsyncClient, estate: Estate) -> None:
    """An org-wide admin can reach A's objects with the same values: the refusals above are about
    scope, not about the test naming objects that do not exist."""
    admin = estate.callers["admin@org"]
    a = estate.a
    for url in (
        f"/api/v1/facilities/{a.code}",
        f"/api/v1/facilities/{a.code}/zones/{a.zone_code}",
        f"/api/v1/facilities/{a.code}/devices/{a.device_code}",
        f"/api/v1/facilities/{a.code}/response-units/{a.unit_code}",
        f"/api/v1/people/{a.employee_id}",
        f"/api/v1/users/{a.user_id}",
        f"/api/v1/alarm-rules/{a.rule_id}",
        f"/api/v1/incidents/{a.incident_id}",
    ):
        resp = await client.get(url, headers=admin)
        assert resp.status_code == 200, (url, resp.text)
