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


@app.command()
def simulate(
    url: str = typer.Option("http://127.0.0.1:8000", help="The Watchfloor server to send to."),
    token: str = typer.Option(
        "", help="A device token; without one the simulator creates its own in the database."
    ),
    mqtt: str = typer.Option("", help="Send over MQTT instead (e.g. mqtt://127.0.0.1:1883)."),
    rate: float = typer.Option(5.0, min=0, max=100_000, help="Background events per second."),
    duration: float = typer.Option(0, min=0, help="Stop after this many seconds (0: run on)."),
    seed: int = typer.Option(-1, help="Random seed for a repeatable run (-1: random)."),
    facility: list[str] = typer.Option(  # noqa: B008
        [], help="Only these facility codes (repeat the option); default every facility."
    ),
) -> None:
    """Play a realistic device stream for the demo: heartbeats, door traffic, motion, incidents."""
    from watchfloor.simulate import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per batch is noise
    try:
        stats = run_async(
            run,
            url=url,
            token=token or None,
            mqtt_url=mqtt or None,
            rate=rate,
            duration=duration,
            seed=None if seed < 0 else seed,
            facilities=facility or None,
        )
    except KeyboardInterrupt:
        return
    typer.echo(f"Simulator finished: {stats.line()}.", err=True)


def _register_domain_commands() -> None:
    from watchfloor.audit.cli import register as register_audit
    from watchfloor.auth.cli import register as register_auth
    from watchfloor.sites.cli import register as register_sites

    register_audit(app)
    register_auth(app)
    register_sites(app)


_register_domain_commands()


if __name__ == "__main__":
    app()
