"""The FSL calculation against the standard's data: level boundaries, intangible adjustments,
the agency level, derived population and size scores, and an organisation's own edition."""

from __future__ import annotations

from typing import Any

import pytest

from watchfloor.assessments import fsl
from watchfloor.problems import InvalidInput

STD = fsl.default_standard()
KEYS = [
    "mission_criticality",
    "symbolism",
    "facility_population",
    "facility_size",
    "threat_to_tenants",
]


def scores_for(total: int) -> dict[str, int | None]:
    """Five scores of 1-4 adding up to `total` (5..20)."""
    assert 5 <= total <= 20
    left = total - 5
    out: dict[str, int | None] = {}
    for key in KEYS:
        extra = min(3, left)
        out[key] = 1 + extra
        left -= extra
    return out


@pytest.mark.parametrize(
    ("total", "level"),
    [
        (5, "I"),
        (7, "I"),
        (8, "II"),
        (12, "II"),
        (13, "III"),
        (17, "III"),
        (18, "IV"),
        (20, "IV"),
    ],
)
def test_level_at_every_boundary(total: int, level: str) -> None:
    result = fsl.compute(STD, scores_for(total))
    assert result.total == total
    assert result.computed_level == level
    assert result.level == level
    assert not result.agency_set and not result.clamped


def test_every_total_maps_to_exactly_one_level() -> None:
    expected = {**dict.fromkeys(range(5, 8), "I"), **dict.fromkeys(range(8, 13), "II")}
    expected |= {**dict.fromkeys(range(13, 18), "III"), **dict.fromkeys(range(18, 21), "IV")}
    for total, level in expected.items():
        assert fsl.compute(STD, scores_for(total)).level == level, total


@pytest.mark.parametrize(
    ("total", "adjustment", "level", "clamped"),
    [
        (12, +1, "III", False),  # II moved up
        (13, -1, "II", False),  # III moved down
        (7, +1, "II", False),
        (18, -1, "III", False),
        (5, -1, "I", True),  # already the lowest: held at I
        (20, +1, "IV", True),  # already the highest computed level: held at IV, never V
    ],
)
def test_intangible_adjustment_moves_one_level_and_is_clamped(
    total: int, adjustment: int, level: str, clamped: bool
) -> None:
    result = fsl.compute(
        STD, scores_for(total), adjustment=adjustment, justification="Courthouse next door."
    )
    assert result.computed_level != level or clamped
    assert result.level == level
    assert result.clamped is clamped
    assert result.adjustment == adjustment


@pytest.mark.parametrize("adjustment", [2, -2, 3])
def test_adjustment_beyond_one_level_is_refused(adjustment: int) -> None:
    with pytest.raises(InvalidInput) as err:
        fsl.compute(STD, scores_for(10), adjustment=adjustment, justification="because")
    assert err.value.errors and err.value.errors[0]["loc"] == ["body", "intangible_adjustment"]


@pytest.mark.parametrize("justification", ["", "   \n  "])
def test_adjustment_needs_a_written_justification(justification: str) -> None:
    with pytest.raises(InvalidInput) as err:
        fsl.compute(STD, scores_for(10), adjustment=1, justification=justification)
    assert err.value.errors and err.value.errors[0]["loc"] == ["body", "justification"]
    assert "justification" in err.value.detail


def test_fsl_v_is_set_by_the_agency_with_a_justification() -> None:
    result = fsl.compute(
        STD, scores_for(9), agency_level=True, justification="Seat of the national command."
    )
    assert result.level == "V" and result.agency_set
    assert result.computed_level == "II" and result.total == 9
    with pytest.raises(InvalidInput) as err:
        fsl.compute(STD, scores_for(20), agency_level=True)
    assert err.value.errors and err.value.errors[0]["loc"] == ["body", "justification"]


@pytest.mark.parametrize(
    ("people", "score"),
    [(0, 1), (99, 1), (100, 2), (250, 2), (251, 3), (750, 3), (751, 4), (50_000, 4)],
)
def test_population_score_boundaries(people: int, score: int) -> None:
    given = {k: 1 for k in KEYS if k not in ("facility_population", "facility_size")}
    result = fsl.compute(STD, given, population=people, floor_area_sqft=1000)
    assert result.scores["facility_population"] == score
    assert result.total == 4 + score


@pytest.mark.parametrize(
    ("sqft", "score"),
    [
        (0, 1),
        (10_000, 1),
        (10_001, 2),
        (100_000, 2),
        (100_001, 3),
        (250_000, 3),
        (250_001, 4),
    ],
)
def test_size_score_boundaries(sqft: int, score: int) -> None:
    given = {k: 1 for k in KEYS if k not in ("facility_population", "facility_size")}
    result = fsl.compute(STD, given, population=10, floor_area_sqft=sqft)
    assert result.scores["facility_size"] == score


