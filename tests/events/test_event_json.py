"""Device payloads are strict JSON: what JSON allows reads back exactly (integers past 64 bits
stay integers: a faster parser that turns them into floats would corrupt serial numbers);
NaN, Infinity and bad UTF-8 are refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.events.service import loads

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_what_json_writes_reads_back_the_same(value: object) -> None:
    assert loads(json.dumps(value)) == json.loads(json.dumps(value))


def test_integers_past_64_bits_are_read() -> None:
    assert loads(b'{"serial": 123456789012345678901234567890}') == {
        "serial": 123456789012345678901234567890
    }


@pytest.mark.parametrize(
    "raw",
    [b'{"t": NaN}', b'{"t": Infinity}', b'{"t": -Infinity}', b"\xff\xfe{}", b'{"a": 1', b""],
)
def test_not_json_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)
