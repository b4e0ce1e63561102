"""Staff panic: codes, a silent press, cancel within the window, duress, attempts, scope."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.alarms.models import Alarm, AlarmState
from watchfloor.audit.models import AuditRecord
from watchfloor.auth import service as auth_service
from watchfloor.bus.models import OutboxMessage
from watchfloor.clock import FakeClock
from watchfloor.events.models import Event
from watchfloor.panic.models import PanicCodes, PanicPress

PROBLEM = "application/problem+json"


async def _actions(maker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with maker() as db:
        rows = await db.execute(
            select(AuditRecord.action)
            .where(AuditRecord.action.like("panic.%"))
            .order_by(AuditRecord.id)
        )
        return list(rows.scalars().all())


async def _events(maker: async_sessionmaker[AsyncSession]) -> list[Event]:
    async with maker() as db:
        return list((await db.execute(select(Event).order_by(Event.id))).scalars().all())


async def _alarm_for(maker: async_sessionmaker[AsyncSession], press_id: int, clock) -> int:  # type: ignore[no-untyped-def]
    """What the alarms handler would do with the panic event: an active P1 alarm."""
    async with maker() as db:
        press = await db.get(PanicPress, press_id)
        assert press is not None
        alarm = Alarm(
            facility_id=press.facility_id,
            event_id=press.event_id,
            rule_key="panic",
            type="panic",
            priority=1,
            title="Panic",
            state=AlarmState.ACTIVE,
            raised_at=clock.now(),
            attributes={},
        )
        db.add(alarm)
        await db.commit()
        return alarm.id


async def test_codes_are_stored_hashed_and_audited(staff, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    async with sessionmaker() as db:
        codes = await db.get(PanicCodes, staff.user_id)
        assert codes is not None
        assert "1234" not in codes.cancel_code_hash and codes.cancel_code_hash.startswith("$argon2")
    r = await staff.put("/api/v1/panic/codes", {"cancel_code": "5555", "duress_code": "00001"})
    assert r.status_code == 200
    assert await _actions(sessionmaker) == ["panic.codes_set", "panic.codes_changed"]


@pytest.mark.parametrize(
    "body",
    [
        {"cancel_code": "1234", "duress_code": "1234"},  # the same
        {"cancel_code": "123", "duress_code": "9876"},  # too short
        {"cancel_code": "123456789", "duress_code": "9876"},  # too long
        {"cancel_code": "12a4", "duress_code": "9876"},
        {"cancel_code": 1234, "duress_code": 9876},  # numbers lose leading zeros: strings only
        {"cancel_code": "1234"},
        {"cancel_code": "1234", "duress_code": "9876", "pin": "1"},
        {"cancel_code": "12\x0034", "duress_code": "9876"},
    ],
)
async def test_bad_codes_are_refused(staff, body, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    r = await staff.put("/api/v1/panic/codes", body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert await _actions(sessionmaker) == ["panic.codes_set"]  # only the fixture's


async def test_press_raises_a_silent_p1_event_and_says_little(
    staff, sessionmaker, clock: FakeClock, panic_sites
) -> None:  # type: ignore[no-untyped-def]
    r = await staff.post("/api/v1/panic", {})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"press_id", "cancel_until"}  # a discreet confirmation, nothing more
    assert body["cancel_until"].startswith((clock.now() + timedelta(seconds=30)).isoformat()[:19])
    events = await _events(sessionmaker)
    assert [(e.type, e.source, e.sender) for e in events] == [("panic.pressed", "web", "user:ana")]
    assert events[0].facility_id == panic_sites["PAN-1"]
    assert events[0].attributes["silent"] is True
    async with sessionmaker() as db:
        press = await db.get(PanicPress, body["press_id"])
        assert press is not None and press.event_id == events[0].id
        subjects = (await db.execute(select(OutboxMessage.subject))).scalars().all()
        assert subjects == ["event.PAN-1.panic_pressed"]
    assert await _actions(sessionmaker) == ["panic.codes_set", "panic.raised"]


async def test_press_location_defaults_and_choices(log_in, sessionmaker, panic_sites) -> None:  # type: ignore[no-untyped-def]
    # an organisation-wide operator whose staff record is at PAN-2
    olga = await log_in("olga", [("operator", auth_service.ScopeSpec.org())], person_at="PAN-2")
    r = await olga.post("/api/v1/panic", {})
    assert r.status_code == 201
    # an organisation-wide operator with no staff record must say where they are
    otto = await log_in("otto", [("operator", auth_service.ScopeSpec.org())])
    r = await otto.post("/api/v1/panic", {})
    assert r.status_code == 422
    assert "facility" in r.json()["detail"]
    r = await otto.post("/api/v1/panic", {"facility_code": "PAN-1", "zone_code": "LOBBY"})
    assert r.status_code == 201
    events = await _events(sessionmaker)
    assert [e.facility_id for e in events] == [panic_sites["PAN-2"], panic_sites["PAN-1"]]
    assert events[1].zone_id == panic_sites["PAN-1/LOBBY"]

    r = await otto.post("/api/v1/panic", {"facility_code": "PAN-1", "zone_code": "ROOF"})
    assert r.status_code == 422
    r = await otto.post("/api/v1/panic", {"facility_code": "NOWHERE"})
    assert r.status_code == 404
    r = await otto.post("/api/v1/panic", {"facility_code": "PAN-1", "colour": "red"})
    assert r.status_code == 422
    assert len(await _events(sessionmaker)) == 2


async def test_press_outside_ones_grants_is_refused(staff, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    r = await staff.post("/api/v1/panic", {"facility_code": "PAN-2"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith(PROBLEM)
    assert await _events(sessionmaker) == []


async def test_cancel_code_marks_the_alarm_cancelled_by_sender(
    staff, sessionmaker, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    press_id = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    alarm_id = await _alarm_for(sessionmaker, press_id, clock)
    clock.advance(seconds=20)
    r = await staff.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "cancelled"}
    async with sessionmaker() as db:
        alarm = await db.get(Alarm, alarm_id)
        assert alarm is not None and alarm.state == AlarmState.CANCELLED_BY_SENDER
        press = await db.get(PanicPress, press_id)
        assert press is not None and press.cancelled_at == clock.now()
    assert [e.type for e in await _events(sessionmaker)] == ["panic.pressed"]
    assert (await _actions(sessionmaker))[-1] == "panic.cancelled"
    # entering it again changes nothing and answers the same
    r2 = await staff.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r2.status_code == 200 and r2.content == r.content


async def test_duress_code_looks_like_a_cancel_but_raises_duress(
    staff, log_in, sessionmaker, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    first = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    cancelled = await staff.post(f"/api/v1/panic/{first}/cancel", {"code": "1234"})

    second = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    alarm_id = await _alarm_for(sessionmaker, second, clock)
    duress = await staff.post(f"/api/v1/panic/{second}/cancel", {"code": "9876"})

    # byte for byte the same answer: status, headers that matter, body
    assert duress.status_code == cancelled.status_code == 200
    assert duress.content == cancelled.content
    assert duress.headers["content-type"] == cancelled.headers["content-type"]
    assert duress.headers["content-length"] == cancelled.headers["content-length"]
    assert sorted(duress.headers.keys()) == sorted(cancelled.headers.keys())

    events = await _events(sessionmaker)
    assert [e.type for e in events] == ["panic.pressed", "panic.pressed", "duress.code"]
    assert events[2].attributes["press_id"] == second
    assert events[2].attributes["silent"] is True
    async with sessionmaker() as db:
        alarm = await db.get(Alarm, alarm_id)
        assert alarm is not None and alarm.state == AlarmState.ACTIVE  # not cancelled
        press = await db.get(PanicPress, second)
        assert press is not None and press.duress_at is not None and press.cancelled_at is None
        subjects = (
            await db.execute(select(OutboxMessage.subject).order_by(OutboxMessage.id))
        ).scalars()
        assert list(subjects)[-1] == "event.PAN-1.duress_code"
    assert (await _actions(sessionmaker))[-1] == "panic.duress"


async def test_three_wrong_codes_then_no_more_attempts(staff, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    press_id = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    url = f"/api/v1/panic/{press_id}/cancel"
    for left in (2, 1, 0):
        r = await staff.post(url, {"code": "0000"})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["errors"][0]["attempts_left"] == left
        assert f"{left} attempt" in r.json()["detail"]
    r = await staff.post(url, {"code": "1234"})  # the right code, but too many tries
    assert r.status_code == 409
    assert "operator has been alerted" in r.json()["detail"]
    async with sessionmaker() as db:
        press = await db.get(PanicPress, press_id)
        assert press is not None and press.failed_attempts == 3 and press.cancelled_at is None
    assert (await _actions(sessionmaker)).count("panic.cancel_refused") == 4


async def test_a_malformed_code_is_not_an_attempt(staff, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    press_id = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    for body in ({"code": "12"}, {"code": 1234}, {"code": "abcd"}, {}, {"code": "1234", "x": 1}):
        r = await staff.post(f"/api/v1/panic/{press_id}/cancel", body)
        assert r.status_code == 422
    async with sessionmaker() as db:
        press = await db.get(PanicPress, press_id)
        assert press is not None and press.failed_attempts == 0


async def test_after_the_window_it_is_too_late(staff, sessionmaker, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    press_id = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    clock.advance(seconds=30)
    r = await staff.post(f"/api/v1/panic/{press_id}/cancel", {"code": "9999"})
    assert r.status_code == 422  # still inside the window (at its last instant)
    clock.advance(seconds=1)
    r = await staff.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["detail"] == "Too late: the operator has been alerted."


async def test_the_window_is_configurable(app, staff, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    app.state.settings = app.state.settings.model_copy(update={"panic_cancel_window_seconds": 5})
    r = await staff.post("/api/v1/panic", {})
    press_id = r.json()["press_id"]
    assert r.json()["cancel_until"].startswith(
        (clock.now() + timedelta(seconds=5)).isoformat()[:19]
    )
    clock.advance(seconds=6)
    r = await staff.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r.status_code == 409


async def test_only_ones_own_press_can_be_cancelled(staff, log_in, make_token) -> None:  # type: ignore[no-untyped-def]
    press_id = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    bob = await log_in("bob", [("facility_manager", auth_service.ScopeSpec.facility("PAN-1"))])
    await bob.put("/api/v1/panic/codes", {"cancel_code": "1234", "duress_code": "9876"})
    r = await bob.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    r = await staff.post("/api/v1/panic/999999/cancel", {"code": "1234"})
    assert r.status_code == 404
    r = await staff.post(f"/api/v1/panic/{2**63}/cancel", {"code": "1234"})
    assert r.status_code == 422


async def test_cancel_without_codes_is_refused_and_the_alarm_stands(log_in) -> None:  # type: ignore[no-untyped-def]
    carl = await log_in("carl", [("guard", auth_service.ScopeSpec.facility("PAN-1"))])
    press_id = (await carl.post("/api/v1/panic", {})).json()["press_id"]
    r = await carl.post(f"/api/v1/panic/{press_id}/cancel", {"code": "1234"})
    assert r.status_code == 409
    assert "operator has been alerted" in r.json()["detail"]


async def test_tokens_and_anonymous_callers_cannot_use_panic(
    client: httpx.AsyncClient, make_token, panic_sites
) -> None:  # type: ignore[no-untyped-def]
    for method, url, body in (
        ("PUT", "/api/v1/panic/codes", {"cancel_code": "1234", "duress_code": "9876"}),
        ("POST", "/api/v1/panic", {}),
        ("POST", "/api/v1/panic/1/cancel", {"code": "1234"}),
    ):
        r = await client.request(method, url, json=body)
        assert r.status_code == 401, (url, r.text)
        token = await make_token("admin", org=True)
        r = await client.request(method, url, json=body, headers=token)
        assert r.status_code == 403, (url, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)


async def test_browser_calls_need_the_csrf_token(staff) -> None:  # type: ignore[no-untyped-def]
    r = await staff.client.post("/api/v1/panic", json={})
    assert r.status_code == 403


async def _handle_outbox_events(maker: async_sessionmaker[AsyncSession], clock) -> list[Alarm]:  # type: ignore[no-untyped-def]
    """Play the stored event messages through the alarms handler, as the runtime would."""
    from watchfloor.alarms import service as alarms

    raised: list[Alarm] = []
    async with maker() as db:
        rows = (
            await db.execute(
                select(OutboxMessage)
                .where(OutboxMessage.subject.like("event.%"), OutboxMessage.published_at.is_(None))
                .order_by(OutboxMessage.id)
            )
        ).scalars()
        for msg in list(rows):
            raised += await alarms.handle_event(db, clock, msg.payload)
            msg.published_at = clock.now()
        await db.commit()
    return raised


async def test_through_the_alarm_pipeline(staff, sessionmaker, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.alarms.defaults import ensure_defaults

    async with sessionmaker() as db:
        await ensure_defaults(db, clock)
        await db.commit()
    first = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    [panic] = await _handle_outbox_events(sessionmaker, clock)
    assert (panic.priority, panic.type) == (1, "panic")
    await staff.post(f"/api/v1/panic/{first}/cancel", {"code": "1234"})
    async with sessionmaker() as db:
        alarm = await db.get(Alarm, panic.id)
        assert alarm is not None and alarm.state == AlarmState.CANCELLED_BY_SENDER

    second = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    await _handle_outbox_events(sessionmaker, clock)
    await staff.post(f"/api/v1/panic/{second}/cancel", {"code": "9876"})
    [duress] = await _handle_outbox_events(sessionmaker, clock)
    assert duress.priority == 1 and duress.type.startswith("duress")


async def test_duress_code_gets_through_even_when_too_late_or_out_of_attempts(
    staff, sessionmaker, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    late = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    clock.advance(seconds=31)
    as_cancel = await staff.post(f"/api/v1/panic/{late}/cancel", {"code": "1234"})
    as_duress = await staff.post(f"/api/v1/panic/{late}/cancel", {"code": "9876"})
    assert as_cancel.status_code == as_duress.status_code == 409
    assert as_cancel.content == as_duress.content

    fumbled = (await staff.post("/api/v1/panic", {})).json()["press_id"]
    for _ in range(3):
        await staff.post(f"/api/v1/panic/{fumbled}/cancel", {"code": "0000"})
    as_cancel = await staff.post(f"/api/v1/panic/{fumbled}/cancel", {"code": "1234"})
    as_duress = await staff.post(f"/api/v1/panic/{fumbled}/cancel", {"code": "9876"})
    assert as_cancel.status_code == as_duress.status_code == 409
    assert as_cancel.content == as_duress.content

    duress = [e for e in await _events(sessionmaker) if e.type == "duress.code"]
    assert sorted(e.attributes["press_id"] for e in duress) == sorted([late, fumbled])
    # entering it again raises no second duress alarm for the same press
    await staff.post(f"/api/v1/panic/{late}/cancel", {"code": "9876"})
    assert len([e for e in await _events(sessionmaker) if e.type == "duress.code"]) == 2
