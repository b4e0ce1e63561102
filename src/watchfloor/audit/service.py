"""Append to and verify the hash-chained audit log.

Each record's hash covers its own fields and the previous record's hash, so altering a record
breaks its own hash, deleting one breaks the sequence and the next record's link, and re-ordering
breaks the links. The head row records the newest id and hash, so cutting records off the end is
noticed too. Records are written in the caller's transaction: the change and its audit record
commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.audit.models import AuditHead, AuditRecord
from watchfloor.auth.principal import Principal
from watchfloor.clock import Clock

GENESIS = "0" * 64


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def compute_hash(rec: AuditRecord) -> str:
    payload = {
        "id": rec.id,
        "at": rec.at.isoformat(timespec="microseconds"),
        "actor": rec.actor,
        "action": rec.action,
        "target_type": rec.target_type,
        "target_id": rec.target_id,
        "facility_id": rec.facility_id,
        "ip": rec.ip,
        "details": rec.details,
        "prev_hash": rec.prev_hash,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


async def record(
    session: AsyncSession,
    clock: Clock,
    actor: Principal | str,
    action: str,
    *,
    target_type: str = "",
    target_id: str | int = "",
    facility_id: int | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditRecord:
    """Add one record to the chain inside the caller's transaction (the caller commits)."""
    if isinstance(actor, Principal):
        actor_label, ip = actor.label, ip or actor.ip
    else:
        actor_label = actor
    head = (
        await session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, last_id=0, last_hash=GENESIS)
        session.add(head)
    rec = AuditRecord(
        id=head.last_id + 1,
        at=clock.now(),
        actor=actor_label,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        facility_id=facility_id,
        ip=ip or "",
        details=_canonical(details or {}),
        prev_hash=head.last_hash,
    )
    rec.hash = compute_hash(rec)
    head.last_id, head.last_hash = rec.id, rec.hash
    session.add(rec)
    await session.flush()
    return rec


@dataclass(frozen=True)
class Finding:
    record_id: int
    problem: str

    def __str__(self) -> str:
        return f"record {self.record_id}: {self.problem}"


async def _records(session: AsyncSession, batch: int = 5000) -> AsyncIterator[AuditRecord]:
    last = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.id > last)
                    .order_by(AuditRecord.id)
                    .limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1].id
        session.expunge_all()


async def verify(session: AsyncSession) -> tuple[int, list[Finding]]:
    """Walk the chain; return how many records were checked and every break found."""
    findings: list[Finding] = []
    expected_id, prev_hash, count = 1, GENESIS, 0
    async for rec in _records(session):
        count += 1
        if rec.id != expected_id:
            missing = (
                f"{expected_id}" if rec.id == expected_id + 1 else f"{expected_id}-{rec.id - 1}"
            )
            findings.append(Finding(rec.id, f"records {missing} are missing (deleted)"))
        if rec.prev_hash != prev_hash:
            findings.append(
                Finding(rec.id, "does not link to the record before it (deleted or re-ordered)")
            )
        if compute_hash(rec) != rec.hash:
            findings.append(Finding(rec.id, "content does not match its hash (altered)"))
        expected_id, prev_hash = rec.id + 1, rec.hash
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one_or_none()
    if head is not None and (head.last_id != expected_id - 1 or head.last_hash != prev_hash):
        findings.append(
            Finding(
                head.last_id,
                f"the log ends at record {expected_id - 1} but record {head.last_id} was written "
                "(records cut from the end, or the newest record altered)",
            )
        )
    return count, findings
