"""The demo's assessments: a realistic mix of levels and due dates, loaded once."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from watchfloor.assessments import service
from watchfloor.assessments.demo import load_demo_assessments
from watchfloor.assessments.models import Assessment, Finding
from watchfloor.auth.principal import Scope
from watchfloor.sites.demo import load_demo


async def test_demo_assessments(client, db, clock, make_token) -> None:  # type: ignore[no-untyped-def]
    await load_demo(db, clock, facilities=30)
    added = await load_demo_assessments(db, clock)
    await db.commit()
    assert 20 <= added < 30  # about one in ten facilities was never assessed
    assert await load_demo_assessments(db, clock) == 0  # loaded once
    assert await db.scalar(select(func.count(Assessment.id))) == added
    assert await db.scalar(select(func.count(Finding.id))) > 0
    due = await service.due_list(db, Scope(everything=True), clock.now(), due_soon_days=60)
    statuses = Counter(e.status for e in due)
    assert statuses["overdue"] and statuses["ok"], statuses
    levels = Counter(e.level for e in due if e.level)
    assert len(levels) >= 2, levels
    # every demo assessment opens as a PDF
    admin = await make_token("admin", org=True)
    aid = (await db.scalars(select(Assessment.id).limit(1))).one()
    resp = await client.get(f"/api/v1/assessments/{aid}/report.pdf", headers=admin)
    assert resp.status_code == 200 and resp.content.startswith(b"%PDF-")
