"""`watchfloor training ...`: import an LMS export (with a progress bar for large files), send the
managers' reminders now."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from watchfloor.config import get_settings

app = typer.Typer(help="Training records, LMS imports and reminders.", no_args_is_help=True)


async def _with_session(fn: Any) -> Any:
    from watchfloor.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as session:
            return await fn(session)
    finally:
        await engine.dispose()


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),  # noqa: B008
    max_rows: int = typer.Option(
        5_000_000, "--max-rows", help="Refuse a file with more data rows than this."
    ),
) -> None:
    """Import completions from an LMS export (CSV: employee_id, course_code, completed_on). All
    or nothing: if any row is bad, every bad row is listed and nothing is written."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from watchfloor.auth.principal import SYSTEM
    from watchfloor.clock import SystemClock
    from watchfloor.problems import Problem
    from watchfloor.training import service

    data = file.read_bytes()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(), transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase.capitalize(), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        async def _run(session: Any) -> service.ImportOutcome:
            outcome = await service.import_completions(
                session, SystemClock(), SYSTEM, data, filename=file.name,
                max_bytes=len(data) + 1, max_rows=max_rows, progress=progress,
            )  # fmt: skip
            await session.commit()
            return outcome

        try:
            outcome = asyncio.run(_with_session(_run))
        except Problem as exc:
            bar.stop()
            rows = getattr(exc, "row_errors", None)
            for e in rows or []:
                typer.echo(f"  row {e.row}, {e.column} = {e.value!r}: {e.problem}", err=True)
            typer.echo(f"Not imported: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"Imported {file.name}: {outcome.added} new records, {outcome.skipped} already on "
        f"record, {outcome.rows} rows, {outcome.facilities} facilities.",
        err=True,
    )


@app.command("remind")
def remind_command() -> None:
    """Send today's reminder digests now to every facility with staff behind (at most one per
    facility per day, as the daily loop does, ignoring the configured hour)."""
    from watchfloor.clock import SystemClock
    from watchfloor.db import make_engine, make_sessionmaker
    from watchfloor.training import service

    settings = get_settings()

    async def _run() -> list[service.ReminderOutcome]:
        engine = make_engine(settings)
        try:
            return await service.send_due_reminders(
                make_sessionmaker(engine), SystemClock(),
                due_soon_days=settings.training_due_soon_days, hour=0,
                public_url=settings.public_url,
            )  # fmt: skip
        finally:
            await engine.dispose()

    for o in asyncio.run(_run()):
        typer.echo(f"{o.facility_code}: {o.why}", err=True)
