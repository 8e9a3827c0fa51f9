"""json_value: the value JSON text stands for, or the text itself (attribute values)."""

from __future__ import annotations

import math

import pytest

from tracehouse.ingest.conventions._span import json_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}),
        ('  \n["spaced"]', ["spaced"]),
        ('"a JSON string"', "a JSON string"),
        ("42", 42),
        ("-7", -7),
        ("true", True),
        ("null", None),
        ('"\\ud800"', "\ud800"),  # a lone surrogate: orjson refuses, the standard library takes
    ],
)
def test_json_text_is_decoded(text, expected):
    assert json_value(text) == expected


@pytest.mark.parametrize(
    "text",
    ["plain text", "", "kb-main", "NaN", "Infinity", "-Infinity", "2024-01-01", "{not json}", "t"],
)
def test_text_that_is_not_json_stays_as_it_came(text):
    assert json_value(text) == text


def test_a_number_beyond_a_double_is_decoded_by_the_standard_library():
    assert math.isinf(json_value("1e400"))


def test_non_strings_pass_through():
    value = {"already": "decoded"}
    assert json_value(value) is value
    assert json_value(3) == 3
