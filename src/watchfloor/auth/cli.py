"""`watchfloor users ...` and `watchfloor tokens ...`: accounts and API tokens from the shell.

Every command acts as the actor "system:cli" and is written to the audit log. Scripts can rely on
`watchfloor tokens create` printing the new token alone on stdout; messages go to stderr.

A user created here sets up an authenticator app (TOTP) at first log-in, in the console. With
`--totp` the command enrols one at once instead and prints the otpauth:// URI, a QR code to scan
and the one-time recovery codes.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth.service import ScopeSpec
from watchfloor.clock import Clock
from watchfloor.problems import Problem

T = TypeVar("T")
ACTOR = "system:cli"

users_app = typer.Typer(help="User accounts and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for devices and integrations.", no_args_is_help=True)

RoleOpt = typer.Option(
    ...,
    "--role",
    help="admin, programme_manager, operator, facility_manager, guard, staff, responder, "
    "threat_assessor.",
)
FacilityOpt = typer.Option(None, "--facility", help="Grant for this facility code.")
RegionOpt = typer.Option(None, "--region", help="Grant for this region code.")
OrgOpt = typer.Option(False, "--org", help="Grant for the whole organisation.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _scope(facility: str | None, region: str | None, org: bool) -> ScopeSpec:
    chosen = [
        flag for flag, on in (("--facility", facility), ("--region", region), ("--org", org)) if on
    ]
    if len(chosen) != 1:
        given = f" (you gave {', '.join(chosen)})" if chosen else ""
        raise _fail(
            "say where the role applies with exactly one of --facility CODE, --region CODE "
            f"or --org{given}.",
            2,
        )
    if facility:
        return ScopeSpec.facility(facility)
    if region:
        return ScopeSpec.region(region)
    return ScopeSpec.org()


def _run(fn: Callable[..., Awaitable[T]]) -> T:
    """Run `fn(db, clock)` against the configured (and migrated) database, then commit."""
    from watchfloor.cli import run_async
    from watchfloor.clock import SystemClock
    from watchfloor.config import get_settings
    from watchfloor.db import make_engine, make_sessionmaker
    from watchfloor.migrate import upgrade

    async def _go() -> T:
        engine = make_engine(get_settings())
        try:
            await upgrade(engine)
            async with make_sessionmaker(engine)() as db:
                result = await fn(db, SystemClock())
                await db.commit()
                return result
        finally:
            await engine.dispose()

    from sqlalchemy.exc import DBAPIError

    try:
        return run_async(_go)
    except Problem as exc:
        raise _fail(exc.detail) from None
    except DBAPIError as exc:
        raise _fail(f"the database refused the change: {exc.orig}") from None


def _grant_text(role: str, scope: str, code: str | None) -> str:
    return f"{role}@{scope}" + (f":{code}" if code else "")


# --------------------------------------------------------------------------- users


@users_app.command("create")
def users_create(
    username: str = typer.Argument(..., help="Log-in name (stored in lower case)."),
    role: str = RoleOpt,
    facility: str | None = FacilityOpt,
    region: str | None = RegionOpt,
    org: bool = OrgOpt,
    display_name: str = typer.Option("", "--display-name", help="Name shown in the console."),
    email: str = typer.Option("", "--email"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    totp: bool = typer.Option(
        False,
        "--totp",
        help="Enrol an authenticator app now and print its QR code and recovery codes "
        "(otherwise the user sets one up at first log-in).",
    ),
) -> None:
    """Create a user account with one role."""
    from watchfloor.auth import service

    spec = _scope(facility, region, org)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def _create(
        db: AsyncSession, clock: Clock
    ) -> tuple[str, int, tuple[str, str, list[str]] | None]:
        user = await service.create_user(
            db,
            clock,
            ACTOR,
            username=username,
            password=password,
            display_name=display_name,
            email=email,
            grants=[(role, spec)],
        )
        enrolled = await service.enrol_totp_now(db, clock, ACTOR, user) if totp else None
        return user.username, user.id, enrolled

    name, user_id, enrolled = _run(_create)
    typer.echo(f"Created user '{name}' (id {user_id}).", err=True)
    if enrolled is None:
        typer.echo(
            "They set up an authenticator app (TOTP) at their first log-in in the console.",
            err=True,
        )
        return
    secret, uri, codes = enrolled
    typer.echo("Scan this QR code with an authenticator app (or enter the secret by hand):")
    typer.echo(service.totp_qr_terminal(uri))
    typer.echo(f"URI:    {uri}")
    typer.echo(f"Secret: {secret}")
    typer.echo("One-time recovery codes (hand them over now; they are not shown again):")
    for code in codes:
        typer.echo(f"  {code}")


@users_app.command("list")
def users_list() -> None:
    """Every account: id, username, state, MFA, roles."""
    from watchfloor.auth import service

    async def _list(db: AsyncSession, clock: Clock) -> list[tuple[str, ...]]:
        users = await service.list_users(db)
        grants = await service.describe_grants(db, [g for u in users for g in u.grants])
        by_id = {g.id: g for g in grants}
        now = clock.now()
        rows: list[tuple[str, ...]] = []
        for u in users:
            state = "active" if u.is_active else "disabled"
            if u.locked_until is not None and u.locked_until > now:
                state = "locked"
            roles = ", ".join(
                _grant_text(by_id[g.id].role, by_id[g.id].scope, by_id[g.id].code) for g in u.grants
            )
            mfa = "totp" if u.totp_enabled else "none"
            rows.append((str(u.id), u.username, u.display_name, state, mfa, roles or "-"))
        return rows

    rows = _run(_list)
    header = ("ID", "USERNAME", "NAME", "STATE", "MFA", "ROLES")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])


@users_app.command("unlock")
def users_unlock(username: str = typer.Argument(...)) -> None:
    """Clear failed log-ins and the lock-out of an account."""
    from watchfloor.auth import service

    async def _unlock(db: AsyncSession, clock: Clock) -> str:
        user = await service.get_user_by_username(db, username)
        await service.unlock_user(db, clock, ACTOR, user)
        return user.username

    typer.echo(f"Unlocked '{_run(_unlock)}'.", err=True)


@users_app.command("grant")
def users_grant(
    username: str = typer.Argument(...),
    role: str = RoleOpt,
    facility: str | None = FacilityOpt,
    region: str | None = RegionOpt,
    org: bool = OrgOpt,
) -> None:
    """Give an account another role for a facility, a region or the organisation."""
    from watchfloor.auth import service

    spec = _scope(facility, region, org)

    async def _grant(db: AsyncSession, clock: Clock) -> str:
        user = await service.get_user_by_username(db, username)
        await service.add_grant(db, clock, ACTOR, user, role, spec)
        return user.username

    name = _run(_grant)
    typer.echo(f"Granted {_grant_text(role, spec.kind.value, spec.code)} to '{name}'.", err=True)


@users_app.command("reset-mfa")
def users_reset_mfa(username: str = typer.Argument(...)) -> None:
    """Forget an account's authenticator app; they set up a new one at next log-in."""
    from watchfloor.auth import service

    async def _reset(db: AsyncSession, clock: Clock) -> str:
        user = await service.get_user_by_username(db, username)
        await service.reset_mfa(db, clock, ACTOR, user)
        return user.username

    typer.echo(f"Reset MFA of '{_run(_reset)}'.", err=True)


