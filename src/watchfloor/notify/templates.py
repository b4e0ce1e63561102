"""Alert templates: plain, short language that says what happened and what to do.

Each template gives the message's headline (e-mail subject, CAP headline), its body (what is sent
on every channel), the instruction (CAP <instruction>) and the CAP event, urgency, severity and
certainty. Variables are written {name}; `facility_name` and `facility_code` are always there,
other variables come from the caller's context (and per person, e.g. roll call's {answer_url}).
Exercise and test alerts say so at the start of every message.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from watchfloor.problems import InvalidInput

MAX_VALUE_CHARS = 1000


@dataclass(frozen=True)
class Template:
    name: str
    title: str  # shown in the composer
    event: str  # CAP <event>
    headline: str
    body: str
    instruction: str
    urgency: str = "Immediate"
    severity: str = "Severe"
    certainty: str = "Observed"
    msg_type: str = "Alert"


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="lockdown",
            title="Lockdown",
            event="Lockdown",
            headline="Lockdown at {facility_name}",
            body="Lockdown at {facility_name}. Go to a lockable room. Lock the door, turn off "
            "the lights, silence your phone. Stay there until you are told it is over.",
            instruction="Go to a lockable room. Lock the door, turn off the lights, silence your "
            "phone. Do not open the door until told the lockdown is over.",
            severity="Extreme",
        ),
        Template(
            name="lockdown_lifted",
            title="Lockdown lifted",
            event="Lockdown lifted",
            headline="Lockdown lifted at {facility_name}",
            body="The lockdown at {facility_name} is over. You may leave your room. Follow "
            "directions from security staff.",
            instruction="You may leave your room. Follow directions from security staff.",
            urgency="Immediate",
            severity="Minor",
            msg_type="Update",
        ),
        Template(
            name="rollcall_ask",
            title="Roll call: are you safe?",
            event="Roll call",
            headline="Are you safe? {facility_name}",
            body="Roll call at {facility_name}: are you safe? Answer now: {answer_url}",
            instruction="Tap the link and answer 'I am safe' or 'I need help'.",
            urgency="Immediate",
            severity="Severe",
        ),
        Template(
            name="escalation",
            title="Escalation",
            event="Security incident",
            headline="Security incident at {facility_name}",
            body="{message}. Open Watchfloor and acknowledge the incident.",
            instruction="Open Watchfloor and acknowledge the incident.",
            severity="Severe",
        ),
        Template(
            name="test",
            title="Test message",
            event="Test",
            headline="Test message for {facility_name}",
            body="This is a test of the Watchfloor alert system for {facility_name}. "
            "No action is needed.",
            instruction="No action is needed.",
            urgency="Unknown",
            severity="Unknown",
            certainty="Unknown",
        ),
        Template(
            name="custom",
            title="Custom message",
            event="Security message",
            headline="{headline}",
            body="{message}",
            instruction="{instruction}",
            urgency="Expected",
            severity="Moderate",
        ),
    )
}

PREFIX = {
    "Actual": "",
    "Exercise": "EXERCISE - this is a drill. ",
    "Test": "TEST - not a real alert, no action needed. ",
}
DEFAULTS = {"instruction": "Follow directions from security staff.", "headline": "Security message"}


def variables(template: str) -> set[str]:
    """The variables a template uses."""
    t = get(template)
    names: set[str] = set()
    for text in (t.headline, t.body, t.instruction):
        names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
    return names


def get(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown template '{name}'. Use one of: {', '.join(sorted(TEMPLATES))}."
        ) from None


@dataclass(frozen=True)
class Rendered:
    headline: str
    body: str
    instruction: str


def _fill(text: str, values: dict[str, str], template: str) -> str:
    try:
        return text.format_map(values)
    except KeyError as exc:
        raise InvalidInput(
            f"Template '{template}' needs the value '{exc.args[0]}'.",
            errors=[{"loc": ["context", str(exc.args[0])], "msg": "required", "type": "missing"}],
        ) from None


def render(name: str, status: str, values: dict[str, str]) -> Rendered:
    """The headline, body and instruction with `values` filled in and the Exercise / Test
    prefix added. Raises InvalidInput for an unknown template or a missing value."""
    t = get(name)
    if status not in PREFIX:
        raise InvalidInput(f"Unknown status '{status}'. Use Actual, Exercise or Test.")
    clean: dict[str, str] = {**DEFAULTS}
    for key, value in values.items():
        value = str(value).strip()
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidInput(f"The value '{key}' is longer than {MAX_VALUE_CHARS} characters.")
        if value:
            clean[key] = value
    prefix = PREFIX[status]
    headline = _fill(t.headline, clean, name)
    body = _fill(t.body, clean, name)
    instruction = _fill(t.instruction, clean, name)
    if prefix:
        headline = prefix.split(" - ")[0] + ": " + headline
        body = prefix + body
        instruction = prefix + instruction
    return Rendered(headline=headline[:300], body=body, instruction=instruction)
