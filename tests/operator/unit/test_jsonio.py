"""The operator's JSON codec: orjson, and the standard library for what orjson refuses."""

from __future__ import annotations

import json

import pytest

from lsml_operator import jsonio

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("big", [2**70, -(2**70)])
def test_integers_over_64_bits_round_trip(big):
    value = {"spec": {"seed": big, "name": "é"}}
    assert jsonio.loads(jsonio.dumps(value)) == value
    assert json.loads(jsonio.dumps(value)) == value


def test_sorted_keys_make_equal_content_equal_bytes_and_a_bad_document_is_an_error():
    assert jsonio.dumps({"b": 1, "a": {"d": 2, "c": 3}}, sort_keys=True) == jsonio.dumps(
        {"a": {"c": 3, "d": 2}, "b": 1}, sort_keys=True
    )
    assert jsonio.dumps({"b": 1, "a": 2}) != jsonio.dumps({"a": 2, "b": 1})
    with pytest.raises(ValueError):
        jsonio.loads(b"{not json")
