"""Read-only queries the console pages need, shaped for display.

Scope is decided by Principal.scope / Principal.allows (auth/principal.py); this module only turns a
Scope into a WHERE clause. Facility lookups go through watchfloor.sites.service.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from watchfloor.auth.principal import Principal, Scope
from watchfloor.auth.roles import ROLE_LABELS, Role, ScopeKind
from watchfloor.clock import Clock
from watchfloor.people import service as people_service
from watchfloor.people.models import VettingStatus
from watchfloor.sites import service as sites_service
from watchfloor.sites.models import Device, DeviceStatus, Facility, Region

# facility health, most urgent first; each has words as well as a colour
HEALTH_ORDER = ("offline", "trouble", "unknown", "ok")
HEALTH_LABELS = {
    "offline": "Devices offline",
    "trouble": "Devices in trouble",
    "unknown": "No device reports",
    "ok": "All devices online",
}
DEVICE_STATUS_LABELS = {
    DeviceStatus.ONLINE.value: "Online",
    DeviceStatus.OFFLINE.value: "Offline",
    DeviceStatus.TROUBLE.value: "Trouble",
    DeviceStatus.UNKNOWN.value: "Unknown",
    DeviceStatus.DISABLED.value: "Disabled",
}
SORTS = {"urgent": "Most urgent first", "name": "Name", "code": "Code", "state": "State"}


def words(value: str) -> str:
    """'field_office' -> 'Field office'."""
    text = value.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(now: datetime, tz: str) -> datetime:
    return now.astimezone(zone_of(tz))


def scope_clause(scope: Scope) -> ColumnElement[bool]:
    """The facilities a Scope covers, as a WHERE clause on Facility."""
    return sites_service.scope_filter(scope)


@dataclass
class FacilityRow:
    id: int
    code: str
    name: str
    kind: str
    city: str
    state: str
    region_code: str
    region_name: str
    timezone: str
    latitude: float | None
    longitude: float | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total_devices(self) -> int:
        return sum(self.counts.values())

    @property
    def offline(self) -> int:
        return self.counts.get(DeviceStatus.OFFLINE.value, 0)

    @property
    def trouble(self) -> int:
        return self.counts.get(DeviceStatus.TROUBLE.value, 0)

    @property
    def online(self) -> int:
        return self.counts.get(DeviceStatus.ONLINE.value, 0)

    @property
    def health(self) -> str:
        if self.offline:
            return "offline"
        if self.trouble:
            return "trouble"
        if self.total_devices and self.online + self.counts.get("disabled", 0) == (
            self.total_devices
        ):
            return "ok"
        return "unknown"

    @property
    def health_label(self) -> str:
        return HEALTH_LABELS[self.health]

    def urgency(self) -> tuple[int, int, int, str]:
        return (HEALTH_ORDER.index(self.health), -self.offline, -self.trouble, self.name.lower())


@dataclass(frozen=True)
class Filters:
    q: str = ""
    region: str = ""
    kind: str = ""
    state: str = ""
    sort: str = "urgent"

    @property
    def active(self) -> bool:
        return bool(self.q or self.region or self.kind or self.state)


async def facility_rows(db: AsyncSession, scope: Scope, filters: Filters) -> list[FacilityRow]:
    """Facilities in scope that match the filters, with device counts by status, sorted."""
    stmt = sites_service.facility_query(
        scope,
        q=filters.q or None,
        region=filters.region or None,
        kind=filters.kind or None,
        state=filters.state or None,
    ).options(contains_eager(Facility.region))
    rows = {
        f.id: FacilityRow(
            id=f.id,
            code=f.code,
            name=f.name,
            kind=f.kind,
            city=f.city,
            state=f.state,
            region_code=f.region.code,
            region_name=f.region.name,
            timezone=f.timezone,
            latitude=f.latitude,
            longitude=f.longitude,
        )
        for f in cast(list[Facility], (await db.execute(stmt)).scalars().all())
    }
    if rows:
        counts = await db.execute(
            select(Device.facility_id, Device.status, func.count())
            .where(Device.facility_id.in_(list(rows)))
            .group_by(Device.facility_id, Device.status)
        )
        for facility_id, status, n in counts.all():
            rows[facility_id].counts[status] = int(n)
    result = list(rows.values())
    if filters.sort == "code":
        result.sort(key=lambda r: r.code.lower())
    elif filters.sort == "name":
        result.sort(key=lambda r: (r.name.lower(), r.code))
    elif filters.sort == "state":
        result.sort(key=lambda r: (r.state.lower(), r.city.lower(), r.name.lower()))
    else:
        result.sort(key=FacilityRow.urgency)
    return result


@dataclass(frozen=True)
class FilterChoices:
    regions: list[tuple[str, str]]
    kinds: list[str]
    states: list[str]


async def filter_choices(db: AsyncSession, scope: Scope) -> FilterChoices:
    """Regions, kinds and states that occur among the facilities in scope."""
    where = scope_clause(scope)
    regions = await db.execute(
        select(Region.code, Region.name)
        .join(Facility, Facility.region_id == Region.id)
        .where(where)
        .distinct()
        .order_by(Region.name)
    )
    kinds = await db.execute(select(Facility.kind).where(where).distinct().order_by(Facility.kind))
    states = await db.execute(
        select(Facility.state)
        .where(where, Facility.state != "")
        .distinct()
        .order_by(Facility.state)
    )
    return FilterChoices(
        regions=[(c, n) for c, n in regions.all()],
        kinds=[k for (k,) in kinds.all()],
        states=[s for (s,) in states.all()],
    )


async def scope_labels(db: AsyncSession, principal: Principal) -> list[str]:
    """'Watch-floor operator · whole organisation', one line a grant, for the top bar."""
    region_ids = {g.region_id for g in principal.grants if g.region_id is not None}
    facility_ids = {g.facility_id for g in principal.grants if g.facility_id is not None}
    regions: dict[int, str] = {}
    facilities: dict[int, str] = {}
    if region_ids:
        res = await db.execute(select(Region.id, Region.code).where(Region.id.in_(region_ids)))
        regions = {i: c for i, c in res.all()}
    if facility_ids:
        res = await db.execute(
            select(Facility.id, Facility.code).where(Facility.id.in_(facility_ids))
        )
        facilities = {i: c for i, c in res.all()}
    labels = []
    for g in principal.grants:
        role = ROLE_LABELS.get(Role(g.role), words(g.role))
        if g.scope is ScopeKind.ORG:
            where = "whole organisation"
        elif g.scope is ScopeKind.REGION:
            where = f"region {regions.get(g.region_id or 0, '?')}"
        else:
            where = f"facility {facilities.get(g.facility_id or 0, '?')}"
        labels.append(f"{role} · {where}")
    return sorted(set(labels))


@dataclass
class StaffRow:
    name: str
    job_title: str
    role: str
    vetting_status: str
    vetting_expires_on: date | None
    expired: bool
    expiring_soon: bool
    contacts: list[dict[str, str]]


async def staff_of(
    db: AsyncSession, clock: Clock, scope: Scope, facility_id: int, today: date
) -> list[StaffRow]:
    """Active staff of one facility (within the caller's people:read scope), expired first."""
    people, _total = await people_service.list_people(
        db,
        clock,
        scope,
        people_service.PeopleFilter(facility_id=facility_id, active=True),
        limit=1000,
    )
    out = []
    for p in people:
        expires = p.vetting_expires_on
        expired = p.vetting_status == VettingStatus.EXPIRED.value or (
            expires is not None and expires < today
        )
        soon = not expired and expires is not None and (expires - today).days <= 30
        contacts: list[dict[str, Any]] = []
        if p.phone:
            contacts.append({"channel": "phone", "value": p.phone})
        if p.email:
            contacts.append({"channel": "email", "value": p.email})
        contacts.extend(c for c in (p.contacts or []) if isinstance(c, dict))
        out.append(
            StaffRow(
                name=f"{p.given_name} {p.family_name}".strip(),
                job_title=p.job_title,
                role=p.role,
                vetting_status=VettingStatus.EXPIRED.value if expired else p.vetting_status,
                vetting_expires_on=expires,
                expired=expired,
                expiring_soon=soon,
                contacts=contacts,
            )
        )
    # expired vetting first: it needs someone's attention
    out.sort(key=lambda s: (not s.expired, not s.expiring_soon))
    return out


def group_devices(devices: list[Device]) -> list[tuple[str, list[Device]]]:
    """Devices grouped by zone, the most urgent zone first; within a zone, troubled ones first."""
    rank = {"offline": 0, "trouble": 1, "unknown": 2, "disabled": 3, "online": 4}
    groups: dict[str, list[Device]] = defaultdict(list)
    for d in devices:
        groups[d.zone.name if d.zone is not None else ""].append(d)

    def urgent(items: list[Device]) -> int:
        return min((rank.get(d.status, 2) for d in items), default=4)

    # zones with an offline or troubled device first, then by name; devices with no zone last
    ordered = sorted(
        groups.items(),
        key=lambda kv: (min(urgent(kv[1]), 2), kv[0] == "", kv[0].lower()),
    )
    return [
        (name or "No zone", sorted(items, key=lambda d: (rank.get(d.status, 2), d.code)))
        for name, items in ordered
    ]
