"""The `watchfloor` command: serve, db upgrade, demo, import/export, audit verify, users, tokens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer

from watchfloor.config import get_settings

T = TypeVar("T")

app = typer.Typer(
    help="Watchfloor: security operations for organisations with many facilities.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def run_async(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    return asyncio.run(fn(*args, **kwargs))


async def _upgrade() -> str:
    from watchfloor.db import make_engine
    from watchfloor.migrate import upgrade

    settings = get_settings()
    engine = make_engine(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return engine.url.render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema."""
    url = run_async(_upgrade)
    typer.echo(f"Database is up to date: {url}", err=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (use PostgreSQL for more than one)."),
) -> None:
    """Serve the API and the console."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_async(_upgrade)
    typer.echo(f"Watchfloor is serving at http://{host}:{port}/", err=True)
    uvicorn.run(
        "watchfloor.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
    )


def _register_domain_commands() -> None:
    from watchfloor.audit.cli import register as register_audit
    from watchfloor.auth.cli import register as register_auth
    from watchfloor.sites.cli import register as register_sites

    register_audit(app)
    register_auth(app)
    register_sites(app)


_register_domain_commands()
