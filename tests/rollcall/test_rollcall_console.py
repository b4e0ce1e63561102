"""The roll-call console pages (list, board, operator marks, close) and the exports."""

from __future__ import annotations

import base64
import csv
import io
import re
import zlib
from typing import Any

import httpx
import pyotp
from rollcall_helpers import RollSite, by_employee, entry_of
from sqlalchemy import select

from watchfloor.audit.models import AuditRecord
from watchfloor.auth import service as auth_service

PASSWORD = "correct horse battery staple"
TOTP = pyotp.random_base32()
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


async def _login(client: httpx.AsyncClient, db, clock, role: str = "guard", **scope: Any) -> str:  # type: ignore[no-untyped-def]
    """A user logged in through the pages as a browser would; returns the session's CSRF."""
    spec = (
        auth_service.ScopeSpec.facility(scope["facility"])
        if "facility" in scope
        else auth_service.ScopeSpec.org()
    )
    await auth_service.create_user(
        db,
        clock,
        "system:test",
        username="gina",
        display_name="Gina Guard",
        password=PASSWORD,
        grants=[(role, spec)],
        totp_secret=TOTP,
    )
    await db.commit()
    page = await client.get("/login")
    resp = await client.post(
        "/login", data={"username": "gina", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert resp.status_code == 303, resp.text
    mfa = await client.get(resp.headers["location"])
    code = pyotp.TOTP(TOTP).at(clock.now())
    done = await client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(mfa.text)})
    assert done.status_code == 303, done.text
    return csrf_of((await client.get("/roll-calls")).text)


