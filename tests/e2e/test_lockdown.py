"""Lockdown in a real browser, against a real server and a real (simulated) controller fleet.

The server (`watchfloor serve`) commands doors through the OSDP driver; the fleet is its own
process (`watchfloor simulate doors`) serving the database's doors over loopback. An operator
finds a demo-like facility on /lockdowns, presses its big red control, confirms on the second
page (which names the facility and its door count), and watches every door confirm on the live
door list. Screenshots land in tests/e2e/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pyotp
import pytest

from watchfloor.clock import SystemClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.lockdown.simulator import FleetProcess
from watchfloor.people.models import Person
from watchfloor.rollcall.service import make_token
from watchfloor.sites.models import Device, Facility, Region, Zone
from web.seed import OPERATOR_TOTP, PASSWORD, seed_all

from .conftest import _free_port

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
FACILITY = "ELP-FO"
DOORS = 36  # on three controllers, in three zones
ZONES = (("LOBBY", "Main lobby"), ("OFFICE", "Open office"), ("SECURE", "Evidence vault"))
STAFF = (("Ana", "Reyes"), ("Ben", "Okafor"), ("Chen", "Li"), ("Dana", "Brooks"), ("Eli", "Park"))
SECRET = "e2e-secret-key-not-for-production"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium "
        "(apt-get install -y chromium); CI installs it",
    ),
]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


async def _seed(url: str, var_dir: Path) -> None:
    """The console tests' organisation plus a demo-like field office: zones, three OSDP
    controllers and their doors (addresses osdp://controller-N/K, as the demo makes them)."""
    engine = make_engine(Settings(database_url=url, var_dir=var_dir))
    clock = SystemClock()
    now = clock.now()
    try:
        async with make_sessionmaker(engine)() as db:
            await seed_all(db, clock)
            from sqlalchemy import select

            region = (await db.execute(select(Region).where(Region.code == "SW"))).scalar_one()
            facility = Facility(
                region_id=region.id,
                code=FACILITY,
                name="El Paso Field Office",
                kind="field_office",
                city="El Paso",
                state="TX",
                timezone="America/Denver",
                created_at=now,
                updated_at=now,
            )
            db.add(facility)
            await db.flush()
            zones = []
            for code, name in ZONES:
                zone = Zone(
                    facility_id=facility.id, code=code, name=name, created_at=now, updated_at=now
                )
                db.add(zone)
                zones.append(zone)
            await db.flush()
            for ctrl in (1, 2, 3):
                db.add(
                    Device(
                        facility_id=facility.id,
                        zone_id=zones[0].id,
                        code=f"CTRL-{ctrl}",
                        name=f"Door controller {ctrl}",
                        kind="controller",
                        protocol="osdp",
                        address=f"osdp://controller-{ctrl}",
                        status="online",
                        created_at=now,
                        updated_at=now,
                    )
                )
            for i in range(DOORS):
                ctrl, k = divmod(i, DOORS // 3)
                db.add(
                    Device(
                        facility_id=facility.id,
                        zone_id=zones[i % 3].id,
                        code=f"DOOR-{i + 1:03d}",
                        name=f"Door {i + 1}",
                        kind="door",
                        protocol="osdp",
                        address=f"osdp://controller-{ctrl + 1}/{k + 1}",
                        status="online",
                        created_at=now,
                        updated_at=now,
                    )
                )
            for i, (given, family) in enumerate(STAFF):  # who the roll call asks
                db.add(
                    Person(
                        facility_id=facility.id,
                        employee_id=f"ELP-{i + 1:04d}",
                        given_name=given,
                        family_name=family,
                        job_title="Special agent",
                        created_at=now,
                        updated_at=now,
                    )
                )
            await db.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def lockdown_server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, FleetProcess]]:
    var_dir = tmp_path / "server-var"
    asyncio.run(_seed(database_url, var_dir))
    fleet = FleetProcess(
        ["--database-url", database_url, "--facility", FACILITY],
        env={"WATCHFLOOR_DOORS_OSDP_SCBK": ""},
    )
    port = _free_port()
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": database_url,
        # on NATS, a stream and subjects of this server's own (no backlog from another test)
        "WATCHFLOOR_BUS_STREAM": f"WFE2E_{uuid.uuid4().hex[:10]}",
        "WATCHFLOOR_BUS_PREFIX": f"e{uuid.uuid4().hex[:10]}.",
        "WATCHFLOOR_VAR_DIR": str(var_dir),
        "WATCHFLOOR_SECRET_KEY": SECRET,
        "WATCHFLOOR_DOORS_DRIVER": "osdp",
        "WATCHFLOOR_DOORS_FLEET_URL": fleet.url,
        "WATCHFLOOR_DOORS_OSDP_SCBK": "",
        "WATCHFLOOR_TEST_SIGNAL_MINUTES": "0",
    }
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).parent / "watchfloor"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the server exited:\n" + (tmp_path / "server.log").read_text())
            try:
                if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.2)  # waiting for a real process to listen
        yield base, fleet
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        fleet.stop()


