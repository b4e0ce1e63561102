"""The facility security level (FSL), computed the way the ISC Risk Management Process does it.

Five factors (mission criticality, symbolism, facility population, facility size, threat to
tenant agencies) are each scored 1-4; their total selects a level from the standard's table
(by default 5-7 → I, 8-12 → II, 13-17 → III, 18-20 → IV). Intangible factors may move the
computed level by at most `max_intangible_adjustment` levels, only with a written justification;
the agency level (V) is never computed, only set, again with a justification.

The factor scales and the level table are data (`data/isc-rmp.yaml`), validated by `Standard`;
an organisation may load its own edition (see `service.load_standard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from watchfloor.problems import InvalidInput

DERIVED_INPUTS = ("population", "floor_area_sqft")
MAX_JUSTIFICATION = 4000


class Factor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    label: str = Field(min_length=1, max_length=120)
    scores: dict[int, str] = Field(min_length=2, max_length=10)
    derived_from: str | None = None
    upper_bounds: list[int] | None = None

    @model_validator(mode="after")
    def _check(self) -> Factor:
        keys = sorted(self.scores)
        if keys != list(range(1, len(keys) + 1)):
            raise ValueError(f"factor '{self.key}': scores must be numbered 1..n without gaps")
        if self.derived_from is not None:
            if self.derived_from not in DERIVED_INPUTS:
                raise ValueError(
                    f"factor '{self.key}': derived_from must be one of {', '.join(DERIVED_INPUTS)}"
                )
            bounds = self.upper_bounds or []
            if len(bounds) != len(keys) - 1:
                raise ValueError(
                    f"factor '{self.key}': needs {len(keys) - 1} upper_bounds (one per score "
                    "but the highest)"
                )
            if any(b < 0 for b in bounds) or bounds != sorted(set(bounds)):
                raise ValueError(
                    f"factor '{self.key}': upper_bounds must be non-negative and increasing"
                )
        elif self.upper_bounds is not None:
            raise ValueError(f"factor '{self.key}': upper_bounds needs derived_from")
        return self

    @property
    def max_score(self) -> int:
        return max(self.scores)

    def score_for(self, value: int) -> int:
        """The score of a derived input (people, square feet)."""
        assert self.upper_bounds is not None
        for score, bound in enumerate(self.upper_bounds, start=1):
            if value <= bound:
                return score
        return self.max_score


class LevelBand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: str = Field(pattern=r"^[A-Z0-9]{1,8}$")
    min: int = Field(ge=0)
    max: int = Field(ge=0)


class Standard(BaseModel):
    """One edition of the FSL standard: factor scales, level table, reassessment intervals."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    edition: str = Field(min_length=1, max_length=60)
    factors: list[Factor] = Field(min_length=1, max_length=20)
    levels: list[LevelBand] = Field(min_length=1, max_length=10)
    agency_level: str = Field(pattern=r"^[A-Z0-9]{1,8}$")
    max_intangible_adjustment: int = Field(ge=0, le=3)
    reassess_months: dict[str, int]

    @model_validator(mode="after")
    def _check(self) -> Standard:
        keys = [f.key for f in self.factors]
        if len(set(keys)) != len(keys):
            raise ValueError("factor keys must be unique")
        for need in DERIVED_INPUTS:
            if [f.derived_from for f in self.factors].count(need) > 1:
                raise ValueError(f"only one factor may be derived from {need}")
        lo = len(self.factors)
        hi = sum(f.max_score for f in self.factors)
        bands = sorted(self.levels, key=lambda b: b.min)
        names = [b.level for b in bands]
        if len(set(names)) != len(names) or self.agency_level in names:
            raise ValueError("level names must be unique and differ from agency_level")
        expect = lo
        for band in bands:
            if band.min > band.max:
                raise ValueError(f"level {band.level}: min is above max")
            if band.min != expect:
                raise ValueError(
                    f"levels must cover every total from {lo} to {hi} without gaps or overlaps "
                    f"(level {band.level} starts at {band.min}, expected {expect})"
                )
            expect = band.max + 1
        if expect - 1 != hi:
            raise ValueError(f"levels must end at the highest possible total, {hi}")
        for level in [*names, self.agency_level]:
            months = self.reassess_months.get(level)
            if months is None or not 1 <= months <= 120:
                raise ValueError(f"reassess_months needs 1-120 months for level {level}")
        return self

    @property
    def ordered_levels(self) -> list[str]:
        return [b.level for b in sorted(self.levels, key=lambda b: b.min)]

    def factor(self, key: str) -> Factor:
        for f in self.factors:
            if f.key == key:
                return f
        raise KeyError(key)

    def derived_factor(self, source: str) -> Factor | None:
        for f in self.factors:
            if f.derived_from == source:
                return f
        return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_standard(data: Any) -> Standard:
    """Validate a standard (already parsed from YAML/JSON); InvalidInput names what is wrong."""
    if _has_nul(data):
        raise InvalidInput("The standard is not valid: its text must not contain NUL characters.")
    try:
        return Standard.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "loc": ["standard", *[str(p) for p in e["loc"]]],
                "msg": str(e["msg"]),
                "type": str(e["type"]),
            }
            for e in exc.errors()
        ]
        first = errors[0]
        where = ".".join(first["loc"][1:]) or "standard"
        raise InvalidInput(
            f"The standard is not valid: {where}: {first['msg']}", errors=errors
        ) from None


