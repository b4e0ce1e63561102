"""The delivery engine against a real SMTP peer (aiosmtpd) and the stand-in SMS carrier: fan-out,
retries with back-off on the FakeClock, fallback to the next channel, rate limits, idempotency."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.bus.models import OutboxMessage
from watchfloor.notify.delivery import DeliveryEngine, backoff_seconds, message_id
from watchfloor.notify.models import Alert, Delivery, DeliveryState
from watchfloor.notify.service import Audience, send_alert

from notify_site import Site, SmsCarrier, SmtpPeer  # isort: skip


async def _deliveries(db, alert_id: int) -> list[Delivery]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return list(
        (
            await db.execute(
                select(Delivery)
                .where(Delivery.alert_id == alert_id)
                .order_by(Delivery.recipient_id, Delivery.rank)
            )
        )
        .scalars()
        .all()
    )


async def test_fan_out_reaches_every_recipient_once(
    db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    alert = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(everyone_at_facilities=True),
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    # nothing goes out before the engine runs, and the commit queued the dispatch message
    assert smtp_peer.received == []
    assert await db.scalar(
        select(func.count()).where(OutboxMessage.msg_id == f"notify-alert-{alert_id}")
    )
    await engine.tick()
    people = [*site.staff, site.operator, site.manager]
    for p in people:
        got = smtp_peer.to(p.email)
        assert len(got) == 1, p.email
        msg = got[0]
        assert msg.message["Subject"] == "Lockdown at Dallas Field Office"
        assert "Go to a lockable room" in msg.body
        assert "silence your phone" in msg.body
        assert "https://watchfloor.example/ack/" in msg.body
    # the B person is not at A: not an addressee
    assert smtp_peer.to(site.b_person.email) == []
    rows = await _deliveries(db, alert_id)
    email = [d for d in rows if d.channel == "email"]
    sms = [d for d in rows if d.channel == "sms"]
    assert {d.state for d in email} == {DeliveryState.SENT}
    assert all(d.attempts == 1 and d.sent_at == clock.now() for d in email)
    assert {d.provider_message_id for d in email} == {message_id(d.key) for d in email}
    # phones are the fallback channel: not used while e-mail works
    assert {d.state for d in sms} == {DeliveryState.STANDBY}
    assert len(sms) == len(people)
    # a second pass sends nothing again
    await engine.tick()
    assert len(smtp_peer.received) == len(people)


async def test_exercise_and_test_alerts_say_so_in_every_message(
    db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    drill = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[site.staff[0].id]),
        status="Exercise",
        sender="user:alice",
    )
    test = await send_alert(
        db,
        clock,
        template="test",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[site.staff[1].id]),
        status="Test",
        sender="user:alice",
    )
    statuses = (drill.status, test.status)
    test_cap = test.cap_xml
    await db.commit()
    await engine.tick()
    drill_msg = smtp_peer.to(site.staff[0].email)[0]
    assert drill_msg.body.startswith("EXERCISE - this is a drill.")
    assert drill_msg.message["Subject"].startswith("EXERCISE:")
    assert drill_msg.message["X-Watchfloor-Status"] == "Exercise"
    test_msg = smtp_peer.to(site.staff[1].email)[0]
    assert test_msg.body.startswith("TEST - not a real alert")
    assert test_msg.message["X-Watchfloor-Status"] == "Test"
    assert statuses == ("Exercise", "Test")
    assert "<status>Test</status>" in test_cap


async def test_smtp_down_retries_with_backoff_then_falls_back_to_sms(
    db,
    clock,
    site: Site,
    engine: DeliveryEngine,
    smtp_peer: SmtpPeer,
    sms_carrier: SmsCarrier,
    settings,
) -> None:
    smtp_peer.stop()
    target = site.staff[0]
    alert = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[target.id]),
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    start = clock.now()
    await engine.tick()
    email, sms = await _deliveries(db, alert_id)
    assert (email.channel, email.state, email.attempts) == ("email", DeliveryState.QUEUED, 1)
    assert "SMTP server unreachable" in (email.last_error or "")
    assert email.next_attempt_at == start + timedelta(seconds=backoff_seconds(settings, 1))
    assert sms.state == DeliveryState.STANDBY
    # not due yet: nothing happens
    clock.advance(seconds=backoff_seconds(settings, 1) - 1)
    await engine.tick()
    email, sms = await _deliveries(db, alert_id)
    assert email.attempts == 1
    # second attempt after 10 s, third after a further 20 s (exponential)
    clock.advance(seconds=1)
    await engine.tick()
    email, sms = await _deliveries(db, alert_id)
    assert (email.state, email.attempts) == (DeliveryState.QUEUED, 2)
    assert email.next_attempt_at == clock.now() + timedelta(seconds=backoff_seconds(settings, 2))
    assert backoff_seconds(settings, 2) == 2 * backoff_seconds(settings, 1)
    clock.advance(seconds=backoff_seconds(settings, 2))
    await engine.tick()
    email, sms = await _deliveries(db, alert_id)
    # the last attempt failed: e-mail failed, SMS queued and sent in the same pass
    assert (email.state, email.attempts) == (DeliveryState.FAILED, 3)
    assert email.failed_at == clock.now()
    assert (sms.state, sms.attempts) == (DeliveryState.SENT, 1)
    assert len(sms_carrier.received) == 1
    text = sms_carrier.received[0]
    assert text["to"] == target.phone
    assert "Lockdown at Dallas Field Office" in text["message"]
    assert "Reply ACK" in text["message"]
    assert text["key"] == sms.key
    # the SMTP peer comes back: nothing more is sent there for this alert
    smtp_peer.start()
    clock.advance(seconds=3600)
    await engine.tick()
    assert smtp_peer.received == []


async def test_every_channel_failing_leaves_the_recipient_failed(
    db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer, sms_carrier: SmsCarrier
) -> None:
    smtp_peer.stop()
    sms_carrier.refuse = True
    alert = await send_alert(
        db,
        clock,
        template="test",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[site.staff[0].id]),
        status="Test",
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    for _ in range(8):
        await engine.tick()
        clock.advance(seconds=120)
    email, sms = await _deliveries(db, alert_id)
    assert email.state == sms.state == DeliveryState.FAILED
    assert sms.attempts == 3
    assert "refused or could not be reached" in (sms.last_error or "")


async def test_same_key_twice_is_one_alert(
    db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    kwargs = {
        "template": "lockdown",
        "facility_ids": [site.a.id],
        "audience": Audience(everyone_at_facilities=True),
        "sender": "system:lockdown",
        "key": "lockdown-7-started",
    }
    first = (await send_alert(db, clock, **kwargs)).id  # type: ignore[arg-type]
    await db.commit()
    second = (await send_alert(db, clock, **kwargs)).id  # type: ignore[arg-type]
    await db.commit()
    assert first == second
    assert await db.scalar(select(func.count()).select_from(Alert)) == 1
    await engine.tick()
    assert len(smtp_peer.received) == len(site.staff) + 2


async def test_rate_limit_spreads_sending_over_time(
    app, db, clock, site: Site, smtp_peer: SmtpPeer
) -> None:
    settings = app.state.settings.model_copy(update={"notify_rate_limits": {"email": 2.0}})
    eng = DeliveryEngine(app.state.sessionmaker, clock, settings, secret_key="k")
    try:
        await send_alert(
            db,
            clock,
            template="test",
            facility_ids=[site.a.id],
            audience=Audience(everyone_at_facilities=True),
            status="Test",
            sender="user:alice",
        )
        await db.commit()
        await eng.tick()
        assert len(smtp_peer.received) == 2  # the bucket holds 2
        await eng.tick()
        assert len(smtp_peer.received) == 2  # no time passed: no tokens
        clock.advance(seconds=1)
        await eng.tick()
        assert len(smtp_peer.received) == 4
        # a long pause does not save up more than one second's worth (burst = rate)
        clock.advance(seconds=10)
        await eng.tick()
        assert len(smtp_peer.received) == 6
        clock.advance(seconds=1)
        await eng.tick()
        assert len(smtp_peer.received) == len(site.staff) + 2
    finally:
        await eng.close()


async def test_recipient_without_channels_is_shown_on_the_console(db, clock, site: Site) -> None:
    from watchfloor.people.models import Person

    person = await db.get(Person, site.staff[0].id)
    person.email = ""
    person.phone = ""
    await db.commit()
    alert = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[site.staff[0].id]),
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    (only,) = await _deliveries(db, alert_id)
    assert (only.channel, only.state) == ("console", DeliveryState.SENT)
    assert "console only" in (only.last_error or "")


async def test_sending_is_audited_and_rolled_back_alerts_send_nothing(
    db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(everyone_at_facilities=True),
        sender="user:alice",
    )
    await db.rollback()
    await engine.tick()
    assert smtp_peer.received == []
    assert await db.scalar(select(func.count()).select_from(Alert)) == 0
    alert = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(roles=["operator"]),
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    rec = (
        await db.execute(select(AuditRecord).where(AuditRecord.action == "notify.alert.send"))
    ).scalar_one()
    assert rec.target_id == str(alert_id)
    assert rec.details["recipients"] == 1


async def test_webhook_and_chat_contacts_go_through_apprise(
    db, clock, site: Site, engine: DeliveryEngine, sms_carrier: SmsCarrier
) -> None:
    from watchfloor.people.models import Person

    person = await db.get(Person, site.staff[0].id)
    person.email = ""
    person.phone = ""
    person.contacts = [
        {"channel": "radio", "value": "channel 3"},  # not something we can send to: skipped
        {"channel": "webhook", "value": f"json://127.0.0.1:{sms_carrier.port}/hook"},
    ]
    await db.commit()
    alert = await send_alert(
        db,
        clock,
        template="lockdown",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[site.staff[0].id]),
        sender="user:alice",
    )
    alert_id = alert.id
    await db.commit()
    await engine.tick()
    (only,) = await _deliveries(db, alert_id)
    assert (only.channel, only.state) == ("webhook", DeliveryState.SENT)
    (got,) = sms_carrier.received
    assert "Lockdown at Dallas Field Office" in got["message"]
    assert got["key"] == only.key  # the delivery's idempotency key travels as a header


async def test_per_person_values_reach_only_their_person(
    db, clock, site: Site, engine: DeliveryEngine, smtp_peer: SmtpPeer
) -> None:
    first, second = site.staff[0], site.staff[1]
    alert = await send_alert(
        db,
        clock,
        template="rollcall_ask",
        facility_ids=[site.a.id],
        audience=Audience(staff_ids=[first.id, second.id]),
        per_person={
            first.id: {"answer_url": "https://watchfloor.example/r/first-token"},
            second.id: {"answer_url": "https://watchfloor.example/r/second-token"},
        },
        sender="system:rollcall",
    )
    alert_text = alert.text
    await db.commit()
    assert "[your answer url]" in alert_text  # the alert's own text names no one's link
    await engine.tick()
    (one,) = smtp_peer.to(first.email)
    (two,) = smtp_peer.to(second.email)
    assert "https://watchfloor.example/r/first-token" in one.body
    assert "second-token" not in one.body
    assert "https://watchfloor.example/r/second-token" in two.body
