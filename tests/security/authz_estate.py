"""Test data for the security tests (a module, so test files can import it by name).

Two facilities, A and B, in different regions, each with a zone, a device, a response unit, a
person, a user granted there and an API token scoped there. Everything of A's carries the marker
"ALFA" in its codes and names, so a response that leaks A's data to B's callers can be spotted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from watchfloor.alarms.models import Alarm, AlarmRule
from watchfloor.auth import service as auth_service
from watchfloor.events.models import DeadLetter
from watchfloor.incidents.models import EscalationPolicy, Incident
from watchfloor.panic.models import PanicPress
from watchfloor.people.models import Person
from watchfloor.sites.models import (
    Device,
    Facility,
    Organisation,
    Region,
    ResponseUnit,
    Zone,
)

MARKER = "ALFA"
#: modules that add a domain's objects to both sides: `async def build(db, clock, a, b)` returns
#: the path values (parameter name → value) naming facility A's objects of that domain
DOMAIN_ESTATES = (
    "estate_lockdown",
    "estate_notify",
    "estate_rollcall",
    "estate_assessments",
    "estate_rollout",
    "estate_drills",
    "estate_training",
)


@dataclass
class Side:
    region_code: str
    code: str
    zone_code: str
    device_code: str
    unit_code: str
    employee_id: str
    username: str
    user_id: int = 0
    grant_id: int = 0
    token_id: int = 0
    facility_id: int = 0
    dead_letter_id: int = 0
    rule_id: int = 0  # the facility's override of an alarm rule
    incident_id: int = 0
    press_id: int = 0  # a panic press by the facility's user (panic)


@dataclass
class Estate:
    a: Side
    b: Side
    # auth headers of the callers
    callers: dict[str, dict[str, str]] = field(default_factory=dict)
    # path values for facility A's objects of the domains in DOMAIN_ESTATES
    extra: dict[str, Any] = field(default_factory=dict)

    def path_values(self) -> dict[str, Any]:
        """Path parameter name → the value that names facility A's object."""
        a = self.a
        return {
            "code": a.code,
            "facility_code": a.code,
            "region_code": a.region_code,
            "zone_code": a.zone_code,
            "device_code": a.device_code,
            "unit_code": a.unit_code,
            "employee_id": a.employee_id,
            "user_id": a.user_id,
            "username": a.username,
            "grant_id": a.grant_id,
            "token_id": a.token_id,
            "dead_letter_id": a.dead_letter_id,
            "rule_id": a.rule_id,
            "incident_id": a.incident_id,
            "priority": 1,  # escalation policies: with facility_code, A's override
            "press_id": a.press_id,
            "measure": "acknowledge",  # response targets (organisation-wide)
            **self.extra,
        }


