"""Server-rendered console pages."""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.leaflet as leaflet_pkg
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def mount_static(app: FastAPI) -> None:
    """Our own assets and Leaflet from its Python package: nothing comes from a CDN."""
    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/vendor/leaflet", StaticFiles(directory=leaflet_pkg.BASE_DIR), name="leaflet")