# --------------------------------------------------------------------------- tokens


@tokens_app.command("create")
def tokens_create(
    role: str = RoleOpt,
    facility: str | None = FacilityOpt,
    region: str | None = RegionOpt,
    org: bool = OrgOpt,
    name: str = typer.Option(..., "--name", help="What uses the token, e.g. door-feed-DAL."),
) -> None:
    """Create an API token and print it, alone, on stdout (it is not shown again)."""
    from watchfloor.auth import service

    spec = _scope(facility, region, org)

    async def _create(db: AsyncSession, clock: Clock) -> tuple[int, str]:
        token, secret = await service.create_token(
            db, clock, ACTOR, name=name, role=role, scope=spec
        )
        return token.id, secret

    token_id, secret = _run(_create)
    typer.echo(
        f"Created API token {token_id} '{name}' ({_grant_text(role, spec.kind.value, spec.code)})."
        " Store it now: it is not shown again.",
        err=True,
    )
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list() -> None:
    """Every API token: id, prefix, name, role and scope, last use, revocation."""
    from watchfloor.auth import service

    async def _list(db: AsyncSession, clock: Clock) -> list[tuple[str, ...]]:
        tokens = await service.list_tokens(db)
        grants = await service.describe_grants(db, [g for t in tokens for g in t.grants])
        by_id = {g.id: g for g in grants}
        rows: list[tuple[str, ...]] = []
        for t in tokens:
            roles = ", ".join(
                _grant_text(by_id[g.id].role, by_id[g.id].scope, by_id[g.id].code) for g in t.grants
            )
            used = t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "never"
            state = (
                "revoked " + t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "active"
            )
            rows.append((str(t.id), t.prefix, t.name, roles, used, state))
        return rows

    rows = _run(_list)
    header = ("ID", "PREFIX", "NAME", "ROLE", "LAST USED", "STATE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    for r in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: int = typer.Argument(
        ..., min=1, max=2_147_483_647, help="The token's id (tokens list)."
    ),
) -> None:
    """Revoke an API token: it stops working on its next request."""
    from watchfloor.auth import service

    async def _revoke(db: AsyncSession, clock: Clock) -> str:
        token = await service.revoke_token(db, clock, ACTOR, token_id)
        return token.name

    typer.echo(f"Revoked API token {token_id} '{_run(_revoke)}'.", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
