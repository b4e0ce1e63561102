"""The hash chain: records link up, concurrent appends stay one chain, and `watchfloor audit
verify` (the real command, in a subprocess) names every altered, deleted or re-ordered record."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit import service as audit
from watchfloor.audit.models import AuditHead, AuditRecord
from watchfloor.clock import FakeClock
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker

T = TypeVar("T")
WATCHFLOOR = Path(sys.executable).parent / "watchfloor"


def run_db(url: str, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `fn` in a session of its own engine (sync tests drive the CLI between steps)."""

    async def _go() -> T:
        engine = make_engine(Settings(database_url=url, secret_key="x"))
        try:
            async with make_sessionmaker(engine)() as session:
                result = await fn(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(_go())


def append(url: str, count: int) -> None:
    clock = FakeClock()

    async def _append(session: AsyncSession) -> None:
        for n in range(count):
            clock.advance(seconds=1)
            await audit.record(
                session,
                clock,
                "user:alice",
                "facility.update",
                target_type="facility",
                target_id=f"F-{n}",
                details={"n": n, "name": f"Site {n}", "note": "café ☕"},
                ip="10.0.0.1",
            )

    run_db(url, _append)


def tamper(url: str, *statements: str) -> None:
    async def _exec(session: AsyncSession) -> None:
        for sql in statements:
            await session.execute(text(sql))

    run_db(url, _exec)


def verify_cli(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WATCHFLOOR_DATABASE_URL": url}
    env.pop("WATCHFLOOR_CONFIG", None)
    return subprocess.run(
        [str(WATCHFLOOR), "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_records_link_into_one_chain(database_url: str) -> None:
    append(database_url, 5)

    async def _read(session: AsyncSession) -> tuple[list[AuditRecord], AuditHead]:
        rows = (await session.execute(select(AuditRecord).order_by(AuditRecord.id))).scalars().all()
        head = (await session.execute(select(AuditHead))).scalar_one()
        return list(rows), head

    rows, head = run_db(database_url, _read)
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.hash
    for r in rows:
        assert audit.compute_hash(r) == r.hash
    assert rows[2].details == {"n": 2, "name": "Site 2", "note": "café ☕"}
    assert (head.last_id, head.last_hash) == (5, rows[-1].hash)

    result = verify_cli(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 records" in result.stdout


def test_empty_log_verifies(database_url: str) -> None:
    result = verify_cli(database_url)
    assert result.returncode == 0, result.stderr
    assert "0 records" in result.stdout


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        pytest.param(
            ["UPDATE audit_log SET details = '{\"n\": 999}' WHERE id = 4"], 4, id="altered-details"
        ),
        pytest.param(
            ["UPDATE audit_log SET actor = 'user:mallory' WHERE id = 2"], 2, id="altered-actor"
        ),
        pytest.param(["DELETE FROM audit_log WHERE id = 3"], 4, id="deleted-middle"),
        pytest.param(
            [
                "UPDATE audit_log SET id = 100 WHERE id = 3",
                "UPDATE audit_log SET id = 3 WHERE id = 4",
                "UPDATE audit_log SET id = 4 WHERE id = 100",
            ],
            3,
            id="reordered",
        ),
        pytest.param(["DELETE FROM audit_log WHERE id = 6"], 6, id="deleted-last"),
        pytest.param(["DELETE FROM audit_log WHERE id >= 5"], 6, id="cut-off-end"),
        pytest.param(["DELETE FROM audit_log WHERE id = 1"], 2, id="deleted-first"),
    ],
)
def test_verify_names_the_tampered_record(
    database_url: str, statements: list[str], named: int
) -> None:
    append(database_url, 6)
    tamper(database_url, *statements)
    result = verify_cli(database_url)
    assert result.returncode != 0, result.stdout
    assert f"record {named}:" in result.stdout, result.stdout
    assert "FAILED" in result.stderr


def test_deleted_record_is_named_as_missing(database_url: str) -> None:
    append(database_url, 6)
    tamper(database_url, "DELETE FROM audit_log WHERE id = 3")
    result = verify_cli(database_url)
    assert result.returncode == 1
    assert "records 3 are missing" in result.stdout


def test_rewriting_a_record_with_a_fresh_hash_still_breaks_the_next_link(database_url: str) -> None:
    """A forger who recomputes the altered record's own hash is caught by the next record."""
    append(database_url, 5)

    async def _forge(session: AsyncSession) -> None:
        rec = await session.get(AuditRecord, 2)
        assert rec is not None
        rec.details = {"n": 2, "name": "Forged"}
        rec.hash = audit.compute_hash(rec)

    run_db(database_url, _forge)
    result = verify_cli(database_url)
    assert result.returncode == 1
    assert "record 3:" in result.stdout
    assert "record 2:" not in result.stdout


def test_concurrent_appends_do_not_fork_the_chain(database_url: str) -> None:
    """Sessions appending at once each get the next id and link to the record before."""

    async def _go() -> tuple[int, list[audit.Finding], list[Any]]:
        engine = make_engine(Settings(database_url=database_url, secret_key="x"))
        maker = make_sessionmaker(engine)
        clock = FakeClock()
        try:

            async def writer(n: int) -> None:
                for i in range(5):
                    async with maker() as session:
                        await audit.record(
                            session, clock, f"token:writer-{n}", "device.update", details={"i": i}
                        )
                        await asyncio.sleep(0)  # let the others interleave mid-transaction
                        await session.commit()

            async with maker() as first:  # the head exists: later appends must re-read it
                await audit.record(first, clock, "system:test", "log.start")
                await first.commit()
            await asyncio.gather(*(writer(n) for n in range(6)))
            async with maker() as session:
                count, findings = await audit.verify(session)
                ids = (
                    (await session.execute(select(AuditRecord.id).order_by(AuditRecord.id)))
                    .scalars()
                    .all()
                )
        finally:
            await engine.dispose()
        return count, findings, list(ids)

    count, findings, ids = asyncio.run(_go())
    assert findings == []
    assert count == 31
    assert ids == list(range(1, 32))
