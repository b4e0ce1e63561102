"""API and bus message models of the training domain."""

from __future__ import annotations
