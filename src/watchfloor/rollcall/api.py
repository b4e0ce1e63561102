"""REST API of the rollcall domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["rollcall"])
