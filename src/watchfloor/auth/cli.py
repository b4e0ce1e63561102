"""Commands of this domain, registered on the `watchfloor` command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