async def _side(db, clock, org: Organisation, prefix: str, label: str) -> Side:  # type: ignore[no-untyped-def]
    now = clock.now()
    side = Side(
        region_code=f"{prefix}-R",
        code=f"{prefix}-1",
        zone_code=f"{prefix}-Z1",
        device_code=f"{prefix}-D1",
        unit_code=f"{prefix}-U1",
        employee_id=f"{prefix}-P1",
        username=f"{prefix.lower()}-user",
    )
    region = Region(
        code=side.region_code,
        name=f"{label} Region",
        organisation=org,
        created_at=now,
        updated_at=now,
    )
    facility = Facility(
        code=side.code,
        name=f"{label} Field Office",
        region=region,
        address=f"1 {label} Street",
        latitude=32.7,
        longitude=-96.8,
        timezone="America/Chicago",
        created_at=now,
        updated_at=now,
    )
    zone = Zone(
        facility=facility,
        code=side.zone_code,
        name=f"{label} Lobby",
        kind="lobby",
        created_at=now,
        updated_at=now,
    )
    device = Device(
        facility=facility,
        zone=zone,
        code=side.device_code,
        name=f"{label} Front Door",
        kind="door",
        created_at=now,
        updated_at=now,
    )
    unit = ResponseUnit(
        facility=facility,
        code=side.unit_code,
        name=f"{label} Police",
        kind="police",
        contacts=[{"channel": "phone", "value": "+1 555 0100"}],
        created_at=now,
        updated_at=now,
    )
    db.add_all([region, facility, zone, device, unit])
    await db.flush()
    person = Person(
        facility_id=facility.id,
        employee_id=side.employee_id,
        given_name=label,
        family_name=f"{label}son",
        email=f"{prefix.lower()}@example.org",
        contacts=[],
        created_at=now,
        updated_at=now,
    )
    db.add(person)
    user = await auth_service.create_user(
        db,
        clock,
        "system:test",
        username=side.username,
        password="correct horse battery staple",
        display_name=f"{label} Manager",
        grants=[("facility_manager", auth_service.ScopeSpec.facility(side.code))],
    )
    token, _secret = await auth_service.create_token(
        db,
        clock,
        "system:test",
        name=f"{prefix.lower()}-door-feed",
        role="guard",
        scope=auth_service.ScopeSpec.facility(side.code),
    )
    letter = DeadLetter(  # a malformed message from A's device (events)
        received_at=now,
        source="http",
        facility_id=facility.id,
        channel="/api/v1/events",
        sender=f"token:{prefix.lower()}-door-feed",
        raw=f'{{"device": "{side.device_code}", "type": "door.forced"}}',
        reason=f"{label}: occurred_at: Field required",
    )
    db.add(letter)
    rule = AlarmRule(  # alarms: the facility's own version of an organisation rule
        facility_id=facility.id,
        key="door_forced",
        name=f"{label} door forced",
        event_type="door.forced",
        conditions={},
        alarm_type="door_forced",
        priority=1,
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    incident = Incident(  # incidents: an open P2 with one alarm and a dispatchable unit
        facility_id=facility.id,
        title=f"{label} door forced",
        priority=2,
        status="new",
        opened_at=now,
        last_alarm_at=now,
        attention_at=now,
        priority_at=now,
        alarm_count=1,
        escalation={},
    )
    db.add_all([rule, incident])
    await db.flush()
    db.add(
        Alarm(
            facility_id=facility.id,
            zone_id=zone.id,
            device_id=device.id,
            rule_key="door_forced",
            type="door_forced",
            priority=2,
            title=f"{label} door forced",
            state="active",
            raised_at=now,
            incident_id=incident.id,
            attributes={},
        )
    )
    await db.flush()
    db.add(  # escalation: the facility's own P1 policy
        EscalationPolicy(
            facility_id=facility.id,
            priority=1,
            name=f"{label} P1 chain",
            steps=[{"after_seconds": 0, "target": "watch_floor"}],
            repeat=0,
            updated_at=now,
        )
    )
    press = PanicPress(  # panic: a press by A's user, still inside its cancel window
        user_id=user.id,
        facility_id=facility.id,
        zone_id=zone.id,
        pressed_at=now,
        cancel_until=now + timedelta(days=3650),
        failed_attempts=0,
    )
    db.add(press)
    await db.flush()
    side.press_id = press.id
    side.user_id, side.grant_id, side.token_id = user.id, user.grants[0].id, token.id
    side.dead_letter_id = letter.id
    side.rule_id, side.incident_id = rule.id, incident.id
    side.facility_id = facility.id
    return side


async def build_estate(db, clock, make_token) -> Estate:  # type: ignore[no-untyped-def]
    now = clock.now()
    org = Organisation(code="AGENCY", name="Test Agency", created_at=now, updated_at=now)
    db.add(org)
    a = await _side(db, clock, org, MARKER, "Alfa")
    b = await _side(db, clock, org, "BRAVO", "Bravo")
    await db.commit()
    est = Estate(a=a, b=b)
    for name in DOMAIN_ESTATES:
        module = importlib.import_module(name)
        est.extra.update(await module.build(db, clock, a, b))
        await db.commit()
    est.callers["facility_manager@B"] = await make_token("facility_manager", facility=b.code)
    est.callers["admin@B"] = await make_token("admin", facility=b.code)
    est.callers["admin@org"] = await make_token("admin", org=True)
    return est
