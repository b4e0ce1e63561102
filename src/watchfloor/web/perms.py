"""The permissions the console pages check (named once, used by routes and templates)."""

from __future__ import annotations

from watchfloor.auth.roles import Perm

ALARMS_READ = Perm.ALARMS_READ
INCIDENTS_MANAGE = Perm.INCIDENTS_MANAGE
RULES_WRITE = Perm.RULES_WRITE
PANIC_RAISE = Perm.PANIC_RAISE
