"""Roll call over the API and the public answer link: start asks everyone, answers by link / SMS
/ operator, the tally, close, and everything refused that must be."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from itsdangerous import URLSafeSerializer
from rollcall_helpers import RollSite, by_employee, entry_of, token_of
from sqlalchemy import func, select

from watchfloor.audit.models import AuditRecord
from watchfloor.rollcall import service
from watchfloor.rollcall.models import RollCall, RollCallAnswer, RollCallEntry


async def _start(client, headers, **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    payload = {"facility_code": "HQ", "reason": "fire alarm", **body}
    resp = await client.post("/api/v1/roll-calls", json=payload, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _links(app, detail: dict[str, Any], people: dict[str, int]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Each person's answer-link token, made exactly as the roll call makes the ones it sends."""
    secret = app.state.secret_key
    issued = datetime.fromisoformat(detail["started_at"])
    return {
        e["employee_id"]: service.make_token(
            secret, detail["id"], e["id"], people[e["employee_id"]], issued
        )
        for e in detail["entries"]
    }


async def _audit_actions(db) -> list[str]:  # type: ignore[no-untyped-def]
    return list((await db.scalars(select(AuditRecord.action).order_by(AuditRecord.id))).all())


# ---------------------------------------------------------------------------- starting


async def test_start_asks_every_active_person_of_the_facility(
    client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    assert detail["state"] == "open" and detail["exercise"] is False
    assert detail["facility_code"] == "HQ" and detail["trigger"] == "api"
    # active HQ staff only: not the inactive one, not LAX's
    assert sorted(by_employee(detail)) == ["HQ-001", "HQ-002", "HQ-003"]
    assert detail["tally"] == {"safe": 0, "need_help": 0, "no_answer": 3, "total": 3}
    assert all(e["answer"] == "no_answer" and e["kind"] == "staff" for e in detail["entries"])
    assert "rollcall.started" in await _audit_actions(db)
    # one open roll call per facility
    resp = await client.post("/api/v1/roll-calls", json={"facility_code": "HQ"}, headers=operator)
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert await db.scalar(select(func.count()).select_from(RollCall)) == 1
    # another facility may have its own at the same time
    resp = await client.post("/api/v1/roll-calls", json={"facility_code": "LAX"}, headers=operator)
    assert resp.status_code == 201, resp.text


async def test_names_and_employee_ids_are_snapshotted(
    client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.people.models import Person

    detail = await _start(client, operator)
    person = await db.get(Person, rsite.people["HQ-001"])
    person.given_name = "Renamed"
    await db.commit()
    resp = await client.get(f"/api/v1/roll-calls/{detail['id']}", headers=operator)
    assert by_employee(resp.json())["HQ-001"]["name"] == "Ana Alvarez"


async def test_start_refuses_bad_input_and_changes_nothing(
    client, db, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    cases = [
        {"facility_code": "NOPE"},
        {"facility_code": "HQ", "reason": "x" * 301},
        {"facility_code": "HQ", "exercise": "maybe"},
        {"facility_code": "HQ", "incident_id": 0},
        {"facility_code": "HQ", "incident_id": 999999},
        {"facility_code": "HQ", "surprise": 1},
        {"facility_code": "../HQ"},
        {},
    ]
    for body in cases:
        resp = await client.post("/api/v1/roll-calls", json=body, headers=operator)
        assert resp.status_code in (404, 422), (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await client.post("/api/v1/roll-calls", content=b"{not json", headers=operator)
    assert resp.status_code == 422
    # roles and scope: a programme manager reads but does not start; LAX's guard not at HQ
    reader = await make_token("programme_manager", org=True)
    resp = await client.post("/api/v1/roll-calls", json={"facility_code": "HQ"}, headers=reader)
    assert resp.status_code == 403
    lax_guard = await make_token("guard", facility="LAX")
    resp = await client.post("/api/v1/roll-calls", json={"facility_code": "HQ"}, headers=lax_guard)
    assert resp.status_code == 403
    resp = await client.post("/api/v1/roll-calls", json={"facility_code": "HQ"})
    assert resp.status_code == 401
    assert await db.scalar(select(func.count()).select_from(RollCall)) == 0


# ---------------------------------------------------------------------------- answer links


async def test_answer_by_link_records_and_may_change(
    app, client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    tokens = _links(app, detail, rsite.people)
    page = await client.get(f"/r/{tokens['HQ-001']}")
    assert page.status_code == 200
    assert "Are you safe?" in page.text and "I am safe" in page.text and "I need help" in page.text
    # the page shows nothing about anyone
    for secret in ("Ana", "Alvarez", "HQ-001", "HQ Office", "fire alarm"):
        assert secret not in page.text
    resp = await client.post(f"/r/{tokens['HQ-001']}", data={"answer": "safe"})
    assert resp.status_code == 200 and "marked safe" in resp.text
    entry = await entry_of(db, detail["id"], "HQ-001")
    assert (entry.answer, entry.channel, entry.answered_by) == ("safe", "link", None)
    # changing the answer is allowed and kept in the history
    resp = await client.post(f"/r/{tokens['HQ-001']}", data={"answer": "need_help"})
    assert resp.status_code == 200 and "Help is being sent" in resp.text
    entry = await entry_of(db, detail["id"], "HQ-001")
    assert entry.answer == "need_help"
    got = (await client.get(f"/api/v1/roll-calls/{detail['id']}", headers=operator)).json()
    assert [(h["answer"], h["channel"]) for h in got["history"]] == [
        ("safe", "link"),
        ("need_help", "link"),
    ]
    assert got["tally"] == {"safe": 0, "need_help": 1, "no_answer": 2, "total": 3}
    # need help first, then no answer, then safe
    assert [e["employee_id"] for e in got["entries"]][0] == "HQ-001"
    # the page now says what was answered, and offers a change
    page = await client.get(f"/r/{tokens['HQ-001']}")
    assert "You answered" in page.text


async def test_a_link_answers_only_for_its_own_person(
    app, client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    tokens = _links(app, detail, rsite.people)
    resp = await client.post(f"/r/{tokens['HQ-002']}", data={"answer": "safe"})
    assert resp.status_code == 200
    assert (await entry_of(db, detail["id"], "HQ-002")).answer == "safe"
    assert (await entry_of(db, detail["id"], "HQ-001")).answer == "no_answer"
    assert (await entry_of(db, detail["id"], "HQ-003")).answer == "no_answer"


async def test_expired_forged_and_mismatched_links_are_refused(
    app, client, db, clock, operator, settings, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    first = await _start(client, operator)
    other = await _start(client, operator, facility_code="LAX")
    tokens = _links(app, first, rsite.people)
    good = tokens["HQ-001"]
    forged = [
        good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),  # signature changed
        URLSafeSerializer("another-key", salt=service.TOKEN_SALT).dumps(
            [first["id"], first["entries"][0]["id"], 0, 0]
        ),
        # correctly signed, but the entry belongs to another roll call
        service.make_token(
            app.state.secret_key, first["id"], other["entries"][0]["id"], 0, clock.now()
        ),
        # correctly signed, but not a roll-call link's shape
        URLSafeSerializer(app.state.secret_key, salt=service.TOKEN_SALT).dumps({"r": 1}),
        "not-a-token",
        "x" * 500,
    ]
    for token in forged:
        for method in ("GET", "POST"):
            resp = await client.request(method, f"/r/{token}", data={"answer": "safe"})
            assert resp.status_code == 404, (token, method, resp.status_code)
            assert "not valid" in resp.text
    clock.advance(hours=settings.rollcall_link_hours + 0.1)
    resp = await client.get(f"/r/{good}")
    assert resp.status_code == 410 and "expired" in resp.text
    resp = await client.post(f"/r/{good}", data={"answer": "safe"})
    assert resp.status_code == 410
    count = await db.scalar(select(func.count()).select_from(RollCallAnswer))
    assert count == 0
    assert (await entry_of(db, first["id"], "HQ-001")).answer == "no_answer"


async def test_link_after_close_is_refused(app, client, db, operator, rsite: RollSite) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    tokens = _links(app, detail, rsite.people)
    assert (await client.post(f"/r/{tokens['HQ-001']}", data={"answer": "safe"})).status_code == 200
    resp = await client.post(f"/api/v1/roll-calls/{detail['id']}/close", headers=operator)
    assert resp.status_code == 200 and resp.json()["state"] == "closed"
    for token, answer in ((tokens["HQ-001"], "need_help"), (tokens["HQ-002"], "safe")):
        resp = await client.post(f"/r/{token}", data={"answer": answer})
        assert resp.status_code == 410 and "closed" in resp.text
        assert (await client.get(f"/r/{token}")).status_code == 410
    assert (await entry_of(db, detail["id"], "HQ-001")).answer == "safe"
    assert (await entry_of(db, detail["id"], "HQ-002")).answer == "no_answer"
    # closing twice is a conflict
    resp = await client.post(f"/api/v1/roll-calls/{detail['id']}/close", headers=operator)
    assert resp.status_code == 409
    # and a new roll call may start now
    await _start(client, operator)


async def test_link_with_a_bad_answer_changes_nothing(
    app, client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    token = _links(app, detail, rsite.people)["HQ-001"]
    for data in ({"answer": "maybe"}, {}, {"answer": "no_answer"}, {"answer": "safe" * 100}):
        resp = await client.post(f"/r/{token}", data=data)
        assert resp.status_code == 422
    assert (await entry_of(db, detail["id"], "HQ-001")).answer == "no_answer"


# ---------------------------------------------------------------------------- SMS replies


async def test_sms_reply_answers_for_the_sender(
    client, db, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    gateway = await make_token("guard", org=True, name="sms-gateway")
    resp = await client.post(
        "/api/v1/roll-calls/sms-reply",
        json={"from": "+12145550102", "text": " safe "},
        headers=gateway,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["answer"] == "safe" and resp.json()["roll_call_id"] == detail["id"]
    entry = await entry_of(db, detail["id"], "HQ-002")
    assert (entry.answer, entry.channel) == ("safe", "sms")
    resp = await client.post(
        "/api/v1/roll-calls/sms-reply",
        json={"from": "(214) 555-0101", "text": "HELP"},
        headers=gateway,
    )
    assert resp.status_code == 200
    assert (await entry_of(db, detail["id"], "HQ-001")).answer == "need_help"


async def test_sms_reply_dead_ends_clearly(
    client, db, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    await _start(client, operator)
    gateway = await make_token("guard", org=True, name="sms-gateway")
    url = "/api/v1/roll-calls/sms-reply"
    # a number nobody in an open roll call has
    resp = await client.post(url, json={"from": "+19995550000", "text": "SAFE"}, headers=gateway)
    assert resp.status_code == 404 and resp.json()["type"].endswith("unknown-number")
    # LAX staff have no open roll call
    resp = await client.post(url, json={"from": "+13105550199", "text": "SAFE"}, headers=gateway)
    assert resp.status_code == 404
    # text that is neither answer
    resp = await client.post(
        url, json={"from": "+12145550102", "text": "who is this"}, headers=gateway
    )
    assert resp.status_code == 422 and "SAFE" in resp.json()["detail"]
    # malformed bodies
    for body in (
        {"from": "+12145550102"},
        {"text": "SAFE"},
        {"from": "", "text": "SAFE"},
        {"from": "+1" * 50, "text": "SAFE"},
        {"from": "+12145550102", "text": "S" * 500},
        {"from": "+12145550102", "text": "SAFE", "extra": 1},
    ):
        resp = await client.post(url, json=body, headers=gateway)
        assert resp.status_code == 422, body
    # callers: anonymous, a token without roll-call rights, a token scoped to LAX
    resp = await client.post(url, json={"from": "+12145550102", "text": "SAFE"})
    assert resp.status_code == 401
    device = await make_token("device", org=True)
    resp = await client.post(url, json={"from": "+12145550102", "text": "SAFE"}, headers=device)
    assert resp.status_code == 403
    lax = await make_token("guard", facility="LAX")
    resp = await client.post(url, json={"from": "+12145550102", "text": "SAFE"}, headers=lax)
    assert resp.status_code == 404
    answers = await db.scalar(select(func.count()).select_from(RollCallAnswer))
    assert answers == 0


async def test_sms_reply_from_a_shared_number_needs_an_operator(
    client, db, clock, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.people.models import Person

    ben = await db.get(Person, rsite.people["HQ-002"])
    cleo = await db.get(Person, rsite.people["HQ-003"])
    cleo.phone = ben.phone
    await db.commit()
    await _start(client, operator)
    gateway = await make_token("guard", org=True)
    resp = await client.post(
        "/api/v1/roll-calls/sms-reply",
        json={"from": "+12145550102", "text": "SAFE"},
        headers=gateway,
    )
    assert resp.status_code == 409
    assert await db.scalar(select(func.count()).select_from(RollCallAnswer)) == 0


# ---------------------------------------------------------------------------- operator answers


async def test_operator_answers_for_a_person_with_zone_and_note(
    client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    ana = by_employee(detail)["HQ-001"]
    url = f"/api/v1/roll-calls/{detail['id']}/entries/{ana['id']}/answer"
    resp = await client.post(
        url,
        json={"answer": "safe", "zone_code": "LOBBY", "note": "seen by guard"},
        headers=operator,
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["entry"]["answer"] == "safe" and out["entry"]["channel"] == "console"
    assert out["entry"]["answered_by"] == "token:test-operator"
    assert out["entry"]["zone_name"] == "Lobby zone" and out["entry"]["note"] == "seen by guard"
    assert out["tally"]["safe"] == 1 and out["changed"] is True
    rec = (
        await db.scalars(
            select(AuditRecord).where(AuditRecord.action == "rollcall.answered_by_operator")
        )
    ).one()
    assert rec.actor == "token:test-operator" and rec.details["answer"] == "safe"
    assert rec.details["employee_id"] == "HQ-001"


async def test_operator_answer_refusals_change_nothing(
    client, db, operator, make_token, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    other = await _start(client, operator, facility_code="LAX")
    ana = by_employee(detail)["HQ-001"]
    url = f"/api/v1/roll-calls/{detail['id']}/entries/{ana['id']}/answer"
    for body in (
        {"answer": "maybe"},
        {"answer": "no_answer"},
        {},
        {"answer": "safe", "zone_code": "NOWHERE"},
        {"answer": "safe", "note": "x" * 501},
        {"answer": "safe", "zone_code": "YARD"},
    ):
        resp = await client.post(url, json=body, headers=operator)
        assert resp.status_code == 422, (body, resp.text)
    # an entry of another roll call, an unknown entry, an unknown roll call
    lena = other["entries"][0]["id"]
    for bad in (
        f"/api/v1/roll-calls/{detail['id']}/entries/{lena}/answer",
        f"/api/v1/roll-calls/{detail['id']}/entries/999999/answer",
        f"/api/v1/roll-calls/999999/entries/{ana['id']}/answer",
    ):
        resp = await client.post(bad, json={"answer": "safe"}, headers=operator)
        assert resp.status_code == 404, bad
    reader = await make_token("programme_manager", org=True)
    assert (await client.post(url, json={"answer": "safe"}, headers=reader)).status_code == 403
    lax_guard = await make_token("guard", facility="LAX")
    assert (await client.post(url, json={"answer": "safe"}, headers=lax_guard)).status_code == 404
    assert (await client.post(url, json={"answer": "safe"})).status_code == 401
    assert await db.scalar(select(func.count()).select_from(RollCallAnswer)) == 0
    # after the close
    await client.post(f"/api/v1/roll-calls/{detail['id']}/close", headers=operator)
    resp = await client.post(url, json={"answer": "safe"}, headers=operator)
    assert resp.status_code == 409
    assert await db.scalar(select(func.count()).select_from(RollCallAnswer)) == 0


# ---------------------------------------------------------------------------- reading


async def test_list_and_read_are_scoped(client, db, operator, make_token, rsite: RollSite) -> None:  # type: ignore[no-untyped-def]
    hq = await _start(client, operator)
    lax = await _start(client, operator, facility_code="LAX", exercise=True)
    await client.post(f"/api/v1/roll-calls/{hq['id']}/close", headers=operator)
    page = (await client.get("/api/v1/roll-calls", headers=operator)).json()
    assert page["total"] == 2
    assert [i["id"] for i in page["items"]] == [lax["id"], hq["id"]]  # open first
    assert page["items"][0]["exercise"] is True
    only_open = (await client.get("/api/v1/roll-calls?open=true", headers=operator)).json()
    assert [i["id"] for i in only_open["items"]] == [lax["id"]]
    lax_guard = await make_token("guard", facility="LAX")
    mine = (await client.get("/api/v1/roll-calls", headers=lax_guard)).json()
    assert [i["id"] for i in mine["items"]] == [lax["id"]]
    assert (
        await client.get(f"/api/v1/roll-calls/{hq['id']}", headers=lax_guard)
    ).status_code == 404
    resp = await client.get("/api/v1/roll-calls?facility=HQ", headers=lax_guard)
    assert resp.status_code == 403
    staff = await make_token("staff", facility="HQ")
    assert (await client.get("/api/v1/roll-calls", headers=staff)).status_code == 403
    assert (await client.get(f"/api/v1/roll-calls/{hq['id']}", headers=staff)).status_code == 403
    assert (await client.get("/api/v1/roll-calls")).status_code == 401
    for bad in (
        "/api/v1/roll-calls/0",
        "/api/v1/roll-calls/abc",
        "/api/v1/roll-calls?limit=0",
        "/api/v1/roll-calls?facility=%00",
    ):
        assert (await client.get(bad, headers=operator)).status_code == 422, bad


async def test_tally_counts_each_person_once_by_their_latest_answer(
    app, client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    detail = await _start(client, operator)
    tokens = _links(app, detail, rsite.people)
    await client.post(f"/r/{tokens['HQ-001']}", data={"answer": "need_help"})
    await client.post(f"/r/{tokens['HQ-001']}", data={"answer": "safe"})
    await client.post(f"/r/{tokens['HQ-002']}", data={"answer": "need_help"})
    got = (await client.get(f"/api/v1/roll-calls/{detail['id']}", headers=operator)).json()
    assert got["tally"] == {"safe": 1, "need_help": 1, "no_answer": 1, "total": 3}
    assert [e["employee_id"] for e in got["entries"]] == ["HQ-002", "HQ-003", "HQ-001"]
    assert len(got["history"]) == 3
    entries = (await db.scalars(select(RollCallEntry))).all()
    assert len(entries) == 3


async def test_start_asks_everyone_through_notify_with_their_own_link(
    client, db, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.notify.models import Alert, Delivery

    detail = await _start(client, operator, exercise=True)
    assert detail["asked"] is True and detail["ask_note"] == ""
    roll_call = await db.get(RollCall, detail["id"])
    alert = await db.get(Alert, roll_call.alert_id)
    assert alert.template == "rollcall_ask" and alert.status == "Exercise"
    deliveries = (await db.scalars(select(Delivery).where(Delivery.alert_id == alert.id))).all()
    people = {rsite.people[e]: e for e in ("HQ-001", "HQ-002", "HQ-003")}
    assert {d.recipient_id for d in deliveries} == set(people)
    links: dict[str, str] = {}
    for d in deliveries:
        found = re.search(r"https?://\S+/r/[A-Za-z0-9_.\-]+", d.body)
        assert found, d.body
        links.setdefault(people[d.recipient_id], found.group(0))
    assert len(set(links.values())) == 3  # everyone has their own link
    # the link Ana received answers for Ana
    resp = await client.post(f"/r/{token_of(links['HQ-001'])}", data={"answer": "safe"})
    assert resp.status_code == 200
    assert (await entry_of(db, detail["id"], "HQ-001")).answer == "safe"
    assert (await entry_of(db, detail["id"], "HQ-002")).answer == "no_answer"


async def test_a_roll_call_of_an_incident_writes_its_timeline(
    client, db, clock, operator, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    from watchfloor.incidents.models import Incident, TimelineEntry

    now = clock.now()
    incident = Incident(
        facility_id=rsite.hq,
        title="Armed intruder",
        priority=1,
        status="new",
        opened_at=now,
        last_alarm_at=now,
        attention_at=now,
        priority_at=now,
        alarm_count=1,
        escalation={},
    )
    lax_incident = Incident(
        facility_id=rsite.site.facilities["LAX"],
        title="Elsewhere",
        priority=2,
        status="new",
        opened_at=now,
        last_alarm_at=now,
        attention_at=now,
        priority_at=now,
        alarm_count=1,
        escalation={},
    )
    db.add_all([incident, lax_incident])
    await db.commit()
    # an incident of another facility cannot be named
    resp = await client.post(
        "/api/v1/roll-calls",
        json={"facility_code": "HQ", "incident_id": lax_incident.id},
        headers=operator,
    )
    assert resp.status_code == 422
    detail = await _start(client, operator, incident_id=incident.id)
    assert detail["incident_id"] == incident.id
    ben = by_employee(detail)["HQ-002"]
    await client.post(
        f"/api/v1/roll-calls/{detail['id']}/entries/{ben['id']}/answer",
        json={"answer": "need_help", "zone_code": "LOBBY"},
        headers=operator,
    )
    await client.post(f"/api/v1/roll-calls/{detail['id']}/close", headers=operator)
    texts = (
        await db.scalars(
            select(TimelineEntry.text)
            .where(TimelineEntry.incident_id == incident.id, TimelineEntry.kind == "rollcall")
            .order_by(TimelineEntry.id)
        )
    ).all()
    assert len(texts) == 3
    assert texts[0].startswith("Roll call started: 3 people asked")
    assert texts[1] == "Ben Baker needs help (last known zone: Lobby zone)."
    assert texts[2] == "Roll call closed: 0 safe, 1 need help, 2 no answer."


async def test_the_roll_call_opens_even_when_notify_refuses_to_ask(
    client, db, operator, monkeypatch, rsite: RollSite
) -> None:  # type: ignore[no-untyped-def]
    """Accounting for people must not depend on the notifier: the board says nobody was asked
    (operators then call people and answer for them)."""
    from watchfloor.notify import service as notify
    from watchfloor.problems import InvalidInput

    async def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise InvalidInput("no channel is configured")

    monkeypatch.setattr(notify, "send_alert", refuse)
    detail = await _start(client, operator)
    assert detail["asked"] is False
    assert detail["ask_note"] == "Nobody was asked: no channel is configured"
    assert detail["tally"]["no_answer"] == 3
    board = await client.get(f"/roll-calls/{detail['id']}", headers=operator)
    assert "Nobody was asked" in board.text
