"""Tables of the lockdown domain."""

from __future__ import annotations
