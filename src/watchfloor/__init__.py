"""Watchfloor: detect, alert, lock down, account for everyone, learn."""

__version__ = "0.1.0"
