"""The FastAPI application: settings, database, every domain's router, problem details."""

from __future__ import annotations

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


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
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
    install_problem_handlers(app)

    @app.get("/api/health", tags=["health"])
    async def health(db: DB) -> dict[str, Any]:
        """Liveness and database reachability, for load balancers and monitoring."""
        await db.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "database": engine.dialect.name}

    from watchfloor.audit.api import router as audit_router
    from watchfloor.auth.api import router as auth_router
    from watchfloor.people.api import router as people_router
    from watchfloor.sites.api import router as sites_router
    from watchfloor.web.routes import mount_static
    from watchfloor.web.routes import router as web_router

    for router in (sites_router, people_router, auth_router, audit_router):
        app.include_router(router, prefix="/api/v1")
    app.include_router(web_router)
    mount_static(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
