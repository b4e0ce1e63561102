"""RFC 9457 problem details: every API error is an application/problem+json document."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://watchfloor.dev/problems/"


class Problem(Exception):
    """Raise from a service or router; rendered as a problem document."""

    status = 400
    slug = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.title = title or HTTPStatus(self.status).phrase
        self.errors = errors
        self.headers = headers


class NotFound(Problem):
    status = 404
    slug = "not-found"


class Unauthorized(Problem):
    status = 401
    slug = "unauthenticated"

    def __init__(self, detail: str = "Log in or send a valid API token.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    status = 403
    slug = "forbidden"


class Conflict(Problem):
    status = 409
    slug = "conflict"


class InvalidInput(Problem):
    status = 422
    slug = "invalid-input"


class TooManyRequests(Problem):
    status = 429
    slug = "too-many-requests"


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str,
    title: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    cleaned = []
    for err in errors:
        cleaned.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return cleaned


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            slug=exc.slug,
            title=exc.title,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(exc.errors())
        fields = ", ".join(".".join(e["loc"]) + ": " + e["msg"] for e in errors[:5])
        return problem_response(
            422,
            f"The request is not valid: {fields}",
            slug="invalid-input",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
        return problem_response(
            exc.status_code,
            detail,
            slug=slug,
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("watchfloor").exception("unhandled error on %s", request.url.path)
        return problem_response(
            500,
            "Something went wrong on the server. It has been logged; try again, and if it "
            "persists tell your Watchfloor administrator the time it happened.",
            slug="internal-error",
            instance=request.url.path,
        )
