"""The course catalogue and role requirements the migration seeds (edit them afterwards through
the API). Refresh intervals follow common practice for these courses: yearly for the ones about an
attack or an emergency, two years for first aid, CPR and awareness training."""

from __future__ import annotations

#: (code, name, refresh months, description)
COURSES: list[tuple[str, str, int, str]] = [
    ("ASR", "Active-shooter response", 12,
     "Run, hide, fight: what to do when an armed attacker is in or near the building."),
    ("DEESC", "De-escalation", 12,
     "Calming an angry or distressed person: words, distance, posture, when to step back."),
    ("SITAWARE", "Situational awareness", 24,
     "Noticing what is out of place: pre-attack behaviour, suspicious items, reporting it."),
    ("EMERG", "Emergency response", 12,
     "Evacuation, shelter in place, lockdown roles, roll call and the facility's plans."),
    ("FIRSTAID", "First aid", 24,
     "Basic first aid until professional help arrives."),
    ("STB", "Stop the Bleed", 24,
     "Bleeding control: direct pressure, wound packing, tourniquets."),
    ("CPR", "CPR and AED", 24,
     "Cardiopulmonary resuscitation and use of an automated external defibrillator."),
]  # fmt: skip

_EVERYONE = [
    "staff", "guard", "facility_manager", "operator", "programme_manager", "threat_assessor",
    "responder", "admin",
]  # fmt: skip

#: course code -> the Person.role values that must hold it
REQUIREMENTS: dict[str, list[str]] = {
    "ASR": _EVERYONE,
    "DEESC": ["guard", "facility_manager", "threat_assessor"],
    "FIRSTAID": ["guard", "facility_manager"],
    "SITAWARE": ["guard", "operator", "facility_manager"],
    "EMERG": ["guard", "operator", "facility_manager"],
    "STB": ["guard"],
}
