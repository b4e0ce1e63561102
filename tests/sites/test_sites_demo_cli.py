"""The demo organisation (deterministic, the right size) and the sites commands."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date

import pyotp
import pytest
import yaml
from typer.testing import CliRunner

from watchfloor.cli import app
from watchfloor.config import get_settings
from watchfloor.sites.demo import DEMO_FACILITY, build_demo, demo_totp_secret
from watchfloor.sites.importer import parse_mapping

TODAY = date(2026, 1, 5)


def test_demo_is_deterministic():
    assert build_demo(seed=7, today=TODAY) == build_demo(seed=7, today=TODAY)
    assert build_demo(seed=7, today=TODAY) != build_demo(seed=8, today=TODAY)


def test_demo_size_and_shape():
    data = build_demo(today=TODAY)
    facilities = data["facilities"]
    assert 180 <= len(facilities) <= 220
    assert len(data["regions"]) == 10
    assert DEMO_FACILITY in {f["code"] for f in facilities}
    kinds = {f["kind"] for f in facilities}
    assert {"field_office", "detention", "holding", "courthouse"} <= kinds
    assert sum(f["kind"] == "field_office" for f in facilities) > len(facilities) / 3
    states = {f["state"] for f in facilities}
    assert len(states) >= 50
    devices = staff = expired = 0
    for f in facilities:
        assert 20 <= len(f["devices"]) <= 60, f["code"]
        assert 4 <= len(f["zones"]) <= 8, f["code"]
        assert 10 <= len(f["staff"]) <= 40, f["code"]
        assert {u["kind"] for u in f["response_units"]} == {"onsite_security", "police", "ems",
                                                           "fire"}  # fmt: skip
        zoneinfo.ZoneInfo(f["timezone"])
        assert -90 <= f["latitude"] <= 90 and -180 <= f["longitude"] <= 0
        devices += len(f["devices"])
        staff += len(f["staff"])
        expired += sum(
            1 for p in f["staff"] if p.get("vetting_expires_on") and p["vetting_expires_on"] < TODAY
        )
        assert any(d["address"].startswith("osdp://controller-") for d in f["devices"])
    assert 6000 <= devices <= 10000
    assert 2000 <= staff <= 8000
    assert expired > 0
    # every record is valid for the importer
    doc = parse_mapping(data)
    assert len(doc.devices) == devices


@pytest.fixture
def cli_env(database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", database_url)
    monkeypatch.setenv("WATCHFLOOR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("WATCHFLOOR_SECRET_KEY", "test-secret-key-not-for-production")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_import_export(cli_env, tmp_path, org_data):
    runner = CliRunner()
    src = tmp_path / "org.yaml"
    src.write_text(yaml.safe_dump(org_data(), sort_keys=False))
    res = runner.invoke(app, ["import", str(src)])
    assert res.exit_code == 0, res.output
    assert "facilities: 3 created" in res.output
    res = runner.invoke(app, ["import", str(src)])
    assert res.exit_code == 0 and "facilities: 0 created, 0 updated, 3 unchanged" in res.output

    out = tmp_path / "out.yaml"
    res = runner.invoke(app, ["export", "--format", "yaml", str(out)])
    assert res.exit_code == 0, res.output
    exported = yaml.safe_load(out.read_text())
    assert [f["code"] for f in exported["facilities"]] == ["ALPHA", "BRAVO", "CHARLIE"]
    res = runner.invoke(app, ["export", "--format", "csv", str(tmp_path / "csv")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["import", str(tmp_path / "csv")])
    assert res.exit_code == 0 and "3 unchanged" in res.output

    bad = tmp_path / "bad.yaml"
    data = org_data()
    data["facilities"][0]["population"] = -5
    bad.write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["import", str(bad)])
    assert res.exit_code == 1
    assert "bad.yaml: line" in res.output and "facilities[0].population" in res.output
    assert "Nothing was imported" in res.output
    res = runner.invoke(app, ["import", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_cli_demo_twice_and_demo_code(cli_env):
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--no-serve", "--port", "8123"])
    assert res.exit_code == 0, res.output
    assert "Created demo accounts: admin, operator, manager, guard" in res.output
    assert "http://127.0.0.1:8123/" in res.output and "watchfloor-demo" in res.output
    assert "watchfloor demo-code" in res.output
    assert re.search(r"facilities: 2\d\d created", res.output)

    res = runner.invoke(app, ["demo", "--no-serve"])
    assert res.exit_code == 0, res.output
    assert "facilities: 0 created, 0 updated" in res.output
    assert "Created demo accounts" not in res.output

    res = runner.invoke(app, ["demo-code", "admin"])
    assert res.exit_code == 0
    code = res.output.strip()
    assert re.fullmatch(r"\d{6}", code)
    assert pyotp.TOTP(demo_totp_secret("admin")).verify(code, valid_window=1)
    res = runner.invoke(app, ["demo-code", "mallory"])
    assert res.exit_code != 0 and "not a demo account" in res.output
