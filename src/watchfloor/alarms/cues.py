"""The life-safety cue: an operator's screen hears of a panic the moment its event is durable.

A life-safety event (panic, duress, weapon, a person needing help) becomes an alarm in the alarm
stage: one transaction that looks up the facility, device and rules, writes the alarm, folds it
into the facility's incident, starts its escalation and writes the `alarm.*` message. That takes
a few dozen milliseconds on SQLite under load. The person under threat should not wait for that
bookkeeping before the watch floor looks up, so the life-safety consumer (alarms.handlers) first
hands each event message to `LifeSafetyCues`, which applies the facility's life-safety rules in
memory and publishes `cue.<facility>.p<N>` straight away (on the bus, not the outbox), then
raises the alarm. The console flashes its P1 cue and sounds on it, then shows the alarm row when
the `alarm.*` message follows. Every path a life-safety event takes (HTTP, MQTT, the staff panic
page, another process) passes through that consumer, so every one is cued.

Nothing depends on a cue: it is not durable and carries no alarm id. If the process dies between
the two, the event's message is delivered again after the restart, cued again, and the alarm
stage raises the alarm then. Rules are cached per facility for
`RULES_TTL_SECONDS` (a rule edit reaches the cue within that; the alarm itself always uses the
rules in force). A rule with a zone, schedule or count condition is left to the alarm stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watchfloor.alarms import rules as evaluation
from watchfloor.bus import Bus, subject_token

log = logging.getLogger(__name__)

RULES_TTL_SECONDS = 2.0
CUE_SUBJECT_PREFIX = "cue"


@dataclass(frozen=True)
class _CueRule:
    key: str
    name: str
    priority: int
    conditions: dict[str, Any]


class LifeSafetyCues:
    """Publishes the cue of each committed life-safety event (see the module docstring)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self._rules: dict[tuple[int, str], tuple[float, list[_CueRule]]] = {}
        self.published = 0

    async def cue(self, data: Mapping[str, Any]) -> int:
        """Publish the cue of one `event.*` message; returns how many rules cued it. Never
        raises: the alarm stage still raises the alarm."""
        count = 0
        try:
            event_id = int(data["event_id"])
            facility_id = int(data["facility_id"])
            facility_code = str(data["facility_code"])
            event_type = str(data["type"])
            attributes = data.get("attributes")
            attributes = attributes if isinstance(attributes, dict) else {}
            for rule in await self._rules_for(facility_id, event_type):
                if set(rule.conditions) - {"attributes"}:
                    continue  # zone, schedule or count: the alarm stage decides
                if not evaluation.attributes_match(rule.conditions, attributes):
                    continue
                await self.bus.publish(
                    f"{CUE_SUBJECT_PREFIX}.{subject_token(facility_code)}.p{rule.priority}",
                    cue_message(data, rule.key, rule.name, rule.priority),
                    f"cue-{event_id}-{rule.key}",
                )
                count += 1
        except Exception:
            log.exception("life-safety cue for %s failed", data.get("event_id"))
        self.published += count
        return count

    async def _rules_for(self, facility_id: int, event_type: str) -> list[_CueRule]:
        key = (facility_id, event_type)
        hit = self._rules.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < RULES_TTL_SECONDS:
            return hit[1]
        async with self.sessionmaker() as db:
            found = [
                _CueRule(r.key, r.name, r.priority, dict(r.conditions or {}))
                for r in await evaluation.effective_rules(db, facility_id, event_type)
            ]
        if len(self._rules) > 10_000:
            self._rules.clear()
        self._rules[key] = (now, found)
        return found


def cue_message(
    data: Mapping[str, Any], rule_key: str, rule_name: str, priority: int
) -> dict[str, Any]:
    """The body of a `cue.<facility>.p<N>` message: what the console can say at once."""
    device = data.get("device_code")
    return {
        "event_id": data.get("event_id"),
        "facility_id": data.get("facility_id"),
        "facility_code": data.get("facility_code"),
        "device_code": device,
        "zone_id": data.get("zone_id"),
        "type": data.get("type"),
        "rule_key": rule_key,
        "title": rule_name + (f" — {device}" if device else ""),
        "priority": priority,
        "occurred_at": data.get("occurred_at"),
    }
