"""The FSL calculator in a real browser (Debian's Chromium driven by Playwright against a real
`watchfloor serve`): the live preview follows the inputs, saving stores what the server computes,
the chart renders under the console's Content-Security-Policy. A screenshot lands in
tests/e2e/screenshots/ (git-ignored) for a person to look at."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest

from watchfloor.assessments import service
from watchfloor.assessments.schemas import AssessmentCreate, FindingCreate
from watchfloor.auth import service as auth_service
from watchfloor.sites.models import Facility

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "e2e" / "screenshots"
PASSWORD = "correct horse battery staple"
TOTP = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium (CI installs it)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(db, clock, site, database_url, tmp_path) -> AsyncIterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """HQ with an assessment and a finding, a facility manager, and a real server."""
    await auth_service.create_user(
        db,
        clock,
        "system:test",
        username="fran",
        display_name="Fran Manager",
        password=PASSWORD,
        grants=[("facility_manager", auth_service.ScopeSpec.facility("HQ"))],
        totp_secret=TOTP,
    )
    hq = await db.get(Facility, site.hq)
    a = await service.create_assessment(
        db, clock, "system:test", hq, AssessmentCreate(facility="HQ", assessor="Fran Manager")
    )
    await service.add_finding(
        db,
        clock,
        "system:test",
        a,
        FindingCreate(area="alarms", severity="critical", description="Panic button dead"),
    )
    await db.commit()
    port = _free_port()
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": database_url,
        # on NATS, a stream and subjects of this server's own (no backlog from another test)
        "WATCHFLOOR_BUS_STREAM": f"WFE2E_{uuid.uuid4().hex[:10]}",
        "WATCHFLOOR_BUS_PREFIX": f"e{uuid.uuid4().hex[:10]}.",
        "WATCHFLOOR_VAR_DIR": str(tmp_path / "server-var"),
        "WATCHFLOOR_SECRET_KEY": "e2e-secret-key-not-for-production",
    }
    log = (tmp_path / "server.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "watchfloor"),
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        async with httpx.AsyncClient() as http:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError((tmp_path / "server.log").read_text()[-3000:])
                try:
                    if (await http.get(base + "/api/health", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start within 60 s")
                await asyncio.sleep(0.2)  # waiting for a real process to listen
        yield base, a.id
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


async def test_the_fsl_calculator_in_a_browser(served, db) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    base, aid = served
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await page.goto(base + "/login")
        await page.fill("#username", "fran")
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/login/mfa**")
        await page.fill("#code", pyotp.TOTP(TOTP).now())
        await page.click("button[type=submit]")
        await page.wait_for_load_state()
        await page.goto(f"{base}/assessments/{aid}")
        preview = page.locator("#fsl-preview")
        await page.select_option("#in-mission_criticality", "3")
        await page.select_option("#in-symbolism", "2")
        assert "give every factor a score" in await preview.inner_text()
        await page.select_option("#in-threat_to_tenants", "4")
        # 3 + 2 + (3 people → 1) + (50,000 sq ft → 2) + 4 = 12
        assert await preview.inner_text() == "Preview: total 12, FSL II (not saved yet)"
        await page.fill("#in-population", "100")
        assert await preview.inner_text() == "Preview: total 13, FSL III (not saved yet)"
        await page.select_option("#in-adjust", "-1")
        assert "adjusted to FSL II" in await preview.inner_text()
        await page.fill("#in-justification", "Shares a lobby with a bank.")
        await page.click("text=Calculate and save")
        await page.wait_for_load_state()
        assert await page.inner_text(".asm-level-value") == "II"
        assert await page.inner_text(".asm-total") == "13"
        # the chart is drawn with attributes (the CSP drops inline styles): a coloured bar
        bar = page.locator('.asm-chart rect[fill="rgb(54%,0%,0%)"]')
        assert await bar.count() == 2  # the critical bar and its legend swatch
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "assessments-01-fsl.png"), full_page=False)
        await browser.close()
    assert not problems, problems  # no script or CSP errors
