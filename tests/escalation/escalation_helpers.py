"""Helpers of the escalation tests (a module, so test files can import it by name)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# make_incident(priority=1, facility="ESC-1", title="Panic") -> incident id
MakeIncident = Callable[..., Awaitable[int]]
