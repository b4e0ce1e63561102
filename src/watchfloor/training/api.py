"""HTTP API of the training domain (thin: parse, authorise, call the service)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["training"])
