"""REST API of the audit domain (thin: parse, authorise, call the service, return)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["audit"])
