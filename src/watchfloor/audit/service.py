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
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, or_, select
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


async def _lock_head(session: AsyncSession) -> AuditHead:
    """The head row, locked until the caller's transaction ends, so appends queue up one by one.

    The head is created if missing with an INSERT that yields to a concurrent one; on SQLite that
    statement also takes the database's write lock before the head is read, so no other writer
    can slip in between the read and the append (SQLite ignores FOR UPDATE). The head is always
    re-read (populate_existing): a session's cached copy may be older than another's commit."""
    dialect = session.get_bind().dialect.name
    values = {"id": 1, "last_id": 0, "last_hash": GENESIS}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        await session.execute(pg_insert(AuditHead).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        await session.execute(sqlite_insert(AuditHead).values(values).on_conflict_do_nothing())
    head = (
        await session.execute(
            select(AuditHead)
            .where(AuditHead.id == 1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(**values)
        session.add(head)
    return head


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
    head = await _lock_head(session)
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


@dataclass(frozen=True)
class AuditQuery:
    """Filters for reading the log; None means "any"."""

    action: str | None = None  # exact, or a prefix ending in "." ("person." = every person action)
    actor: str | None = None  # exact label, e.g. "user:alice" or "token:door-feed"
    facility_id: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    before_id: int | None = None  # only records older than this one: stable paging, newest first


async def search(
    session: AsyncSession,
    query: AuditQuery,
    *,
    facility_ids: Collection[int] | None = None,
    region_ids: Collection[int] = (),
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditRecord], int]:
    """Records matching `query`, newest first, and how many match in all.

    `facility_ids=None` (with no region_ids) reads the whole log; otherwise only records of those
    facilities and of facilities in those regions (records about no facility are left out)."""
    from watchfloor.sites.models import Facility

    stmt = select(AuditRecord)
    if facility_ids is not None or region_ids:
        conditions = []
        if facility_ids:
            conditions.append(AuditRecord.facility_id.in_(list(facility_ids)))
        if region_ids:
            conditions.append(
                AuditRecord.facility_id.in_(
                    select(Facility.id).where(Facility.region_id.in_(list(region_ids)))
                )
            )
        stmt = stmt.where(or_(*conditions)) if conditions else stmt.where(false())
    if query.action:
        if query.action.endswith("."):
            stmt = stmt.where(AuditRecord.action.startswith(query.action, autoescape=True))
        else:
            stmt = stmt.where(AuditRecord.action == query.action)
    if query.actor:
        stmt = stmt.where(AuditRecord.actor == query.actor)
    if query.facility_id is not None:
        stmt = stmt.where(AuditRecord.facility_id == query.facility_id)
    if query.since is not None:
        stmt = stmt.where(AuditRecord.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(AuditRecord.at < query.until)
    if query.before_id is not None:
        stmt = stmt.where(AuditRecord.id < query.before_id)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (
        (await session.execute(stmt.order_by(AuditRecord.id.desc()).limit(limit).offset(offset)))
        .scalars()
        .all()
    )
    return list(rows), total
