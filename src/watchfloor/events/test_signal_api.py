"""REST API of the end-to-end test signals: a facility's latest signals and their state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.auth.roles import Perm
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.events import test_signal
from watchfloor.sites import service as sites
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["events"])


@router.get("/facilities/{code}/test-signal", response_model=test_signal.TestSignalStatus)
async def facility_test_signal(
    code: Annotated[str, Path(pattern=CODE_PATTERN, max_length=40)],
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> test_signal.TestSignalStatus:
    """The facility's end-to-end test signal: the last one the pipeline processed, the latest
    one sent, its state (ok, pending, missing, never) and the active `test_signal_missing`
    alarm if there is one. Needs `sites:read` on the facility."""
    principal.require_anywhere(Perm.SITES_READ)
    facility = await sites.get_facility(db, code)
    principal.require(Perm.SITES_READ, facility_id=facility.id, region_id=facility.region_id)
    return await test_signal.facility_status(
        db,
        facility,
        clock.now(),
        minutes=settings.test_signal_minutes,
        grace_seconds=settings.test_signal_grace_seconds,
    )
