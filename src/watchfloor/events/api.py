"""REST API of the events domain: ingest (single and batch), dead letters, supervision settings.

Ingest needs `events:ingest` (role `device`, facility managers, administrators) on the event's
facility. The body is read and validated here rather than by FastAPI so that a malformed event
can be kept as a dead letter with its raw payload: the sender gets a problem document (422)
naming the reason and the dead letter's id. A caller whose scope does not cover the facility gets
403 and nothing is stored.

Batch semantics (`POST /events/batch`): every item is validated; valid items are stored (in one
transaction with everyone else's), invalid items are dead-lettered one by one. The answer lists
each item's outcome in order: 200 when all were accepted (or duplicates), 207 when some were
rejected. If any item names a facility outside the caller's scope the whole batch is refused
with 403 and nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import ValidationError

from watchfloor.auth.deps import CurrentPrincipal, request_clock
from watchfloor.auth.principal import Principal
from watchfloor.auth.roles import Perm
from watchfloor.clock import Clock
from watchfloor.deps import DB, ClockDep
from watchfloor.events import catalogue, service
from watchfloor.events.ingest import (
    DeviceDirectory,
    EventBatcher,
    FacilityRef,
    ValidatedEvent,
)
from watchfloor.events.schemas import (
    BatchIn,
    BatchItemResult,
    BatchResult,
    DeadLetterOut,
    EventAccepted,
    EventIn,
    SupervisionOut,
    SupervisionUpdate,
)
from watchfloor.problems import Forbidden, InvalidInput, NotFound
from watchfloor.schemas import CleanStr, Page, StrictModel
from watchfloor.sites import service as sites
from watchfloor.sites.schemas import CODE_PATTERN

router = APIRouter(tags=["events"])
#: a batch is validated in chunks of this many items, giving the event loop back between them
YIELD_EVERY = 100
#: the clock for the ingest routes (async: no thread-pool hop per event)
IngestClock = Annotated[Clock, Depends(request_clock)]


def get_batcher(request: Request) -> EventBatcher:
    """The runtime's batcher; without a running runtime (tests, tools) one kept on the app."""
    runtime = getattr(request.app.state, "runtime", None)
    batcher = getattr(runtime, "batcher", None)
    if isinstance(batcher, EventBatcher):
        return batcher
    own: EventBatcher | None = getattr(request.app.state, "event_batcher", None)
    if own is None:
        settings = request.app.state.settings
        own = EventBatcher(
            request.app.state.sessionmaker,
            request.app.state.clock,
            max_batch=getattr(settings, "ingest_batch_max", 500),
            max_wait_ms=getattr(settings, "ingest_batch_wait_ms", 0.0),
        )
        request.app.state.event_batcher = own
    return own


