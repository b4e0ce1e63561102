"""Facility registry logic: organisation, regions, facilities, zones, devices, response units."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchfloor.problems import NotFound
from watchfloor.sites.models import Facility, Region


async def get_facility(db: AsyncSession, code: str) -> Facility:
    facility = (
        await db.execute(select(Facility).where(Facility.code == code))
    ).scalar_one_or_none()
    if facility is None:
        raise NotFound(f"No facility has the code '{code}'.")
    return facility


async def get_region(db: AsyncSession, code: str) -> Region:
    region = (await db.execute(select(Region).where(Region.code == code))).scalar_one_or_none()
    if region is None:
        raise NotFound(f"No region has the code '{code}'.")
    return region
