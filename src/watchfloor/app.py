"""The FastAPI application: settings, database, every domain's router, problem details."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from watchfloor import __version__
from watchfloor.clock import Clock, SystemClock
from watchfloor.config import Settings, get_settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.deps import DB
from watchfloor.limits import BodySizeLimit
from watchfloor.problems import install_problem_handlers

#: room for the multipart envelope (boundaries, headers, the form's other fields) of an upload
MULTIPART_ROOM = 64 * 1024


def upload_limits(settings: Settings) -> list[tuple[re.Pattern[str], int]]:
    """Routes that take files, each allowed a body of its own file limit (plus the envelope)
    instead of max_body_bytes; every other request keeps max_body_bytes."""
    evidence = max(settings.max_body_bytes, settings.assessments_attachment_max_bytes)
    lms_export = max(settings.max_body_bytes, settings.training_import_max_bytes)
    return [
        (
            re.compile(r"(/api/v1)?/assessments/findings/[^/]+/evidence"),
            evidence + MULTIPART_ROOM,
        ),
        (re.compile(r"/api/v1/training/imports|/training/import"), lms_export + MULTIPART_ROOM),
    ]


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the alarm pipeline (bus, outbox relay, batcher, escalation, supervision, handlers)
        runtime = _app.state.runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await engine.dispose()

    app = FastAPI(
        title="Watchfloor",
        version=__version__,
        summary="Security operations for organisations with many facilities.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.secret_key = settings.resolved_secret_key()
    from watchfloor.runtime import Runtime

    # built now (the batcher already accepts events), started by the lifespan
    app.state.runtime = Runtime(settings, app.state.sessionmaker, app.state.clock, app=app)
    install_problem_handlers(app)

    @app.get("/api/health", tags=["health"])
    async def health(db: DB) -> dict[str, Any]:
        """Liveness and database reachability, for load balancers and monitoring."""
        await db.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "database": engine.dialect.name}

    from watchfloor.audit.api import router as audit_router
    from watchfloor.auth.api import router as auth_router
    from watchfloor.events.api import router as events_router
    from watchfloor.people.api import router as people_router
    from watchfloor.sites.api import router as sites_router
    from watchfloor.web.routes import mount_static
    from watchfloor.web.routes import router as web_router

    # Device events first: the router tries its routes in order, and ingest is by far the
    # busiest (no other router shares its paths).
    app.include_router(events_router, prefix="/api/v1")
    for router in (sites_router, people_router, auth_router, audit_router):
        app.include_router(router, prefix="/api/v1")
    from watchfloor.incidents.escalation_api import router as escalation_router
    from watchfloor.panic.api import router as panic_router

    app.include_router(escalation_router, prefix="/api/v1")  # escalation policies, system health
    app.include_router(panic_router, prefix="/api/v1")  # staff panic
    from watchfloor.alarms.api import router as alarms_router
    from watchfloor.incidents.api import router as incidents_router

    app.include_router(alarms_router, prefix="/api/v1")  # alarm queue, alarm rules
    app.include_router(incidents_router, prefix="/api/v1")  # incidents, dispatch, reports
    from watchfloor.events.test_signal_api import router as test_signal_router
    from watchfloor.incidents.targets_api import router as targets_router

    app.include_router(targets_router, prefix="/api/v1")  # response-time targets
    app.include_router(test_signal_router, prefix="/api/v1")  # end-to-end test signals
    from watchfloor.lockdown.api import router as lockdown_router
    from watchfloor.notify.api import router as notify_router
    from watchfloor.rollcall.api import router as rollcall_router

    app.include_router(lockdown_router, prefix="/api/v1")  # lockdowns and door states
    app.include_router(notify_router, prefix="/api/v1")  # alerts, deliveries, CAP feed
    app.include_router(rollcall_router, prefix="/api/v1")  # roll calls and answers
    from watchfloor.assessments.api import router as assessments_router
    from watchfloor.drills.api import router as drills_router
    from watchfloor.rollout.api import router as rollout_router
    from watchfloor.training.api import router as training_router
    from watchfloor.web.assessments_pages import router as assessments_pages
    from watchfloor.web.drills_pages import router as drills_pages
    from watchfloor.web.lockdown_pages import router as lockdown_pages
    from watchfloor.web.notify_pages import router as notify_pages
    from watchfloor.web.rollcall_pages import router as rollcall_pages
    from watchfloor.web.rollout_pages import router as rollout_pages
    from watchfloor.web.training_pages import router as training_pages

    app.include_router(assessments_router, prefix="/api/v1")  # assessments, FSL, findings
    app.include_router(rollout_router, prefix="/api/v1")  # directives, rollout, scorecards
    app.include_router(drills_router, prefix="/api/v1")  # drill schedules, runs, AARs
    app.include_router(training_router, prefix="/api/v1")  # courses, requirements, records
    for pages in (
        lockdown_pages,
        notify_pages,
        rollcall_pages,
        assessments_pages,
        rollout_pages,
        drills_pages,
        training_pages,
    ):
        app.include_router(pages)
    app.include_router(web_router)
    mount_static(app)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, uploads=upload_limits(settings)
    )
    return app
