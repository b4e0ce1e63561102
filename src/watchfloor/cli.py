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


simulate_app = typer.Typer(
    help="Simulators for the demo: the device stream (default) and the door controller fleet."
)
app.add_typer(simulate_app, name="simulate")


@simulate_app.callback(invoke_without_command=True)
def simulate(
    ctx: typer.Context,
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
    """Play a realistic device stream for the demo: heartbeats, door traffic, motion, incidents.

    `watchfloor simulate doors` runs the simulated door controller fleet instead."""
    if ctx.invoked_subcommand is not None:
        return
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


@simulate_app.command("doors")
def simulate_doors(
    database_url: str = typer.Option(
        "", help="Read the doors from this database (default: WATCHFLOOR_DATABASE_URL)."
    ),
    facility: list[str] = typer.Option(  # noqa: B008
        [], help="Only these facility codes (repeat the option); default every facility."
    ),
    sites: int = typer.Option(
        0, min=0, max=10_000, help="Generate a fleet of this many sites instead of the database."
    ),
    doors_per_site: int = typer.Option(50, min=1, max=100_000, help="Generated doors per site."),
    doors_per_controller: int = typer.Option(
        64, min=1, max=8_000, help="Generated doors per controller."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (keep it on loopback)."),
    port: int | None = typer.Option(
        None, min=0, max=65535, help="OSDP port (default: doors_fleet_url's; 0: any free port)."
    ),
    control_port: int | None = typer.Option(
        None, min=0, max=65535, help="Fault-control port (default: the OSDP port + 1)."
    ),
) -> None:
    """Run the simulated OSDP door controller fleet (its own process); see docs/doors.md."""
    import os

    from watchfloor.lockdown import simulator
    from watchfloor.lockdown.drivers.osdp import parse_endpoint

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if database_url:
        os.environ["WATCHFLOOR_DATABASE_URL"] = database_url
        get_settings.cache_clear()
    settings = get_settings()
    if sites:
        doors = simulator.generated_fleet(sites, doors_per_site, doors_per_controller)
    else:
        doors = run_async(simulator.fleet_from_database, facility or None)
        if not doors:
            typer.echo("No OSDP doors in the database (load the demo first?).", err=True)
            raise typer.Exit(1)
    osdp_port = parse_endpoint(settings.doors_fleet_url)[1] if port is None else port
    if control_port is None:
        control_port = osdp_port + 1 if osdp_port else 0
    simulator.run(
        doors,
        host=host,
        port=osdp_port,
        control_port=control_port,
        outputs_per_pd=settings.doors_outputs_per_pd,
        scbk=bytes.fromhex(settings.doors_osdp_scbk) if settings.doors_osdp_scbk else None,
    )


def _register_domain_commands() -> None:
    from watchfloor.assessments.cli import app as assessments_app
    from watchfloor.audit.cli import register as register_audit
    from watchfloor.auth.cli import register as register_auth
    from watchfloor.sites.cli import register as register_sites

    register_audit(app)
    register_auth(app)
    register_sites(app)
    app.add_typer(assessments_app, name="assessments")
    from watchfloor.training.cli import app as training_app

    app.add_typer(training_app, name="training")


_register_domain_commands()


if __name__ == "__main__":
    app()
