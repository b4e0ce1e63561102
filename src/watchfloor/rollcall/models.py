"""Tables of the rollcall domain."""

from __future__ import annotations
