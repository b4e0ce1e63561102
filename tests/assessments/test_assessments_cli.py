"""`watchfloor assessments load-standard | show-standard | due` against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_fsl import CUSTOM
from typer.testing import CliRunner

from watchfloor.assessments.cli import app
from watchfloor.config import get_settings


@pytest.fixture
def cli_env(settings, site, monkeypatch):  # type: ignore[no-untyped-def]
    """The CLI reads its settings from the environment: point it at the test's database."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WATCHFLOOR_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("WATCHFLOOR_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_load_and_show_a_standard(cli_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text(CUSTOM.replace("max: 9}", "max: 8}"))
    result = runner.invoke(app, ["load-standard", str(bad)])
    assert result.exit_code == 1 and "levels" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(CUSTOM)
    result = runner.invoke(app, ["load-standard", "--check", str(good)])
    assert result.exit_code == 0 and "Valid: Agency edition (2027)" in result.output
    shown = runner.invoke(app, ["show-standard"])
    assert json.loads(shown.stdout)["edition"] == "default"
    result = runner.invoke(app, ["load-standard", str(good)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["show-standard"])
    assert json.loads(shown.stdout)["edition"] == "2027"
    due = runner.invoke(app, ["due"])
    assert due.exit_code == 0 and "overdue" in due.stdout and "HQ" in due.stdout
