"""Staff panic API (thin: parse, authorise, call the service, commit, wake the relay).

Any logged-in person with `panic:raise` (every role has it) may set their codes, raise a panic
where they are granted, and cancel their own press within the window. API tokens cannot: a panic
press belongs to a person.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from watchfloor.auth.deps import CurrentPrincipal
from watchfloor.deps import DB, ClockDep, SettingsDep
from watchfloor.panic import service
from watchfloor.panic.schemas import (
    CancelIn,
    CancelOut,
    PanicCodesIn,
    PanicCodesOut,
    PanicIn,
    PanicOut,
)
from watchfloor.problems import Problem

router = APIRouter(tags=["panic"])

PressIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _kick(request: Request) -> None:
    """Wake the outbox relay so the alarm reaches the watch floor at once."""
    kick = getattr(getattr(request.app.state, "runtime", None), "kick", None)
    if callable(kick):
        kick()


@router.put("/panic/codes", response_model=PanicCodesOut)
async def put_codes(
    body: PanicCodesIn, db: DB, clock: ClockDep, principal: CurrentPrincipal
) -> PanicCodesOut:
    """Set your own cancel code and duress code."""
    codes = await service.set_codes(db, clock, principal, body.cancel_code, body.duress_code)
    await db.commit()
    return PanicCodesOut(updated_at=codes.updated_at)


@router.post("/panic", response_model=PanicOut, status_code=status.HTTP_201_CREATED)
async def raise_panic(
    request: Request,
    body: PanicIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> PanicOut:
    """Raise a silent P1 panic alarm where you are. The answer is only a discreet confirmation
    and the time until which the press can be cancelled with your cancel code."""
    press = await service.raise_panic(
        db,
        clock,
        principal,
        facility_code=body.facility_code,
        zone_code=body.zone_code,
        settings=settings,
    )
    await db.commit()
    _kick(request)
    return PanicOut(press_id=press.id, cancel_until=press.cancel_until)


@router.post("/panic/{press_id}/cancel", response_model=CancelOut)
async def cancel_panic(
    request: Request,
    press_id: PressIdPath,
    body: CancelIn,
    db: DB,
    clock: ClockDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> CancelOut:
    """Cancel your own press within the window with your cancel code. The answer is the same
    whichever of your codes you enter."""
    try:
        outcome = await service.cancel_press(
            db, clock, principal, press_id, body.code, settings=settings
        )
    except Problem:
        await db.commit()  # a wrong attempt is counted and audited; a duress alarm stands
        _kick(request)
        raise
    await db.commit()
    _kick(request)
    return CancelOut(status=outcome)