def test_a_derived_score_that_contradicts_its_input_is_refused() -> None:
    given: dict[str, int | None] = {**scores_for(5), "facility_population": 4}
    with pytest.raises(InvalidInput) as err:
        fsl.compute(STD, given, population=50)
    assert err.value.errors and err.value.errors[0]["loc"] == ["body", "facility_population"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"symbolism": 5}, "symbolism"),
        ({"symbolism": 0}, "symbolism"),
        ({"threat_to_tenants": -1}, "threat_to_tenants"),
        ({"threat_to_tenants": None}, "threat_to_tenants"),
        ({"prestige": 2}, "prestige"),
    ],
)
def test_impossible_scores_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        fsl.compute(STD, {**scores_for(10), **change})
    assert err.value.errors and err.value.errors[0]["loc"] == ["body", field]


def test_negative_population_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        fsl.compute(STD, scores_for(10), population=-1)
    assert err.value.errors and err.value.errors[0]["loc"] == ["body", "population"]


CUSTOM = """
name: Agency edition
edition: "2027"
factors:
  - key: mission_criticality
    label: Mission criticality
    scores: {1: low, 2: medium, 3: high, 4: very high}
  - key: symbolism
    label: Symbolism
    scores: {1: low, 2: medium, 3: high, 4: very high}
  - key: facility_population
    label: Facility population
    derived_from: population
    upper_bounds: [49, 150, 500]
    scores: {1: a few, 2: some, 3: many, 4: a crowd}
  - key: facility_size
    label: Facility size
    derived_from: floor_area_sqft
    upper_bounds: [10000, 100000, 250000]
    scores: {1: small, 2: medium, 3: large, 4: huge}
  - key: threat_to_tenants
    label: Threat to tenant agencies
    scores: {1: low, 2: medium, 3: high, 4: very high}
levels:
  - {level: I, min: 5, max: 9}
  - {level: II, min: 10, max: 14}
  - {level: III, min: 15, max: 18}
  - {level: IV, min: 19, max: 20}
agency_level: V
max_intangible_adjustment: 1
reassess_months: {I: 48, II: 36, III: 24, IV: 12, V: 6}
"""


def test_a_custom_standard_changes_the_result() -> None:
    custom = fsl.parse_standard_yaml(CUSTOM)
    given = {"mission_criticality": 2, "symbolism": 2, "threat_to_tenants": 1}
    default = fsl.compute(STD, given, population=120, floor_area_sqft=5000)
    theirs = fsl.compute(custom, given, population=120, floor_area_sqft=5000)
    # 120 people: 2 in the default scale, 2 in theirs; total 8 = II by default, I in theirs
    assert (default.total, default.level) == (8, "II")
    assert (theirs.total, theirs.level) == (8, "I")
    # their population bands differ: 60 people score 2 there, 1 by default
    assert (
        fsl.compute(custom, given, population=60, floor_area_sqft=0).scores["facility_population"]
        == 2
    )
    assert (
        fsl.compute(STD, given, population=60, floor_area_sqft=0).scores["facility_population"] == 1
    )


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (("max: 9}", "max: 8}"), "levels"),  # a gap between I and II
        (("min: 10,", "min: 9,"), "levels"),  # an overlap
        (("{level: IV, min: 19, max: 20}", "{level: IV, min: 19, max: 19}"), "levels"),
        (("upper_bounds: [49, 150, 500]", "upper_bounds: [150, 49, 500]"), "factors"),
        (("upper_bounds: [49, 150, 500]", "upper_bounds: [49, 150]"), "factors"),
        ((", V: 6}", "}"), "reassess_months"),
        (("max_intangible_adjustment: 1", "max_intangible_adjustment: 9"), "max_intangible"),
        (("agency_level: V", "agency_level: V\nsurprise: 1"), "surprise"),
        (("derived_from: population", "derived_from: parking"), "derived_from"),
    ],
)
def test_an_invalid_standard_is_refused_saying_where(edit: tuple[str, str], where: str) -> None:
    old, new = edit
    assert old in CUSTOM
    with pytest.raises(InvalidInput) as err:
        fsl.parse_standard_yaml(CUSTOM.replace(old, new, 1))
    assert where in err.value.detail or where in str(err.value.errors)


@pytest.mark.parametrize("text", ["[1, 2", "just words", "- a\n- b\n"])
def test_a_standard_that_is_not_a_yaml_mapping_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        fsl.parse_standard_yaml(text)


def test_the_packaged_default_is_the_isc_table() -> None:
    assert [(b.level, b.min, b.max) for b in STD.levels] == [
        ("I", 5, 7),
        ("II", 8, 12),
        ("III", 13, 17),
        ("IV", 18, 20),
    ]
    assert STD.agency_level == "V"
    assert STD.max_intangible_adjustment == 1
    assert [f.key for f in STD.factors] == KEYS
    assert STD.factor("facility_population").upper_bounds == [99, 250, 750]
    assert STD.factor("facility_size").upper_bounds == [10_000, 100_000, 250_000]