async def _start(client, headers, **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/api/v1/roll-calls", json={"facility_code": "HQ", **body}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_console_start_board_mark_and_close(client, db, clock, rsite: RollSite) -> None:  # type: ignore[no-untyped-def]
    csrf = await _login(client, db, clock, "guard", facility="HQ")
    page = await client.get("/roll-calls")
    assert page.status_code == 200 and "Start a roll call" in page.text
    assert 'value="LAX"' not in page.text  # only facilities the guard may start one at
    resp = await client.post(
        "/roll-calls",
        data={"facility_code": "HQ", "reason": "evacuation", "exercise": "1", "csrf_token": csrf},
    )
    assert resp.status_code == 303, resp.text
    board_url = resp.headers["location"]
    board = await client.get(board_url)
    assert board.status_code == 200
    assert "EXERCISE" in board.text
    for name in ("Ana Alvarez", "Ben Baker", "Cleo Chen"):
        assert name in board.text
    assert 'id="tally-no_answer">3<' in board.text
    roll_call_id = int(board_url.rsplit("/", 1)[1])
    entry = await entry_of(db, roll_call_id, "HQ-002")
    # the keyboard path: fetch with the CSRF header, JSON back
    resp = await client.post(
        f"/roll-calls/{roll_call_id}/entries/{entry.id}/answer",
        data={"answer": "need_help"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["tally"]["need_help"] == 1
    rows = await client.get(f"/roll-calls/{roll_call_id}/rows")
    assert rows.status_code == 200
    help_section = rows.text.split('id="rc-none-title"')[0]
    assert "Ben Baker" in help_section and "Ana Alvarez" not in help_section
    # without the CSRF token nothing changes
    other = await entry_of(db, roll_call_id, "HQ-001")
    resp = await client.post(
        f"/roll-calls/{roll_call_id}/entries/{other.id}/answer", data={"answer": "safe"}
    )
    assert resp.status_code == 403
    assert (await entry_of(db, roll_call_id, "HQ-001")).answer == "no_answer"
    # a bad answer from the form changes nothing
    resp = await client.post(
        f"/roll-calls/{roll_call_id}/entries/{other.id}/answer",
        data={"answer": "perhaps", "csrf_token": csrf},
    )
    assert resp.status_code == 303
    assert (await entry_of(db, roll_call_id, "HQ-001")).answer == "no_answer"
    resp = await client.post(f"/roll-calls/{roll_call_id}/close", data={"csrf_token": csrf})
    assert resp.status_code == 303
    board = await client.get(board_url)
    assert "Closed" in board.text and "Close roll call" not in board.text
    actions = (await db.scalars(select(AuditRecord.action))).all()
    assert "rollcall.answered_by_operator" in actions and "rollcall.closed" in actions


async def test_console_pages_are_scoped(
    client, db, clock, make_token, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    lax = await make_token("guard", facility="LAX")
    for url in (
        f"/roll-calls/{detail['id']}",
        f"/roll-calls/{detail['id']}/rows",
        "/roll-calls/999999",
    ):
        resp = await client.get(url, headers=lax)
        assert resp.status_code == 404, url
        assert "Ana" not in resp.text
    listing = await client.get("/roll-calls", headers=lax)
    assert listing.status_code == 200 and "HQ Office" not in listing.text
    resp = await client.get("/roll-calls", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    staff = await make_token("staff", facility="HQ")
    assert (await client.get("/roll-calls", headers=staff)).status_code == 403
    reader = await make_token("programme_manager", org=True)
    board = await client.get(f"/roll-calls/{detail['id']}", headers=reader)
    assert board.status_code == 200 and "Ana Alvarez" in board.text
    assert "Close roll call" not in board.text and 'value="need_help"' not in board.text


# ---------------------------------------------------------------------------- exports


def _pdf_text(data: bytes) -> str:
    """The text drawn in a PDF made by ReportLab: its content streams (ASCII85, then Flate)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        chunk = m.group(1).strip()
        if chunk.endswith(b"~>"):
            chunk = base64.a85decode(chunk[:-2])
        try:
            out.append(zlib.decompress(chunk).decode("latin-1"))
        except zlib.error:
            out.append(chunk.decode("latin-1"))
    return "\n".join(out)


async def test_exports_carry_the_final_list(
    client, db, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator, reason="=HYPERLINK(evil)", exercise=True)
    people = by_employee(detail)
    base = f"/api/v1/roll-calls/{detail['id']}"
    await client.post(
        f"{base}/entries/{people['HQ-002']['id']}/answer",
        json={"answer": "need_help", "zone_code": "SECURE"},
        headers=operator,
    )
    await client.post(
        f"{base}/entries/{people['HQ-001']['id']}/answer", json={"answer": "safe"}, headers=operator
    )
    await client.post(f"{base}/close", headers=operator)
    resp = await client.get(f"{base}/export.csv", headers=operator)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == ["Roll call", str(detail["id"]), "EXERCISE"]
    assert rows[1] == ["Facility", "HQ", "HQ Office"]
    assert rows[4] == ["Reason", "'=HYPERLINK(evil)"]  # no formula for spreadsheet programs
    assert rows[5][1:4] == ["safe=1", "need_help=1", "no_answer=1"]
    header = rows.index(
        [
            "name",
            "employee_id",
            "kind",
            "answer",
            "answered_at",
            "channel",
            "answered_by",
            "last_known_zone",
            "note",
        ]
    )
    people_rows = rows[header + 1 :]
    assert [(r[0], r[3]) for r in people_rows] == [
        ("Ben Baker", "need_help"),
        ("Cleo Chen", "no_answer"),
        ("Ana Alvarez", "safe"),
    ]
    assert people_rows[0][7] == "Secure zone" and people_rows[0][5] == "console"
    pdf = await client.get(f"{base}/export.pdf", headers=operator)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    text = _pdf_text(pdf.content)
    for needle in ("Ana Alvarez", "Ben Baker", "Cleo Chen", "EXERCISE", "HQ Office", "NEEDS HELP"):
        assert needle in text, needle
    exports = (
        await db.scalars(select(AuditRecord).where(AuditRecord.action == "rollcall.exported"))
    ).all()
    assert [r.details["format"] for r in exports] == ["csv", "pdf"]
    # scope: another facility's guard gets nothing, and nothing is audited for them
    lax = await make_token("guard", facility="LAX")
    for fmt in ("csv", "pdf"):
        resp = await client.get(f"{base}/export.{fmt}", headers=lax)
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"{base}/export.csv")).status_code == 401
    db.expire_all()
    count = len(
        (
            await db.scalars(select(AuditRecord).where(AuditRecord.action == "rollcall.exported"))
        ).all()
    )
    assert count == 2
