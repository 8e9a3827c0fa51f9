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
    [
        "plain text",
        "",
        "kb-main",
        "NaN",
        "Infinity",
        "-Infinity",
        "2024-01-01",
        "{not json}",
        "t",
        "1.38.0",
        " 3.11.7 ",
        "-rc1",
        "1e",
        "01",
        "true story",
        "nullable",
        "false\nalarm",
    ],
)
def test_text_that_is_not_json_stays_as_it_came(text):
    assert json_value(text) == text


def _reference(text: str):
    """What json_value gives by definition: orjson's value, else the standard library's, else
    the text itself."""
    import orjson

    from tracehouse.jsontext import loads_strict

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return loads_strict(text)
    except ValueError:
        return text


def test_the_quick_checks_never_decide_otherwise_than_the_decoders():
    """Text orjson refuses is spared the standard library when it starts like a literal or a
    number without being one; over many such texts the answer stays the decoders' own."""
    import itertools

    pieces = ["", "-", "0", "1", "12", ".", "5", "e", "E", "+", " ", "x", "true", "null", "f"]
    texts = {"".join(p) for n in range(1, 4) for p in itertools.product(pieces, repeat=n)}
    texts |= {"1e400", "-1E+400", "1.38.0", " 3.11.7 ", "nullable", "true story", '["\\ud800"]'}
    for text in sorted(texts):
        got, expected = json_value(text), _reference(text)
        if isinstance(expected, float) and math.isinf(expected):
            assert isinstance(got, float) and got == expected, text
        else:
            assert got == expected and type(got) is type(expected), text
