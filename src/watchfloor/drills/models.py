"""Tables of the drills domain."""

from __future__ import annotations
