"""`watchfloor import`, `watchfloor export`, `watchfloor demo` and `watchfloor demo-code`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from watchfloor.config import get_settings
from watchfloor.sites.importer import ImportFailed, ImportResult, ProgressFn

MAX_SHOWN_ISSUES = 200


class ExportFormat(StrEnum):
    YAML = "yaml"
    CSV = "csv"


@contextmanager
def _progress_bar(enabled: bool = True) -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr (only when stderr is a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _print_issues(exc: ImportFailed) -> None:
    for issue in exc.issues[:MAX_SHOWN_ISSUES]:
        typer.echo(f"  {issue}", err=True)
    more = len(exc.issues) - MAX_SHOWN_ISSUES
    if more > 0:
        typer.echo(f"  ... and {more} more", err=True)
    typer.echo(
        f"Nothing was imported: {len(exc.issues)} problem(s) above. Fix them and run the "
        "import again (see docs/import-format.md for the format).",
        err=True,
    )


async def _session_run(fn: Any) -> Any:
    from watchfloor.clock import SystemClock
    from watchfloor.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as db:
            return await fn(db, SystemClock())
    finally:
        await engine.dispose()


async def _import(paths: list[Path], progress: ProgressFn | None) -> ImportResult:
    from watchfloor.sites.importer import import_paths

    async def work(db: Any, clock: Any) -> ImportResult:
        result = await import_paths(db, clock, "system:cli", paths, progress=progress)
        await db.commit()
        return result

    result: ImportResult = await _session_run(work)
    return result


def import_command(
    paths: list[Path] = typer.Argument(  # noqa: B008
        ...,
        help="An organisation YAML file, or CSV files / a directory of them.",
        metavar="FILE_OR_DIR...",
    ),
) -> None:
    """Import an organisation from YAML or CSV: all or nothing, re-runnable (updates by code)."""
    from watchfloor.cli import run_async

    run_async(_ensure_schema)
    try:
        with _progress_bar() as progress:
            result = run_async(_import, paths, progress)
    except ImportFailed as exc:
        _print_issues(exc)
        raise typer.Exit(1) from None
    typer.echo(f"Imported: {result.summary()}.", err=True)


async def _export() -> dict[str, Any]:
    from watchfloor.sites.importer import export_document

    async def work(db: Any, _clock: Any) -> dict[str, Any]:
        return await export_document(db)

    data: dict[str, Any] = await _session_run(work)
    return data


def export_command(
    out: Path = typer.Argument(  # noqa: B008
        ..., help="YAML: the file to write ('-' for stdout). CSV: the directory to write into."
    ),
    fmt: ExportFormat = typer.Option(ExportFormat.YAML, "--format", "-f", help="yaml or csv."),
) -> None:
    """Export the whole organisation in the format `watchfloor import` reads."""
    from watchfloor.cli import run_async
    from watchfloor.sites.importer import dump_yaml, write_csv

    data = run_async(_export)
    if fmt is ExportFormat.YAML:
        text = dump_yaml(data)
        if str(out) == "-":
            sys.stdout.write(text)
            return
        out.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {out}", err=True)
    else:
        if out.exists() and not out.is_dir():
            typer.echo(f"{out} is a file; CSV export needs a directory.", err=True)
            raise typer.Exit(2)
        files = write_csv(data, out)
        typer.echo(f"Wrote {len(files)} CSV files to {out}/", err=True)


async def _ensure_schema() -> None:
    from watchfloor.cli import _upgrade

    await _upgrade()


async def _load_demo() -> tuple[ImportResult, list[str]]:
    from watchfloor.sites.demo import ensure_demo_accounts, load_demo

    async def work(db: Any, clock: Any) -> tuple[ImportResult, list[str]]:
        from watchfloor.assessments.demo import load_demo_assessments
        from watchfloor.drills.demo import load_demo_drills
        from watchfloor.training.demo import load_demo_training

        result = await load_demo(db, clock)
        accounts = await ensure_demo_accounts(db, clock)
        # most demo facilities have a completed assessment with findings (issue 6)
        await load_demo_assessments(db, clock)
        # drill schedules, past drills with after-action reports; courses and completions
        await load_demo_drills(db, clock)
        await load_demo_training(db, clock)
        await db.commit()
        return result, accounts

    out: tuple[ImportResult, list[str]] = await _session_run(work)
    return out


def _command_path() -> str:
    """How to run this command again from where the user stands (make demo has no PATH entry)."""
    here = Path(sys.argv[0])
    if here.name == "watchfloor" and here.parent != Path("."):
        try:
            return str(here.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(here)
    return "watchfloor"


def demo_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Load the demo, then exit."),
    no_simulate: bool = typer.Option(
        False,
        "--no-simulate",
        help="Serve without the device simulator and the simulated door controllers.",
    ),
) -> None:
    """Load the fictional demo agency and demo accounts, then serve (unless --no-serve)."""
    from watchfloor.cli import run_async
    from watchfloor.sites.demo import DEMO_ACCOUNTS, DEMO_PASSWORD

    run_async(_ensure_schema)
    try:
        result, created = run_async(_load_demo)
    except ImportFailed as exc:  # only if the shipped data were broken
        _print_issues(exc)
        raise typer.Exit(1) from None
    typer.echo(f"Demo organisation loaded: {result.summary()}.")
    if created:
        typer.echo(f"Created demo accounts: {', '.join(created)}.")
    typer.echo("")
    typer.echo(f"  Open      http://{host}:{port}/")
    typer.echo(f"  Password  {DEMO_PASSWORD}  (every demo account)")
    for acct in DEMO_ACCOUNTS:
        where = f"at {acct.facility}" if acct.facility else "whole organisation"
        typer.echo(f"  Log in as {acct.username:<9} {acct.role.value} · {where}")
    command = _command_path()
    typer.echo("  After the password the console asks for a 6-digit code. Get it with")
    typer.echo(f"      {command} demo-code admin")
    typer.echo("  (or add the account's TOTP secret, printed by that command with --secret,")
    typer.echo("  to an authenticator app). Demo accounts only: real accounts enrol their own.")
    typer.echo("")
    if no_serve:
        return
    sys.stdout.flush()  # the log-in details must show before the server's log
    from watchfloor.cli import serve

    children = [] if no_simulate else [_start_simulator(host, port), _start_door_fleet()]
    try:
        serve(host=host, port=port, workers=1)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def _start_door_fleet() -> subprocess.Popen[bytes]:
    """`watchfloor simulate doors` as a child process: the demo's door controllers, speaking
    OSDP on loopback, so a lockdown from the console locks (simulated) doors (issue 5)."""
    typer.echo("  Door controllers: simulated over OSDP on loopback (watchfloor simulate doors)")
    return subprocess.Popen(  # noqa: S603 - our own command, fixed arguments
        [sys.executable, "-m", "watchfloor.cli", "simulate", "doors"]
    )


def _start_simulator(host: str, port: int) -> subprocess.Popen[bytes]:
    """`watchfloor simulate` as a child process, so the demo floor is alive (issue 4)."""
    connect = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    typer.echo("  Device simulator: on (watchfloor demo --no-simulate turns it off)")
    return subprocess.Popen(  # noqa: S603 - our own command, fixed arguments
        [sys.executable, "-m", "watchfloor.cli", "simulate", "--url", f"http://{connect}:{port}"]
    )


async def _demo_code(username: str) -> str | None:
    from sqlalchemy import select

    from watchfloor.auth.models import User

    async def work(db: Any, _clock: Any) -> str | None:
        secret: str | None = await db.scalar(
            select(User.totp_secret).where(User.username == username)
        )
        return secret

    found: str | None = await _session_run(work)
    return found


def demo_code_command(
    username: str = typer.Argument(..., help="A demo account: admin, operator, manager, guard."),
    show_secret: bool = typer.Option(
        False, "--secret", help="Also print the account's TOTP secret, for an authenticator app."
    ),
) -> None:
    """Print the current 6-digit TOTP code of a demo account (never of a real account)."""
    import pyotp

    from watchfloor.cli import run_async
    from watchfloor.sites.demo import DEMO_ACCOUNTS, demo_totp_secret

    names = [a.username for a in DEMO_ACCOUNTS]
    username = username.strip().lower()
    if username not in names:
        typer.echo(
            f"'{username}' is not a demo account; demo-code only works for {', '.join(names)}.",
            err=True,
        )
        raise typer.Exit(2)
    secret = demo_totp_secret(username)
    stored = run_async(_demo_code, username)
    if stored is None:
        typer.echo(f"There is no '{username}' account yet: run `watchfloor demo` first.", err=True)
        raise typer.Exit(1)
    if stored != secret:
        typer.echo(
            f"'{username}' no longer uses the demo TOTP secret, so it is treated as a real "
            "account: use its authenticator app.",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(pyotp.TOTP(secret).now())
    if show_secret:
        typer.echo(f"TOTP secret (demo only): {secret}", err=True)


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("export")(export_command)
    app.command("demo")(demo_command)
    app.command("demo-code")(demo_code_command)