def _body_schema(model: type[StrictModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class _Rejected(Exception):
    def __init__(self, reason: str, facility_id: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facility_id = facility_id


def _home_facility_id(principal: Principal) -> int | None:
    """The one facility a token is scoped to, if it is scoped to exactly one."""
    scope = principal.scope(Perm.EVENTS_INGEST)
    if scope.everything or scope.region_ids or len(scope.facility_ids) != 1:
        return None
    return next(iter(scope.facility_ids))


async def _validate(
    directory: DeviceDirectory, clock: Clock, principal: Principal, obj: Any
) -> ValidatedEvent:
    """One decoded item → a ValidatedEvent; _Rejected (dead letter) or Forbidden (refused)."""
    home = _home_facility_id(principal)
    try:
        ev = service.parse_event(obj)
    except service.InvalidEvent as exc:
        raise _Rejected(str(exc), home) from None
    facility_code, device_code = service.split_device_ref(ev.device)
    facility: FacilityRef | None
    if facility_code is None:
        if home is None:
            raise _Rejected(
                "name the device as 'FACILITY/DEVICE': this token covers more than one facility",
                None,
            )
        facility = await directory.facility_by_id(home)
        if facility is None:
            raise _Rejected("the token's facility no longer exists", None)
    else:
        facility = await directory.facility(facility_code)
        if facility is None:
            if principal.scope(Perm.EVENTS_INGEST).everything:
                raise _Rejected(f"no facility has the code '{facility_code}'", None)
            raise Forbidden(f"This token may not report events for facility '{facility_code}'.")
    if not principal.allows(
        Perm.EVENTS_INGEST, facility_id=facility.id, region_id=facility.region_id
    ):
        raise Forbidden(f"This token may not report events for facility '{facility.code}'.")
    device = await directory.device(facility.id, device_code)
    if device is None:
        raise _Rejected(f"facility '{facility.code}' has no device '{device_code}'", facility.id)
    try:
        return service.check_event(
            clock,
            facility=facility,
            device=device,
            type_=ev.type,
            occurred_at=ev.occurred_at,
            attributes=ev.attributes,
            idempotency_key=ev.idempotency_key,
            source="http",
            sender=principal.label,
        )
    except service.InvalidEvent as exc:
        raise _Rejected(str(exc), facility.id) from None


def _decode(raw: bytes) -> Any:
    try:
        return service.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise service.InvalidEvent("the body is not UTF-8 JSON") from None


@router.post(
    "/events",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_body_schema(EventIn),
    responses={
        200: {
            "description": "A repeated idempotency key: the original event",
            "model": EventAccepted,
        },
        403: {"description": "The token's scope does not cover the facility"},
        422: {"description": "Malformed: kept as a dead letter (its id is in `errors`)"},
    },
)
async def post_event(
    request: Request, response: Response, principal: CurrentPrincipal, clock: IngestClock
) -> EventAccepted:
    """Report one event. Answered only after it is durably stored (201; 200 for a repeat)."""
    principal.require_anywhere(Perm.EVENTS_INGEST)
    raw = await request.body()
    # No database session for the request itself: the look-ups are cached and the batcher
    # writes; only a dead letter opens one (a burst of requests each holding a session would
    # starve the batcher of connections).
    batcher = get_batcher(request)
    try:
        validated = await _validate(batcher.directory, clock, principal, _decode(raw))
    except service.InvalidEvent as exc:
        await _dead_letter_now(
            request, clock, principal, raw, str(exc), _home_facility_id(principal)
        )
    except _Rejected as exc:
        await _dead_letter_now(request, clock, principal, raw, exc.reason, exc.facility_id)
    [receipt] = await batcher.submit([validated])
    if receipt.duplicate:
        response.status_code = status.HTTP_200_OK
    return EventAccepted(event_id=receipt.event_id, duplicate=receipt.duplicate)


async def _dead_letter_now(
    request: Request,
    clock: ClockDep,
    principal: Principal,
    raw: bytes | str,
    reason: str,
    facility_id: int | None,
) -> NoReturn:
    """`_dead_letter` in a session of its own (for a route that holds none)."""
    async with request.app.state.sessionmaker() as db:
        await _dead_letter(db, clock, principal, request, raw, reason, facility_id)


async def _dead_letter(
    db: DB,
    clock: ClockDep,
    principal: Principal,
    request: Request,
    raw: bytes | str,
    reason: str,
    facility_id: int | None,
) -> NoReturn:
    letter = service.record_dead_letter(
        db,
        clock,
        source="http",
        raw=raw,
        reason=reason,
        sender=principal.label,
        channel=request.url.path,
        facility_id=facility_id,
    )
    await db.commit()
    raise InvalidInput(
        f"The event was not accepted: {reason}. It is kept as dead letter {letter.id}.",
        slug="invalid-event",
        errors=[{"msg": reason, "dead_letter_id": letter.id}],
    )


@router.post(
    "/events/batch",
    openapi_extra=_body_schema(BatchIn),
    responses={
        207: {"description": "Some items were rejected (dead-lettered)", "model": BatchResult},
        403: {"description": "An item names a facility outside the token's scope"},
        422: {"description": "The body is not a batch: kept as a dead letter"},
    },
)
async def post_batch(
    request: Request, response: Response, principal: CurrentPrincipal, db: DB, clock: IngestClock
) -> BatchResult:
    """Report up to 1,000 events. Valid ones are stored durably before the answer; invalid
    ones are dead-lettered; each item's outcome is listed in order (200, or 207 if any failed)."""
    principal.require_anywhere(Perm.EVENTS_INGEST)
    raw = await request.body()
    await db.close()  # see post_event
    home = _home_facility_id(principal)
    batcher = get_batcher(request)
    try:
        batch = BatchIn.model_validate(_decode(raw))
    except service.InvalidEvent as exc:
        await _dead_letter(db, clock, principal, request, raw, str(exc), home)
    except ValidationError as exc:
        reason = service.describe_validation_error(exc)
        await _dead_letter(db, clock, principal, request, raw, reason, home)

    results: list[BatchItemResult | None] = [None] * len(batch.events)
    valid: list[tuple[int, ValidatedEvent]] = []
    rejected: list[tuple[int, Any, _Rejected]] = []
    for index, item in enumerate(batch.events):
        if index and not index % YIELD_EVERY:
            await asyncio.sleep(0)  # let a panic's work run between chunks of a long batch
        try:
            valid.append((index, await _validate(batcher.directory, clock, principal, item)))
        except _Rejected as rej:
            rejected.append((index, item, rej))
    letters = [
        service.record_dead_letter(
            db,
            clock,
            source="http",
            raw=json.dumps(item, ensure_ascii=False, default=str),
            reason=f"batch item {index}: {why.reason}",
            sender=principal.label,
            channel=request.url.path,
            facility_id=why.facility_id,
        )
        for index, item, why in rejected
    ]
    if letters:
        await db.flush()
    for (index, _item, why), letter in zip(rejected, letters, strict=True):
        results[index] = BatchItemResult(
            index=index, status="rejected", error=why.reason, dead_letter_id=letter.id
        )
    if rejected:
        await db.commit()
    receipts = await batcher.submit([ev for _i, ev in valid])
    for (index, _ev), receipt in zip(valid, receipts, strict=True):
        results[index] = BatchItemResult(
            index=index,
            status="duplicate" if receipt.duplicate else "accepted",
            event_id=receipt.event_id,
        )
    done = [r for r in results if r is not None]
    if rejected:
        response.status_code = status.HTTP_207_MULTI_STATUS
    return BatchResult(
        accepted=sum(r.status == "accepted" for r in done),
        duplicates=sum(r.status == "duplicate" for r in done),
        rejected=len(rejected),
        results=done,
    )


@router.get("/events/catalogue")
async def get_catalogue(principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """The event types Watchfloor accepts, with their attributes (see docs/events.md)."""
    return catalogue.catalogue_table()


# --------------------------------------------------------------------------- dead letters

DeadLetterId = Annotated[int, Path(ge=1, le=2**62, description="Dead letter id.")]


class ResolveIn(StrictModel):
    note: CleanStr = ""


@router.get("/dead-letters")
async def get_dead_letters(
    principal: CurrentPrincipal,
    db: DB,
    state: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
    source: Annotated[Literal["http", "mqtt"] | None, Query()] = None,
    facility: Annotated[str | None, Query(pattern=CODE_PATTERN, max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[DeadLetterOut]:
    """Messages that could not be accepted, newest first, within the caller's scope (those whose
    facility could not be told only for organisation-wide callers)."""
    principal.require_anywhere(Perm.SITES_READ)
    facility_id = None
    if facility:
        fac = await sites.get_facility(db, facility)
        principal.require(Perm.SITES_READ, facility_id=fac.id, region_id=fac.region_id)
        facility_id = fac.id
    resolved = {"open": False, "resolved": True, "all": None}[state]
    items, total = await service.list_dead_letters(
        db,
        principal.scope(Perm.SITES_READ),
        resolved=resolved,
        source=source,
        facility_id=facility_id,
        limit=limit,
        offset=offset,
    )
    return Page(items=items, total=total)


@router.post("/dead-letters/{dead_letter_id}/resolve")
async def post_resolve_dead_letter(
    dead_letter_id: DeadLetterId,
    principal: CurrentPrincipal,
    db: DB,
    clock: ClockDep,
    body: ResolveIn | None = None,
) -> DeadLetterOut:
    """Mark a dead letter as dealt with (needs `sites:write` on its facility; org-wide for those
    without one). Audited."""
    letter = await service.get_dead_letter(db, dead_letter_id)
    region_id = await service.dead_letter_region(db, letter)
    if letter.facility_id is None:
        visible = principal.allows_org(Perm.SITES_READ)
    else:
        visible = principal.allows(
            Perm.SITES_READ, facility_id=letter.facility_id, region_id=region_id
        )
    if not visible:
        raise NotFound(f"There is no dead letter {dead_letter_id}.")
    if letter.facility_id is None:
        principal.require_org(Perm.SITES_WRITE)
    else:
        principal.require(Perm.SITES_WRITE, facility_id=letter.facility_id, region_id=region_id)
    await service.resolve_dead_letter(db, clock, principal, letter, body.note if body else "")
    await db.commit()
    return DeadLetterOut.model_validate(letter)


# --------------------------------------------------------------------------- supervision


def _default_seconds(request: Request) -> int:
    return int(
        getattr(
            request.app.state.settings,
            "supervision_default_seconds",
            service.DEFAULT_SUPERVISION_SECONDS,
        )
    )


@router.get("/supervision")
async def get_supervision(request: Request, principal: CurrentPrincipal, db: DB) -> SupervisionOut:
    """Device supervision intervals per device kind (a device's own interval wins)."""
    principal.require_anywhere(Perm.SITES_READ)
    kinds = await service.supervision_settings(db)
    return SupervisionOut(default_seconds=_default_seconds(request), kinds=kinds)


@router.put("/supervision")
async def put_supervision(
    request: Request, body: SupervisionUpdate, principal: CurrentPrincipal, db: DB, clock: ClockDep
) -> SupervisionOut:
    """Set (or with null, clear) the supervision interval of device kinds. Organisation-wide
    `sites:write` only. Audited."""
    principal.require_org(Perm.SITES_WRITE)
    kinds = await service.update_supervision_settings(
        db, clock, principal, {str(k): v for k, v in body.kinds.items()}
    )
    await db.commit()
    return SupervisionOut(default_seconds=_default_seconds(request), kinds=kinds)
