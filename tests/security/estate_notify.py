"""The notify domain's part of the security tests' estate (see authz_estate.DOMAIN_ESTATES)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from watchfloor.notify import service
from watchfloor.notify.models import Delivery, NotifyGroup
from watchfloor.people.models import Person


async def build(db: Any, clock: Any, a: Any, b: Any) -> dict[str, Any]:
    """Add notify objects for facilities A and B (an alert to everyone there, with its
    deliveries, and a recipient group); return the path values naming A's."""
    ids: dict[str, dict[str, int]] = {}
    for side, words in ((a, "ALFA wardens"), (b, "Bravo wardens")):
        alert = await service.send_alert(
            db,
            clock,
            template="custom",
            facility_ids=[side.facility_id],
            audience=service.Audience(everyone_at_facilities=True),
            context={"headline": f"{words} drill", "message": f"{words}: assemble in the lobby"},
            status="Exercise",
            sender="system:test",
        )
        delivery_id = (
            await db.execute(select(Delivery.id).where(Delivery.alert_id == alert.id).limit(1))
        ).scalar_one()
        now = clock.now()
        group = NotifyGroup(
            facility_id=side.facility_id,
            name=words,
            description=words,
            created_at=now,
            updated_at=now,
        )
        db.add(group)
        await db.flush()
        person_ids = (
            (await db.execute(select(Person.id).where(Person.facility_id == side.facility_id)))
            .scalars()
            .all()
        )
        from watchfloor.notify.models import NotifyGroupMember

        for pid in person_ids:
            db.add(NotifyGroupMember(group_id=group.id, person_id=pid))
        await db.flush()
        ids[side.code] = {"alert_id": alert.id, "delivery_id": delivery_id, "group_id": group.id}
    # the public acknowledgement link of A's first delivery (roll call's estate may name its own
    # link "token" too: a public route needs only some value)
    from datetime import timedelta

    secret = "security-test-secret"
    token = service.ack_token(secret, ids[a.code]["delivery_id"], clock.now() + timedelta(days=1))
    return {**ids[a.code], "token": token}
