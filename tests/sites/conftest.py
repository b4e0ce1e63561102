"""Fixtures of the sites tests: a small organisation loaded through the importer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from watchfloor.sites.importer import apply_document, parse_mapping

SMALL_ORG: dict[str, Any] = {
    "organisation": {"code": "TEST", "name": "Test Agency"},
    "regions": [
        {"code": "R1", "name": "Region One"},
        {"code": "R2", "name": "Region Two"},
    ],
    "facilities": [
        {
            "code": "ALPHA",
            "name": "Alpha Field Office",
            "region": "R1",
            "kind": "field_office",
            "city": "Dallas",
            "state": "TX",
            "latitude": 32.78,
            "longitude": -96.8,
            "timezone": "America/Chicago",
            "population": 120,
            "floor_area_sqft": 30000,
            "operating_hours": {"mon": ["08:00", "18:00"], "sun": None},
            "zones": [
                {"code": "LOBBY", "name": "Lobby", "kind": "lobby"},
                {"code": "SECURE", "name": "Secure area", "kind": "secure_area"},
            ],
            "devices": [
                {"code": "DOOR-1", "name": "Front door", "kind": "door", "zone": "LOBBY",
                 "protocol": "osdp", "address": "osdp://controller-1/1", "status": "online"},
                {"code": "CAM-1", "name": "Lobby camera", "kind": "camera", "zone": "LOBBY"},
                {"code": "PANIC-1", "name": "Panic button", "kind": "panic_button"},
            ],
            "response_units": [
                {"code": "POLICE", "name": "Dallas PD", "kind": "police",
                 "contacts": [{"channel": "phone", "value": "+1 214 555 0100"}]},
            ],
            "staff": [
                {"employee_id": "E-1", "given_name": "Ada", "family_name": "Byron",
                 "vetting_status": "cleared", "vetting_expires_on": "2027-01-01"},
            ],
        },
        {
            "code": "BRAVO",
            "name": "Bravo Courthouse",
            "region": "R1",
            "kind": "courthouse",
            "city": "Austin",
            "state": "TX",
            "timezone": "America/Chicago",
            "zones": [{"code": "LOBBY", "name": "Lobby", "kind": "lobby"}],
            "devices": [{"code": "DOOR-1", "name": "Door", "kind": "door", "zone": "LOBBY"}],
        },
        {
            "code": "CHARLIE",
            "name": "Charlie Detention Center",
            "region": "R2",
            "kind": "detention",
            "city": "Denver",
            "state": "CO",
            "timezone": "America/Denver",
        },
    ],
}  # fmt: skip


def small_org() -> dict[str, Any]:
    return copy.deepcopy(SMALL_ORG)


@pytest.fixture
def org_data():  # type: ignore[no-untyped-def]
    """A function returning a fresh copy of the small organisation's import document."""
    return small_org


@pytest.fixture
async def org(sessionmaker, clock):  # type: ignore[no-untyped-def]
    """The small organisation, loaded through the importer."""
    async with sessionmaker() as session:
        await apply_document(session, clock, "system:test", parse_mapping(small_org()))
        await session.commit()
    return small_org()
