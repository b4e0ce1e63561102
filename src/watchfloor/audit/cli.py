"""`watchfloor audit verify`."""

from __future__ import annotations

import typer

from watchfloor.config import get_settings

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


async def _verify() -> tuple[int, list[str]]:
    from watchfloor.audit.service import verify
    from watchfloor.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as db:
            count, findings = await verify(db)
    finally:
        await engine.dispose()
    return count, [str(f) for f in findings]


@audit_app.command("verify")
def verify_cmd() -> None:
    """Check every record's hash and link; name each altered, deleted or re-ordered record."""
    from watchfloor.cli import run_async

    count, findings = run_async(_verify)
    if findings:
        for line in findings:
            typer.echo(f"TAMPERED {line}")
        typer.echo(
            f"Audit log verification FAILED: {len(findings)} problem(s) in {count} records.",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"Audit log intact: {count} records verified.")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
