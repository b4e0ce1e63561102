"""A small organisation for the console tests, created through the services (as the API would)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.auth import service as auth_service
from watchfloor.clock import Clock
from watchfloor.people import service as people_service
from watchfloor.people.schemas import PersonCreate
from watchfloor.sites import service as sites_service
from watchfloor.sites.schemas import (
    DeviceCreate,
    FacilityCreate,
    OrganisationUpdate,
    RegionCreate,
    ResponseUnitCreate,
    ZoneCreate,
)

ACTOR = "system:test-seed"
PASSWORD = "correct horse battery staple"
OPERATOR_TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
MANAGER_TOTP = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
WEEKDAYS = {d: ("07:00", "18:00") for d in ("mon", "tue", "wed", "thu", "fri")}

FACILITIES: list[dict[str, Any]] = [
    {
        "code": "DAL-FO",
        "name": "Dallas Field Office",
        "region": "SW",
        "kind": "field_office",
        "address": "1100 Commerce St",
        "city": "Dallas",
        "state": "TX",
        "postal_code": "75242",
        "latitude": 32.7767,
        "longitude": -96.797,
        "timezone": "America/Chicago",
        "population": 340,
        "floor_area_sqft": 120000,
        "operating_hours": WEEKDAYS,
    },
    {
        "code": "PHX-CH",
        "name": "Phoenix Courthouse",
        "region": "SW",
        "kind": "courthouse",
        "address": "401 W Washington St",
        "city": "Phoenix",
        "state": "AZ",
        "latitude": 33.4484,
        "longitude": -112.074,
        "timezone": "America/Phoenix",
        "population": 520,
        "operating_hours": WEEKDAYS,
    },
    {
        "code": "BOS-DC",
        "name": "Boston Detention Center",
        "region": "NE",
        "kind": "detention",
        "address": "20 Bradston St",
        "city": "Boston",
        "state": "MA",
        "latitude": 42.3601,
        "longitude": -71.0589,
        "timezone": "America/New_York",
        "population": 800,
        "operating_hours": {
            d: ("00:00", "23:59") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
    },
]

ZONES = {
    "DAL-FO": [
        ("LOBBY", "Main lobby", "lobby"),
        ("SCREEN", "Screening checkpoint", "screening"),
        ("SECURE", "Evidence vault", "secure_area"),
    ],
    "PHX-CH": [("LOBBY", "Courthouse lobby", "lobby"), ("CR1", "Courtroom 1", "courtroom")],
    "BOS-DC": [("PERIM", "Perimeter fence", "perimeter")],
}

DEVICES = {
    "DAL-FO": [
        ("DOOR-1", "Lobby front door", "door", "LOBBY", "online"),
        ("PANIC-1", "Reception panic button", "panic_button", "LOBBY", "offline"),
        ("CAM-1", "Checkpoint camera", "camera", "SCREEN", "trouble"),
        ("READER-1", "Vault card reader", "reader", "SECURE", "online"),
        ("SENSOR-9", "Loading dock sensor", "sensor", None, "unknown"),
    ],
    "PHX-CH": [
        ("DOOR-1", "Public entrance", "door", "LOBBY", "online"),
        ("PANIC-1", "Bench panic button", "panic_button", "CR1", "online"),
    ],
    "BOS-DC": [
        ("CAM-1", "North fence camera", "camera", "PERIM", "trouble"),
        ("CAM-2", "South fence camera", "camera", "PERIM", "online"),
    ],
}

UNITS = {
    "DAL-FO": [
        (
            "SEC",
            "Dallas on-site security",
            "onsite_security",
            [
                {"channel": "radio", "value": "Channel 4"},
                {"channel": "phone", "value": "+12145550100"},
            ],
        ),
        ("PD", "Dallas Police Central", "police", [{"channel": "phone", "value": "+12145550911"}]),
    ],
    "PHX-CH": [("SEC", "Court security", "onsite_security", [])],
    "BOS-DC": [],
}


async def seed_org(db: AsyncSession, clock: Clock) -> None:
    """Organisation, two regions, three facilities with zones, devices, units and staff."""
    await sites_service.update_organisation(
        db, clock, ACTOR, OrganisationUpdate(code="NSA-DEMO", name="Demo Security Agency")
    )
    regions = {
        code: await sites_service.create_region(
            db, clock, ACTOR, RegionCreate(code=code, name=name)
        )
        for code, name in (("SW", "Southwest"), ("NE", "Northeast"))
    }
    for spec in FACILITIES:
        data = FacilityCreate.model_validate(spec)
        facility = await sites_service.create_facility(
            db, clock, ACTOR, data, regions[spec["region"]]
        )
        for code, name, kind in ZONES[facility.code]:
            await sites_service.create_zone(
                db, clock, ACTOR, facility, ZoneCreate(code=code, name=name, kind=kind)
            )
        for code, name, kind, zone, status in DEVICES[facility.code]:
            await sites_service.create_device(
                db,
                clock,
                ACTOR,
                facility,
                DeviceCreate.model_validate(
                    {"code": code, "name": name, "kind": kind, "zone": zone, "status": status}
                ),
            )
        for code, name, kind, contacts in UNITS[facility.code]:
            await sites_service.create_unit(
                db,
                clock,
                ACTOR,
                facility,
                ResponseUnitCreate.model_validate(
                    {"code": code, "name": name, "kind": kind, "contacts": contacts}
                ),
            )
    dallas = await sites_service.get_facility(db, "DAL-FO")
    today = clock.now().date()
    for emp, given, family, status, expires in (
        ("E100", "Maria", "Lopez", "cleared", today + timedelta(days=400)),
        ("E101", "Dan", "Okafor", "cleared", today - timedelta(days=3)),
        ("E102", "Priya", "Shah", "cleared", today + timedelta(days=10)),
    ):
        await people_service.create_person(
            db,
            clock,
            ACTOR,
            dallas,
            PersonCreate.model_validate(
                {
                    "employee_id": emp,
                    "given_name": given,
                    "family_name": family,
                    "job_title": "Security officer",
                    "role": "guard",
                    "phone": "+12145550123",
                    "vetting_status": status,
                    "vetting_expires_on": expires.isoformat() if expires else None,
                }
            ),
        )
    await db.flush()


async def seed_users(db: AsyncSession, clock: Clock) -> None:
    """olivia: org-wide operator (TOTP set); dallas: Dallas manager (TOTP set); newbie: no TOTP;
    rita: org-wide responder (no staff access)."""
    await auth_service.create_user(
        db,
        clock,
        ACTOR,
        username="olivia",
        display_name="Olivia Watch",
        password=PASSWORD,
        grants=[("operator", auth_service.ScopeSpec.org())],
        totp_secret=OPERATOR_TOTP,
    )
    await auth_service.create_user(
        db,
        clock,
        ACTOR,
        username="dallas",
        display_name="Dale Manager",
        password=PASSWORD,
        grants=[("facility_manager", auth_service.ScopeSpec.facility("DAL-FO"))],
        totp_secret=MANAGER_TOTP,
    )
    await auth_service.create_user(
        db,
        clock,
        ACTOR,
        username="newbie",
        display_name="New Operator",
        password=PASSWORD,
        grants=[("operator", auth_service.ScopeSpec.region("SW"))],
    )


async def seed_all(db: AsyncSession, clock: Clock) -> None:
    await seed_org(db, clock)
    await seed_users(db, clock)
    await db.commit()
