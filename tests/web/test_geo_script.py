"""scripts/build-us-states-geojson: TopoJSON decoding, simplification, and the file we ship."""

from __future__ import annotations

import importlib.util
import json
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-us-states-geojson"
SHIPPED = ROOT / "src" / "watchfloor" / "web" / "static" / "geo" / "us-states.json"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    loader = SourceFileLoader("build_us_states_geojson", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def square_topology() -> dict:  # type: ignore[type-arg]
    """Two unit squares side by side sharing one edge, quantized with scale 1 and offset 10."""
    return {
        "type": "Topology",
        "transform": {"scale": [1, 1], "translate": [10, 20]},
        "arcs": [
            [[1, 0], [0, 1]],  # shared edge (1,0)->(1,1)
            [[1, 1], [-1, 0], [0, -1], [1, 0]],  # west square's other three sides
            [[1, 0], [1, 0], [0, 1], [-1, 0]],  # east square's other three sides
        ],
        "objects": {
            "states": {
                "type": "GeometryCollection",
                "geometries": [
                    {
                        "type": "Polygon",
                        "arcs": [[0, 1]],
                        "id": "01",
                        "properties": {"name": "West"},
                    },
                    {
                        "type": "Polygon",
                        "arcs": [[2, -1]],
                        "id": "02",
                        "properties": {"name": "East"},
                    },
                ],
            }
        },
    }


def test_arcs_are_delta_decoded_and_transformed(script: ModuleType) -> None:
    arcs = script.decode_arcs(square_topology())
    assert arcs[0] == [(11.0, 20.0), (11.0, 21.0)]
    assert arcs[1] == [(11.0, 21.0), (10.0, 21.0), (10.0, 20.0), (11.0, 20.0)]


def test_rings_join_arcs_and_reverse_negative_indexes(script: ModuleType) -> None:
    geo = script.to_geojson(square_topology(), tolerance=0, digits=3)
    by_name = {f["properties"]["name"]: f for f in geo["features"]}
    west = by_name["West"]["geometry"]
    assert west["type"] == "Polygon"
    assert west["coordinates"][0] == [[11, 20], [11, 21], [10, 21], [10, 20], [11, 20]]
    east = by_name["East"]["geometry"]["coordinates"][0]
    assert east == [[11, 20], [12, 20], [12, 21], [11, 21], [11, 20]]  # shared edge walked back


def test_simplification_keeps_arc_ends(script: ModuleType) -> None:
    line = [(0.0, 0.0), (1.0, 0.001), (2.0, -0.001), (3.0, 0.0)]
    assert script.simplify(line, 0.01) == [(0.0, 0.0), (3.0, 0.0)]
    bent = [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0)]
    assert script.simplify(bent, 0.01) == bent


def test_shipped_outlines_are_small_and_cover_the_states() -> None:
    assert SHIPPED.stat().st_size < 400_000
    geo = json.loads(SHIPPED.read_text())
    names = {f["properties"]["name"] for f in geo["features"]}
    assert {"California", "Texas", "New York", "Alaska", "Hawaii", "Puerto Rico"} <= names
    texas = next(f for f in geo["features"] if f["properties"]["name"] == "Texas")
    points = [p for poly in _polygons(texas["geometry"]) for ring in poly for p in ring]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    assert -107 < min(lons) < -106 and -94 < max(lons) < -93
    assert 25 < min(lats) < 26.5 and 36 < max(lats) < 37


def _polygons(geometry: dict) -> list:  # type: ignore[type-arg]
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    return list(geometry["coordinates"])
