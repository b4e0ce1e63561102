"""`watchfloor users ...` and `watchfloor tokens ...` against a real (test) database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_helpers import seed_sites
from sqlalchemy import select
from typer.testing import CliRunner

from watchfloor.audit.models import AuditRecord
from watchfloor.auth import service
from watchfloor.auth.deps import principal_from_token
from watchfloor.auth.models import User
from watchfloor.cli import app as cli_app
from watchfloor.clock import FakeClock, SystemClock
from watchfloor.config import Settings, get_settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.problems import Problem


@pytest.fixture
def cli_db(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test database, seeded with sites, and the CLI pointed at it."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", database_url)
    monkeypatch.setenv("WATCHFLOOR_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()

    async def _seed() -> None:
        engine = make_engine(Settings(database_url=database_url, var_dir=tmp_path / "var"))
        async with make_sessionmaker(engine)() as db:
            await seed_sites(db, FakeClock())
            await db.commit()
        await engine.dispose()

    asyncio.run(_seed())
    yield database_url
    get_settings.cache_clear()


def _with_db(url: str, fn):  # type: ignore[no-untyped-def]
    async def _go():  # type: ignore[no-untyped-def]
        engine = make_engine(Settings(database_url=url))
        try:
            async with make_sessionmaker(engine)() as db:
                return await fn(db)
        finally:
            await engine.dispose()

    return asyncio.run(_go())


def _invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli_app, list(args), input=input)


def test_tokens_create_prints_only_the_token(cli_db: str) -> None:
    r = _invoke("tokens", "create", "--role", "guard", "--facility", "F1", "--name", "feed-F1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wf_")
    secret = lines[0]
    assert "Created API token" in r.stderr

    async def _check(db):  # type: ignore[no-untyped-def]
        principal = await principal_from_token(db, SystemClock(), secret, None)
        assert principal is not None
        assert principal.grants[0].role == "guard"
        assert principal.allows(
            "sites:read", facility_id=principal.grants[0].facility_id, region_id=None
        )
        audit = (
            await db.execute(select(AuditRecord).where(AuditRecord.action == "token.create"))
        ).scalar_one()
        assert audit.actor == "system:cli"

    _with_db(cli_db, _check)

    # list and revoke
    r = _invoke("tokens", "list")
    assert r.exit_code == 0 and "feed-F1" in r.stdout and secret not in r.stdout
    token_id = r.stdout.splitlines()[1].split()[0]
    r = _invoke("tokens", "revoke", token_id)
    assert r.exit_code == 0, r.output

    async def _revoked(db):  # type: ignore[no-untyped-def]
        assert await principal_from_token(db, SystemClock(), secret, None) is None

    _with_db(cli_db, _revoked)
    assert "revoked" in _invoke("tokens", "list").stdout


@pytest.mark.parametrize(
    "scope_args",
    [[], ["--org", "--facility", "F1"], ["--region", "EAST", "--facility", "F1"]],
)
def test_tokens_create_needs_exactly_one_scope(cli_db: str, scope_args: list[str]) -> None:
    r = _invoke("tokens", "create", "--role", "guard", "--name", "x", *scope_args)
    assert r.exit_code != 0
    assert r.stdout == ""
    assert "exactly one of --facility CODE, --region CODE or --org" in r.stderr


def test_tokens_create_errors_are_clear(cli_db: str) -> None:
    r = _invoke("tokens", "create", "--role", "emperor", "--org", "--name", "x")
    assert r.exit_code == 1 and r.stdout == "" and "Unknown role" in r.stderr
    r = _invoke("tokens", "create", "--role", "guard", "--facility", "NOPE", "--name", "x")
    assert r.exit_code == 1 and "NOPE" in r.stderr
    r = _invoke("tokens", "revoke", "4242")
    assert r.exit_code == 1 and "4242" in r.stderr


def test_users_create_list_grant_unlock(cli_db: str) -> None:
    r = _invoke(
        "users",
        "create",
        "Frank",
        "--role",
        "facility_manager",
        "--facility",
        "F1",
        "--display-name",
        "Frank Castle",
        "--password-stdin",
        input="a long enough password\n",
    )
    assert r.exit_code == 0, r.output
    assert "first log-in" in r.stderr

    async def _login(db):  # type: ignore[no-untyped-def]
        settings = Settings(database_url=cli_db)
        sess, _cookie = await service.password_login(
            db,
            SystemClock(),
            settings,
            username="frank",
            password="a long enough password",
            ip="127.0.0.1",
            user_agent="test",
        )
        assert sess.mfa_verified is False
        user = await service.get_user(db, sess.user_id)
        assert user.display_name == "Frank Castle" and not user.totp_enabled
        # lock the account
        user.failed_logins, user.locked_until = 5, SystemClock().now().replace(year=2999)
        await db.commit()

    _with_db(cli_db, _login)

    r = _invoke("users", "list")
    assert r.exit_code == 0
    assert "frank" in r.stdout and "facility_manager@facility:F1" in r.stdout
    assert "locked" in r.stdout

    assert _invoke("users", "unlock", "frank").exit_code == 0
    r = _invoke("users", "grant", "frank", "--role", "operator", "--region", "EAST")
    assert r.exit_code == 0, r.output
    r = _invoke("users", "list")
    assert "operator@region:EAST" in r.stdout and "locked" not in r.stdout

    async def _check(db):  # type: ignore[no-untyped-def]
        user = (await db.execute(select(User).where(User.username == "frank"))).scalar_one()
        assert user.locked_until is None and user.failed_logins == 0
        assert "a long enough password" not in user.password_hash
        actors = {
            a
            for (a,) in await db.execute(
                select(AuditRecord.actor).where(
                    AuditRecord.action.in_(["user.create", "user.unlock", "user.grant"])
                )
            )
        }
        assert actors == {"system:cli"}

    _with_db(cli_db, _check)

    r = _invoke(
        "users",
        "create",
        "frank",
        "--role",
        "guard",
        "--org",
        "--password-stdin",
        input="another long password\n",
    )
    assert r.exit_code == 1 and "already taken" in r.stderr
    r = _invoke(
        "users", "create", "gina", "--role", "guard", "--org", "--password-stdin", input="short\n"
    )
    assert r.exit_code == 1 and "12 characters" in r.stderr
    r = _invoke("users", "create", "gina", "--role", "guard", "--password-stdin", input="x" * 20)
    assert r.exit_code == 2 and "exactly one of" in r.stderr
    assert _invoke("users", "unlock", "nobody").exit_code == 1


def test_users_create_prompts_and_enrols_totp(cli_db: str) -> None:
    r = _invoke(
        "users",
        "create",
        "hank",
        "--role",
        "admin",
        "--org",
        "--totp",
        input="a long enough password\na long enough password\n",
    )
    assert r.exit_code == 0, r.output
    assert "otpauth://totp/Watchfloor:hank?" in r.stdout
    secret = r.stdout.split("Secret: ", 1)[1].split()[0]
    codes = [line.strip() for line in r.stdout.splitlines() if line.startswith("  ")]
    assert len(codes) == 10

    async def _check(db):  # type: ignore[no-untyped-def]
        import pyotp

        user = (await db.execute(select(User).where(User.username == "hank"))).scalar_one()
        assert user.totp_enabled and user.totp_secret == secret
        settings = Settings(database_url=cli_db)
        clock = SystemClock()
        sess, _ = await service.password_login(
            db,
            clock,
            settings,
            username="hank",
            password="a long enough password",
            ip="",
            user_agent="",
        )
        await service.verify_mfa(
            db, clock, sess, pyotp.TOTP(secret).at(clock.now()), settings=settings
        )
        assert sess.mfa_verified
        with pytest.raises(Problem):
            await service.begin_totp_enrolment(db, clock, user)

    _with_db(cli_db, _check)

    # Passwords that differ are refused by the prompt.
    r = _invoke(
        "users",
        "create",
        "ivy",
        "--role",
        "guard",
        "--org",
        input="a long enough password\nsomething else here\n",
    )
    assert r.exit_code != 0
