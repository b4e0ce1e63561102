"""REST API of the people domain (thin: parse, authorise, call the service, return)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["people"])
