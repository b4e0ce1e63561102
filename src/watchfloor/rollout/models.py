"""Tables of the rollout domain."""

from __future__ import annotations
