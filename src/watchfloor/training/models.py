"""Tables of the training domain."""

from __future__ import annotations
