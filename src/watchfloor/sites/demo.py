"""The demo organisation: a fictional nationwide agency, generated deterministically.

`build_demo()` returns the same structure an organisation YAML file holds (see importer.py), made
from a seeded random generator and the real US cities in data/us_cities.csv; `load_demo()` loads
it through the importer, so the demo exercises the one import path. Loading twice changes nothing.

Everything here is fictional: the agency, street addresses, people and phone numbers (555-01xx,
the range reserved for fiction). The demo accounts' password and TOTP secrets are public:
never run the demo accounts on a real deployment.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth.roles import Role
from watchfloor.clock import Clock
from watchfloor.sites.importer import ImportResult, apply_document, parse_mapping
from watchfloor.sites.schemas import WEEKDAYS

DATA_DIR = Path(__file__).parent / "data"
DEMO_SEED = 2026
DEMO_FACILITIES = 200
DEMO_ORG = {"code": "FPA", "name": "Federal Protective Agency (fictional demo)"}
HOME_CITY = ("Dallas", "TX")
DEMO_FACILITY = "TX-DALLAS-FO"  # where the demo manager and guard work

# DEMO ONLY: these credentials are published in the README; never use them for real accounts.
DEMO_PASSWORD = "watchfloor-demo"  # noqa: S105


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    facility: str | None  # None: the whole organisation
    display_name: str


DEMO_ACCOUNTS = (
    DemoAccount("admin", Role.ADMIN, None, "Demo Administrator"),
    DemoAccount("operator", Role.OPERATOR, None, "Demo Watch-floor Operator"),
    DemoAccount("manager", Role.FACILITY_MANAGER, DEMO_FACILITY, "Demo Facility Manager"),
    DemoAccount("guard", Role.GUARD, DEMO_FACILITY, "Demo Guard"),
    DemoAccount("programme", Role.PROGRAMME_MANAGER, None, "Demo Programme Manager"),
    DemoAccount("staff", Role.STAFF, DEMO_FACILITY, "Demo Staff Member"),
)


def demo_totp_secret(username: str) -> str:
    """The fixed, PUBLIC TOTP secret of a demo account (base32, as pyotp takes it)."""
    digest = hashlib.sha256(f"watchfloor-demo-totp:{username}".encode()).digest()
    return base64.b32encode(digest[:20]).decode()


# The ten standard federal regions.
REGIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "R01": ("Region 1 – New England", ("CT", "ME", "MA", "NH", "RI", "VT")),
    "R02": ("Region 2 – New York / New Jersey", ("NJ", "NY")),
    "R03": ("Region 3 – Mid-Atlantic", ("DE", "DC", "MD", "PA", "VA", "WV")),
    "R04": ("Region 4 – Southeast", ("AL", "FL", "GA", "KY", "MS", "NC", "SC", "TN")),
    "R05": ("Region 5 – Great Lakes", ("IL", "IN", "MI", "MN", "OH", "WI")),
    "R06": ("Region 6 – South Central", ("AR", "LA", "NM", "OK", "TX")),
    "R07": ("Region 7 – Heartland", ("IA", "KS", "MO", "NE")),
    "R08": ("Region 8 – Rocky Mountains", ("CO", "MT", "ND", "SD", "UT", "WY")),
    "R09": ("Region 9 – Pacific Southwest", ("AZ", "CA", "HI", "NV")),
    "R10": ("Region 10 – Pacific Northwest", ("AK", "ID", "OR", "WA")),
}
STATE_REGION = {s: code for code, (_n, states) in REGIONS.items() for s in states}

KINDS = [  # kind, code suffix, name, weight
    ("field_office", "FO", "Field Office", 55),
    ("courthouse", "CH", "Federal Courthouse", 20),
    ("holding", "HF", "Holding Facility", 13),
    ("detention", "DC", "Detention Center", 8),
    ("other", "TC", "Training Center", 4),
]

ZONE_POOL: dict[str, list[tuple[str, str, str]]] = {
    # code, name, kind; the first four are always present
    "common": [
        ("LOBBY", "Main lobby", "lobby"),
        ("SCREEN", "Screening checkpoint", "screening"),
        ("PERIM", "Perimeter", "perimeter"),
        ("OFFICE-1", "Offices, first floor", "office"),
        ("PARKING", "Parking garage", "parking"),
        ("OFFICE-2", "Offices, second floor", "office"),
        ("SECURE", "Secure area", "secure_area"),
        ("LOADING", "Loading dock", "other"),
        ("OFFICE-3", "Offices, third floor", "office"),
    ],
    "courthouse": [
        ("COURT-1", "Courtroom 1", "courtroom"),
        ("COURT-2", "Courtroom 2", "courtroom"),
    ],
    "holding": [("HOLD", "Holding cells", "holding")],
    "detention": [("HOLD", "Housing unit A", "holding"), ("HOLD-B", "Housing unit B", "holding")],
}

STREETS = [
    "Main",
    "Federal",
    "Commerce",
    "Liberty",
    "Union",
    "Court",
    "Market",
    "Jefferson",
    "Lincoln",
    "Washington",
    "Madison",
    "Congress",
    "Capitol",
    "Constitution",
    "Plaza",
]
STREET_KINDS = ["Street", "Avenue", "Boulevard", "Plaza", "Way"]
GIVEN = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Maria",
    "Wei",
    "Mei",
    "Aisha",
    "Omar",
    "Priya",
    "Raj",
    "Ana",
    "Luis",
    "Grace",
    "Samuel",
    "Fatima",
    "Kwame",
    "Hana",
    "Kenji",
    "Olga",
    "Ivan",
    "Noah",
    "Emma",
]
FAMILY = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Nguyen",
    "Patel",
    "Kim",
    "Chen",
    "Okafor",
    "Haddad",
    "Novak",
    "Kowalski",
    "Sato",
    "Silva",
    "Cohen",
    "Murphy",
]
STAFF_ROLES = [  # role, job title, weight
    ("staff", "Program Specialist", 40),
    ("staff", "Administrative Officer", 20),
    ("staff", "Investigator", 15),
    ("guard", "Protective Security Officer", 15),
    ("responder", "Emergency Response Team Member", 5),
    ("operator", "Communications Specialist", 3),
    ("threat_assessor", "Threat Analyst", 2),
]
DEVICE_KINDS = [("door", 30), ("reader", 25), ("panic_button", 15), ("sensor", 15), ("camera", 15)]


@lru_cache(maxsize=1)
def us_cities() -> tuple[dict[str, str], ...]:
    with (DATA_DIR / "us_cities.csv").open(encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _phone(rng: random.Random) -> str:
    return f"+1 {rng.randint(201, 989)} 555 01{rng.randint(0, 99):02d}"


def _pick(rng: random.Random, table: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(table, weights=[row[-1] for row in table])[0]


def build_demo(
    seed: int = DEMO_SEED, facilities: int = DEMO_FACILITIES, today: date | None = None
) -> dict[str, Any]:
    """The demo organisation as an import document. Same arguments, same data."""
    rng = random.Random(seed)
    today = today or date.today()
    cities = [c for c in us_cities() if c["state"] in STATE_REGION]
    by_pop = sorted(cities, key=lambda c: (-int(c["population"]), c["state"], c["name"]))
    # the largest city of every state, then a seeded choice of the rest
    chosen: list[dict[str, str]] = []
    seen_states: set[str] = set()
    for c in by_pop:
        if c["state"] not in seen_states or (c["name"], c["state"]) == HOME_CITY:
            seen_states.add(c["state"])
            chosen.append(c)
    rest = [c for c in by_pop if c not in chosen]
    chosen += rng.sample(rest, k=max(0, min(len(rest), facilities - len(chosen))))
    chosen = sorted(chosen[:facilities], key=lambda c: (c["state"], c["name"]))

    out_facilities = []
    used_codes: set[str] = set()
    emp = 0
    for c in chosen:
        if (c["name"], c["state"]) == HOME_CITY:
            kind, suffix, label, _w = KINDS[0]
        else:
            kind, suffix, label, _w = _pick(rng, KINDS)
        code = f"{c['state']}-{_slug(c['name'])[:12]}-{suffix}"
        while code in used_codes:
            code += "2"
        used_codes.add(code)
        facility = _facility(rng, c, code, kind, f"{c['name']} {label}")
        facility["staff"] = []
        for _ in range(rng.randint(10, 40)):
            emp += 1
            facility["staff"].append(_person(rng, emp, today))
        # one security manager per facility
        facility["staff"][0]["role"] = "facility_manager"
        facility["staff"][0]["job_title"] = "Facility Security Manager"
        out_facilities.append(facility)
    return {
        "organisation": dict(DEMO_ORG),
        "regions": [{"code": code, "name": name} for code, (name, _s) in REGIONS.items()],
        "facilities": out_facilities,
    }


def _facility(
    rng: random.Random, city: dict[str, str], code: str, kind: str, name: str
) -> dict[str, Any]:
    secure = kind in {"holding", "detention"}
    population = {
        "field_office": (20, 400),
        "courthouse": (50, 600),
        "holding": (20, 150),
        "detention": (150, 1500),
        "other": (30, 200),
    }[kind]
    pop = rng.randint(*population)
    if secure:
        hours: dict[str, Any] = {d: ["00:00", "24:00"] for d in WEEKDAYS}
    else:
        open_, close = rng.choice([("07:00", "17:00"), ("08:00", "17:00"), ("08:00", "18:00")])
        hours = {d: [open_, close] for d in WEEKDAYS[:5]}
        hours["sat"] = ["09:00", "13:00"] if kind == "field_office" and rng.random() < 0.2 else None
        hours["sun"] = None
    pool = list(ZONE_POOL["common"])
    extra = ZONE_POOL.get(kind, [])
    n_zones = rng.randint(4, 8)
    zones = extra + pool[: max(4, n_zones - len(extra))]
    zones = zones[:8]
    zone_rows = [
        {"code": z, "name": n, "kind": k, "floor": "1" if k != "parking" else "B1"}
        for z, n, k in zones
    ]
    return {
        "code": code,
        "name": name,
        "region": STATE_REGION[city["state"]],
        "kind": kind,
        "address": f"{rng.randint(100, 1999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
        "city": city["name"],
        "state": city["state"],
        "postal_code": f"{rng.randint(10000, 99999)}",
        "latitude": round(float(city["lat"]) + rng.uniform(-0.02, 0.02), 5),
        "longitude": round(float(city["lon"]) + rng.uniform(-0.02, 0.02), 5),
        "timezone": city["timezone"],
        "population": pop,
        "floor_area_sqft": pop * rng.randint(150, 320),
        "operating_hours": hours,
        "zones": zone_rows,
        "devices": _devices(rng, code, [z["code"] for z in zone_rows]),
        "response_units": _units(rng, city, code),
    }


def _devices(rng: random.Random, code: str, zones: list[str]) -> list[dict[str, Any]]:
    n = rng.randint(20, 60)
    n_ctrl = max(1, (n + 15) // 16)
    devices: list[dict[str, Any]] = []
    host = code.lower()
    for i in range(1, n_ctrl + 1):
        devices.append(
            {
                "code": f"CTRL-{i}",
                "name": f"Door controller {i}",
                "kind": "controller",
                "zone": zones[0] if i == 1 else rng.choice(zones),
                "protocol": "osdp",
                "address": f"osdp://controller-{i}",
                "status": "online",
                "supervision_seconds": 60,
            }
        )
    counters: dict[str, int] = {}
    for _ in range(n - n_ctrl):
        kind = _pick(rng, DEVICE_KINDS)[0]
        counters[kind] = counters.get(kind, 0) + 1
        k = counters[kind]
        zone = rng.choice(zones)
        ctrl = rng.randint(1, n_ctrl)
        status = rng.choices(["online", "offline", "trouble", "unknown"], [90, 4, 3, 3])[0]
        protocol, address, supervision, label = {
            "door": ("osdp", f"osdp://controller-{ctrl}/{k}", 300, "Door"),
            "reader": ("osdp", f"osdp://controller-{ctrl}/{k}", 300, "Card reader"),
            "panic_button": ("mqtt", f"mqtt://watchfloor/{host}/panic/{k}", 60, "Panic button"),
            "sensor": ("mqtt", f"mqtt://watchfloor/{host}/sensor/{k}", 300, "Sensor"),
            "camera": ("onvif", f"onvif://cam-{k}.{host}.fpa.example", 120, "Camera"),
        }[kind]
        prefix = {
            "door": "DOOR",
            "reader": "RDR",
            "panic_button": "PANIC",
            "sensor": "SNS",
            "camera": "CAM",
        }[kind]
        devices.append(
            {
                "code": f"{prefix}-{k:03d}",
                "name": f"{label} {k}",
                "kind": kind,
                "zone": zone,
                "protocol": protocol,
                "address": address,
                "status": status,
                "supervision_seconds": supervision,
            }
        )
    return devices


def _units(rng: random.Random, city: dict[str, str], code: str) -> list[dict[str, Any]]:
    town = city["name"]
    slug = _slug(town).lower()
    return [
        {
            "code": "ONSITE",
            "name": "On-site security team",
            "kind": "onsite_security",
            "contacts": [
                {"channel": "radio", "value": f"Channel {rng.randint(1, 16)}"},
                {"channel": "phone", "value": _phone(rng)},
            ],
        },
        {
            "code": "POLICE",
            "name": f"{town} Police Department",
            "kind": "police",
            "contacts": [
                {"channel": "phone", "value": _phone(rng)},
                {"channel": "email", "value": f"dispatch@{slug}-pd.example"},
            ],
        },
        {
            "code": "EMS",
            "name": f"{town} Emergency Medical Services",
            "kind": "ems",
            "contacts": [{"channel": "phone", "value": _phone(rng)}],
        },
        {
            "code": "FIRE",
            "name": f"{town} Fire Department",
            "kind": "fire",
            "contacts": [
                {"channel": "phone", "value": _phone(rng)},
                {"channel": "webhook", "value": f"https://cad.{slug}-fire.example/hooks/{code}"},
            ],
            "notes": "Knox box at the main entrance.",
        },
    ]


def _person(rng: random.Random, n: int, today: date) -> dict[str, Any]:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    role, title, _w = _pick(rng, STAFF_ROLES)
    roll = rng.random()
    if roll < 0.08:
        status, expires = "pending", None
    elif roll < 0.16:
        status, expires = "expired", today - timedelta(days=rng.randint(1, 400))
    elif roll < 0.18:
        status, expires = "denied", None
    else:
        status, expires = "cleared", today + timedelta(days=rng.randint(-30, 1500))
    person: dict[str, Any] = {
        "employee_id": f"E{n:05d}",
        "given_name": given,
        "family_name": family,
        "job_title": title,
        "role": role,
        "email": f"{given}.{family}.{n}@fpa.example".lower(),
        "phone": _phone(rng),
        "contacts": [{"channel": "sms", "value": _phone(rng)}] if rng.random() < 0.5 else [],
        "vetting_status": status,
        "active": rng.random() > 0.03,
    }
    if expires is not None:
        person["vetting_expires_on"] = expires
    return person


async def load_demo(
    db: AsyncSession,
    clock: Clock,
    actor: str = "system:demo",
    *,
    seed: int = DEMO_SEED,
    facilities: int = DEMO_FACILITIES,
) -> ImportResult:
    """Load (or refresh) the demo organisation through the importer; the caller commits."""
    data = build_demo(seed, facilities, today=clock.now().date())
    doc = parse_mapping(data, file="demo organisation")
    return await apply_document(db, clock, actor, doc, source="demo organisation")


async def ensure_demo_accounts(db: AsyncSession, clock: Clock) -> list[str]:
    """Create the demo accounts that are missing; returns the usernames created."""
    from watchfloor.auth import service as auth_service
    from watchfloor.auth.models import User

    existing = set((await db.execute(select(User.username))).scalars().all())
    created = []
    for acct in DEMO_ACCOUNTS:
        if acct.username in existing:
            continue
        spec = (
            auth_service.ScopeSpec.facility(acct.facility)
            if acct.facility
            else auth_service.ScopeSpec.org()
        )
        await auth_service.create_user(
            db,
            clock,
            "system:demo",
            username=acct.username,
            password=DEMO_PASSWORD,
            display_name=acct.display_name,
            grants=[(acct.role, spec)],
            totp_secret=demo_totp_secret(acct.username),
        )
        created.append(acct.username)
    return created