def test_operator_locks_down_a_facility_and_watches_every_door_confirm(
    lockdown_server: tuple[str, FleetProcess],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    server, fleet = lockdown_server
    SCREENSHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        try:
            page.goto("/login?next=/lockdowns")
            page.get_by_label("User name").fill("olivia")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(OPERATOR_TOTP).now())
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Lockdown", exact=True)).to_be_visible()
            expect(page.locator("#ld-cards")).to_contain_text("No facility in your scope is locked")

            # step one: the facility's big red control (reached by keyboard as well)
            control = page.get_by_role(
                "link", name=f"Lock down El Paso Field Office: {DOORS} doors"
            )
            control.focus()
            expect(control).to_be_focused()
            page.screenshot(path=str(SCREENSHOTS / "lockdown-01-controls.png"), full_page=True)
            page.keyboard.press("Enter")

            # step two: the confirmation names the facility and how many doors will lock
            confirm = page.get_by_role(
                "button", name=f"Lock down {DOORS} doors at El Paso Field Office now"
            )
            expect(confirm).to_be_visible()
            page.get_by_label("Reason").fill("Armed person reported in the lobby")
            page.screenshot(path=str(SCREENSHOTS / "lockdown-02-confirm.png"), full_page=True)
            # controller 3 answers late, so its doors confirm while the operator watches
            fleet.control.set("lag", facility=FACILITY, controller="osdp://controller-3", delay=2.0)
            confirm.click()
            page.screenshot(path=str(SCREENSHOTS / "lockdown-03a-in-progress.png"), full_page=True)

            # the live door list: every door confirms
            expect(page.get_by_role("heading", level=1)).to_contain_text("El Paso Field Office")
            expect(page.locator("#ld-locked")).to_have_text(str(DOORS))
            expect(page.locator("#ld-pending")).to_have_text("0")
            expect(page.locator("#ld-failed")).to_have_text("0")
            expect(page.locator(".ld-status")).to_have_attribute("data-state", "locked")
            expect(page.locator("tr.ld-door-locked")).to_have_count(DOORS)
            expect(page.locator("#live-state")).to_have_text("Live")
            page.screenshot(path=str(SCREENSHOTS / "lockdown-03-all-locked.png"), full_page=True)

            # the controllers really hold every door locked
            for ctrl in (1, 2, 3):
                states = fleet.control.state(FACILITY, f"osdp://controller-{ctrl}")
                assert set(states.values()) == {"locked"}, states

            # the list shows it first, with its counts
            page.get_by_role("link", name="Lockdown", exact=False).first.click()
            expect(page.locator(".ld-card").first).to_contain_text("El Paso Field Office")
            expect(page.locator(".ld-card").first).to_contain_text(f"{DOORS} locked")
            page.screenshot(path=str(SCREENSHOTS / "lockdown-04-list.png"), full_page=True)

            # the lockdown asked everyone there "Are you safe?": the roll-call board fills live
            # as the staff answer on their phones (their one-tap links)
            page.get_by_role("link", name="Roll call").click()
            row = page.locator("tr.rc-row", has_text="El Paso Field Office").first
            expect(row).to_contain_text("Open")
            row.get_by_role("link").first.click()
            expect(page.locator("#live-state")).to_have_text("Live")
            expect(page.locator("#tally-no_answer")).to_have_text(str(len(STAFF)))
            roll_call_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
            detail = page.request.get(f"/api/v1/roll-calls/{roll_call_id}").json()
            started = datetime.fromisoformat(detail["started_at"])
            with httpx.Client(base_url=server, timeout=10) as phones:
                for n, entry in enumerate(sorted(detail["entries"], key=lambda e: e["name"])):
                    token = make_token(SECRET, roll_call_id, entry["id"], None, started)
                    answer = "need_help" if n == 0 else "safe"
                    form = phones.get(f"/r/{token}")
                    assert form.status_code == 200, form.text
                    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
                    data = {"answer": answer, **({"csrf_token": csrf.group(1)} if csrf else {})}
                    sent = phones.post(f"/r/{token}", data=data, cookies=form.cookies)
                    assert sent.status_code in (200, 303), sent.text
            expect(page.locator("#tally-safe")).to_have_text(str(len(STAFF) - 1))
            expect(page.locator("#tally-need_help")).to_have_text("1")
            expect(page.locator("#tally-no_answer")).to_have_text("0")
            expect(page.locator("#rc-help")).to_contain_text("Ana Reyes")
            for given, family in STAFF[1:]:
                expect(page.locator("#rc-safe")).to_contain_text(f"{given} {family}")
            page.screenshot(path=str(SCREENSHOTS / "lockdown-06-roll-call.png"), full_page=True)
        finally:
            context.close()
            browser.close()
    assert problems == []


def test_a_drill_with_a_dropped_controller_flags_its_doors(
    lockdown_server: tuple[str, FleetProcess],
) -> None:
    """EXERCISE: controller 3 is off line; its doors are retried, then flagged as failed (each
    with a P1 alarm) and listed first; the others lock."""
    from playwright.sync_api import expect, sync_playwright

    server, fleet = lockdown_server
    fleet.control.drop(FACILITY, "osdp://controller-3")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            page.goto("/login?next=/lockdowns/new%3Ffacility%3DELP-FO")
            page.get_by_label("User name").fill("olivia")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("textbox", name="6-digit code").fill(pyotp.TOTP(OPERATOR_TOTP).now())
            page.get_by_role("button", name="Log in").click()
            page.get_by_label("This is a drill").check()
            page.get_by_role(
                "button", name=f"Lock down {DOORS} doors at El Paso Field Office now"
            ).click()
            expect(page.locator(".ld-exercise-banner")).to_contain_text("EXERCISE")
            expect(page.locator(".ld-status")).to_have_attribute("data-state", "partial")
            expect(page.locator("#ld-locked")).to_have_text(str(DOORS - DOORS // 3))
            expect(page.locator("#ld-failed")).to_have_text(str(DOORS // 3))
            expect(page.locator("tr.ld-door").first).to_have_attribute("data-state", "failed")
            expect(page.locator("tr.ld-door").first).to_contain_text("P1 alarm raised")
            expect(
                page.get_by_role("button", name=f"Retry {DOORS // 3} failed doors")
            ).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "lockdown-05-drill-partial.png"), full_page=True)
        finally:
            context.close()
            browser.close()
