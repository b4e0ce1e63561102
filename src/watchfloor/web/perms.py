"""The permissions the console pages check (named once, used by routes and templates)."""

from __future__ import annotations

from watchfloor.auth.roles import Perm

ALARMS_READ = Perm.ALARMS_READ
INCIDENTS_MANAGE = Perm.INCIDENTS_MANAGE
RULES_WRITE = Perm.RULES_WRITE
PANIC_RAISE = Perm.PANIC_RAISE
LOCKDOWN_START = Perm.LOCKDOWN_START
LOCKDOWN_LIFT = Perm.LOCKDOWN_LIFT
NOTIFY_SEND = Perm.NOTIFY_SEND
NOTIFY_READ = Perm.NOTIFY_READ
ROLLCALL_READ = Perm.ROLLCALL_READ
ROLLCALL_MANAGE = Perm.ROLLCALL_MANAGE
