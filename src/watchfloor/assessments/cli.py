"""`watchfloor assessments ...`: load the organisation's edition of the FSL standard, show the one
in force, list the facilities whose assessment is due."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from watchfloor.config import get_settings

app = typer.Typer(help="Facility security assessments and the FSL standard.", no_args_is_help=True)


async def _with_session(fn: Any) -> Any:
    from watchfloor.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as session:
            return await fn(session)
    finally:
        await engine.dispose()


@app.command("load-standard")
def load_standard(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),  # noqa: B008
    check: bool = typer.Option(False, "--check", help="Only validate the file; store nothing."),
) -> None:
    """Validate a standard written as YAML (see docs/assessments.md) and put it in force."""
    from watchfloor.assessments import fsl, service
    from watchfloor.clock import SystemClock
    from watchfloor.problems import Problem

    text = file.read_text(encoding="utf-8")
    try:
        standard = fsl.parse_standard_yaml(text)
    except Problem as exc:
        for err in exc.errors or []:
            typer.echo(f"  {'.'.join(err['loc'])}: {err['msg']}", err=True)
        typer.echo(f"Not loaded: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    if check:
        typer.echo(f"Valid: {service.standard_label(standard)}", err=True)
        return

    async def _load(session: Any) -> None:
        await service.load_standard(session, SystemClock(), "system:cli", text)
        await session.commit()

    asyncio.run(_with_session(_load))
    typer.echo(f"Loaded and in force: {service.standard_label(standard)}", err=True)


@app.command("show-standard")
def show_standard() -> None:
    """Print the standard in force (JSON)."""
    from watchfloor.assessments import service

    async def _show(session: Any) -> dict[str, Any]:
        standard = await service.active_standard(session)
        return standard.model_dump(mode="json")

    typer.echo(json.dumps(asyncio.run(_with_session(_show)), indent=2))


@app.command("due")
def due(
    all_facilities: bool = typer.Option(False, "--all", help="Also list facilities up to date."),
) -> None:
    """Facilities whose assessment is overdue or due soon, overdue first."""
    from watchfloor.assessments import service
    from watchfloor.auth.principal import Scope
    from watchfloor.clock import SystemClock

    settings = get_settings()

    async def _due(session: Any) -> list[Any]:
        return await service.due_list(
            session,
            Scope(everything=True),
            SystemClock().now(),
            due_soon_days=settings.assessments_due_soon_days,
        )

    for e in asyncio.run(_with_session(_due)):
        if e.status == "ok" and not all_facilities:
            continue
        when = e.next_due.date().isoformat() if e.next_due else "now"
        typer.echo(f"{e.status:10} {e.facility.code:12} FSL {e.level or '-':4} due {when}")
