"""Test data and real peers for the notify tests (a module, so test files can import it by name).

- `SmtpPeer`: a real SMTP server (aiosmtpd) on a free loopback port that records every message
  it accepts, and can be stopped and started again (the "SMTP peer down" fault).
- `SmsCarrier`: a stand-in SMS carrier: a local HTTP server that takes the JSON posts Apprise's
  json:// plugin sends (the phone number in the payload's "to" field) and records them. This is
  the one fake in the notify tests: a real carrier cannot be reached from here.
- `build_site`: two facilities (A with N staff who have e-mail and phone, B with one person),
  a response unit with an e-mail contact, and operators.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from watchfloor.people.models import Person
from watchfloor.sites.models import Facility, Organisation, Region, ResponseUnit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    rcpt: list[str]
    message: Message

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        return payload.decode() if isinstance(payload, bytes) else str(payload)


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        with self.peer.lock:
            self.peer.received.append(
                Received(list(envelope.rcpt_tos), message_from_bytes(content))
            )
        return "250 Message accepted for delivery"


class SmtpPeer:
    """aiosmtpd on loopback; `stop()` takes it down (connections refused), `start()` back up."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt]

    def by_message_id(self) -> dict[str, list[Received]]:
        found: dict[str, list[Received]] = {}
        with self.lock:
            for r in self.received:
                found.setdefault(r.message_id, []).append(r)
        return found


class SmsCarrier:
    """A local HTTP endpoint standing in for an SMS gateway (Apprise json:// posts here)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.refuse = False
        carrier = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                data = json.loads(self.rfile.read(length) or b"{}")
                if carrier.refuse:
                    self.send_response(503)
                    self.end_headers()
                    return
                carrier.received.append(
                    {
                        "to": data.get("to"),
                        "message": data.get("message"),
                        "title": data.get("title"),
                        "key": self.headers.get("X-Idempotency-Key"),
                    }
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/sms?:to={{number}}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Ref:
    """Plain values of a row (rows expire when a test commits)."""

    id: int
    code: str = ""
    name: str = ""
    email: str = ""
    phone: str = ""
    region_id: int = 0


@dataclass
class Site:
    a: Ref
    b: Ref
    staff: list[Ref] = field(default_factory=list)  # at A
    b_person: Ref = field(default_factory=lambda: Ref(0))
    operator: Ref = field(default_factory=lambda: Ref(0))  # at A
    manager: Ref = field(default_factory=lambda: Ref(0))  # at A
    unit: Ref = field(default_factory=lambda: Ref(0))  # at A


async def build_site(db: Any, clock: Any, staff: int = 5, *, phones: bool = True) -> Site:
    now = clock.now()
    org = Organisation(code="ORG", name="Org", created_at=now, updated_at=now)
    ra = Region(code="RA", name="Region A", organisation=org, created_at=now, updated_at=now)
    rb = Region(code="RB", name="Region B", organisation=org, created_at=now, updated_at=now)
    a = Facility(
        code="DAL-FO",
        name="Dallas Field Office",
        region=ra,
        address="1 Main St",
        city="Dallas",
        state="TX",
        latitude=32.7767,
        longitude=-96.797,
        timezone="America/Chicago",
        created_at=now,
        updated_at=now,
    )
    b = Facility(
        code="BOS-FO",
        name="Boston Field Office",
        region=rb,
        latitude=42.36,
        longitude=-71.06,
        created_at=now,
        updated_at=now,
    )
    db.add_all([org, ra, rb, a, b])
    await db.flush()

    def person(fac: Facility, n: int, role: str = "staff", title: str = "") -> Person:
        p = Person(
            facility_id=fac.id,
            employee_id=f"{fac.code}-E{n:05d}",
            given_name=f"Given{n}",
            family_name=f"Family{n}",
            job_title=title,
            role=role,
            email=f"p{n}@{fac.code.lower()}.example",
            phone=f"+1555{fac.id:02d}{n:05d}" if phones else "",
            contacts=[],
            created_at=now,
            updated_at=now,
        )
        db.add(p)
        return p

    staff_rows = [person(a, i) for i in range(1, staff + 1)]
    operator = person(a, 90001, role="operator", title="Watch officer")
    manager = person(a, 90002, role="facility_manager", title="Security manager")
    b_person = person(b, 1)
    unit = ResponseUnit(
        facility_id=a.id,
        code="PD-1",
        name="Dallas PD",
        kind="police",
        contacts=[{"channel": "email", "value": "dispatch@dallaspd.example"}],
        created_at=now,
        updated_at=now,
    )
    db.add(unit)
    await db.flush()

    def ref(p: Person) -> Ref:
        return Ref(p.id, p.employee_id, f"{p.given_name} {p.family_name}", p.email, p.phone)

    site = Site(
        a=Ref(a.id, a.code, a.name, region_id=a.region_id),
        b=Ref(b.id, b.code, b.name, region_id=b.region_id),
        staff=[ref(p) for p in staff_rows],
        b_person=ref(b_person),
        operator=ref(operator),
        manager=ref(manager),
        unit=Ref(unit.id, unit.code, unit.name, email="dispatch@dallaspd.example"),
    )
    await db.commit()
    return site
