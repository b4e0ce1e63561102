"""REST API of the lockdown domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["lockdown"])
