"""Tables of the assessments domain."""

from __future__ import annotations