def parse_standard_yaml(text: str) -> Standard:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The standard is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("The standard must be a YAML mapping (name, edition, factors, ...).")
    return parse_standard(data)


@cache
def default_standard() -> Standard:
    text = resources.files("watchfloor.assessments").joinpath("data/isc-rmp.yaml").read_text()
    return parse_standard_yaml(text)


@dataclass(frozen=True)
class FSLResult:
    scores: dict[str, int]  # factor key -> score
    total: int
    computed_level: str  # from the total alone
    adjustment: int  # intangible adjustment asked for
    level: str  # the level in force (adjusted, clamped, or the agency level)
    clamped: bool  # the adjustment ran past the lowest/highest level and was held there
    agency_set: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "total": self.total,
            "computed_level": self.computed_level,
            "adjustment": self.adjustment,
            "level": self.level,
            "clamped": self.clamped,
            "agency_set": self.agency_set,
        }


def _bad(field: str, msg: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {msg}", errors=[{"loc": ["body", field], "msg": msg, "type": "value_error"}]
    )


def compute(
    standard: Standard,
    factors: dict[str, int | None],
    *,
    population: int | None = None,
    floor_area_sqft: int | None = None,
    adjustment: int = 0,
    justification: str = "",
    agency_level: bool = False,
) -> FSLResult:
    """The FSL from factor scores; derived factors come from population / floor area when those
    are given (a derived factor's score may also be given directly when they are not).

    Raises InvalidInput naming the field for a missing or out-of-range score, an adjustment
    beyond the standard's limit, or an adjustment / agency level without a justification."""
    inputs = {"population": population, "floor_area_sqft": floor_area_sqft}
    for name, value in inputs.items():
        if value is not None and value < 0:
            raise _bad(name, "must be zero or more")
    unknown = set(factors) - {f.key for f in standard.factors}
    if unknown:
        raise _bad(sorted(unknown)[0], "is not a factor of this standard")
    scores: dict[str, int] = {}
    for f in standard.factors:
        given = factors.get(f.key)
        source = inputs.get(f.derived_from) if f.derived_from else None
        if source is not None:
            derived = f.score_for(source)
            if given is not None and given != derived:
                raise _bad(
                    f.key,
                    f"is derived from {f.derived_from} ({source}) as {derived}; {given} was given",
                )
            scores[f.key] = derived
            continue
        if given is None:
            hint = f" (or give {f.derived_from})" if f.derived_from else ""
            raise _bad(f.key, f"a score from 1 to {f.max_score} is required{hint}")
        if not 1 <= given <= f.max_score:
            raise _bad(f.key, f"must be from 1 to {f.max_score}; {given} is impossible")
        scores[f.key] = given
    total = sum(scores.values())
    computed = next(b.level for b in standard.levels if b.min <= total <= b.max)
    limit = standard.max_intangible_adjustment
    if not -limit <= adjustment <= limit:
        raise _bad(
            "intangible_adjustment",
            f"intangible factors may move the level by at most {limit}; {adjustment} was asked",
        )
    reason = justification.strip()
    if len(reason) > MAX_JUSTIFICATION:
        raise _bad("justification", f"must be at most {MAX_JUSTIFICATION} characters")
    if (adjustment or agency_level) and not reason:
        what = "setting the agency level" if agency_level else "an intangible adjustment"
        raise _bad("justification", f"a written justification is required for {what}")
    if agency_level:
        return FSLResult(scores, total, computed, adjustment, standard.agency_level, False, True)
    order = standard.ordered_levels
    index = order.index(computed) + adjustment
    clamped = not 0 <= index < len(order)
    index = min(max(index, 0), len(order) - 1)
    return FSLResult(scores, total, computed, adjustment, order[index], clamped, False)
