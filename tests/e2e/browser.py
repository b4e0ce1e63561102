"""What the browser tests of the programme pages share: Debian's Chromium, a page that records
every console error, failed request and page error, screenshots, log-in with MFA, and adding a
programme manager or domain data to the test database before the browser starts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyotp

from watchfloor.auth import service as auth_service
from watchfloor.clock import Clock, SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
PM_TOTP = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"

#: adds rows with the test database's session (the caller's data, loaded before the browser)
Loader = Callable[[Any, Clock], Awaitable[Any]]


def add_to_database(url: str, var_dir: Path, *loaders: Loader) -> None:
    """Run each loader in one session on the test database and commit."""

    async def run() -> None:
        engine = make_engine(Settings(database_url=url, var_dir=var_dir))
        try:
            async with make_sessionmaker(engine)() as db:
                for load in loaders:
                    await load(db, SystemClock())
                await db.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def programme_manager(password: str) -> Loader:
    """A loader adding "pat", programme manager of the whole organisation (TOTP secret PM_TOTP)."""

    async def add(db: Any, clock: Clock) -> None:
        await auth_service.create_user(
            db,
            clock,
            "system:test",
            username="pat",
            display_name="Pat Programme",
            password=password,
            grants=[("programme_manager", auth_service.ScopeSpec.org())],
            totp_secret=PM_TOTP,
        )

    return add


@contextmanager
def watched_page(server: str) -> Iterator[tuple[Any, list[str]]]:
    """A 1440×900 page on the server; the list collects console errors, failed sub-requests
    and page errors, for the test to assert empty."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda resp: (
                problems.append(f"{resp.status} for {resp.url}")
                if resp.status >= 400 and resp.request.resource_type != "document"
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


def log_in(page: Any, target: str, username: str, password: str, totp_secret: str) -> None:
    """Log in through the console's form (password, then the current 6-digit code)."""
    page.goto(f"/login?next={target}")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(totp_secret).now())
    page.get_by_role("button", name="Log in").click()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
