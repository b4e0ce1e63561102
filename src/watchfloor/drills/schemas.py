"""API and bus message models of the drills domain."""

from __future__ import annotations
