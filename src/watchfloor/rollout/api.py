"""REST API of the rollout domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["rollout"])
