"""pack_text / unpack_text: compressed JSON text for SQLite's large column values."""

from __future__ import annotations

import random
import string

import orjson
import pytest

from tracehouse.store.types import PACK_MIN_CHARS, JsonText, pack_text, unpack_text


def test_short_values_stay_text_and_large_ones_round_trip():
    assert pack_text("x" * (PACK_MIN_CHARS - 1)) == "x" * (PACK_MIN_CHARS - 1)
    for text in (
        '{"resourceAttributes":{"service.name":"api"},"scope":{"name":"langfuse-sdk"}}' * 3,
        "ünïcödé ✓ 漢字 " * 50,
        '[{"role":"user","content":"' + "hello " * 200 + '"}]',
    ):
        packed = pack_text(text)
        assert isinstance(packed, bytes) and len(packed) < len(text.encode())
        assert unpack_text(packed) == text


def test_incompressible_text_is_kept_as_text():
    text = "".join(random.Random(5).choices(string.printable[:94], k=600))
    assert pack_text(text) == text  # random printable characters: saves less than a fifth
    assert unpack_text(text) == text and unpack_text(None) is None


def test_an_unknown_format_is_an_error_not_garbage():
    with pytest.raises(ValueError, match="unknown packed JSON format"):
        unpack_text(b"\x09abc")


def test_the_column_type_packs_on_sqlite_only():
    from sqlalchemy.dialects import postgresql, sqlite

    value = {"document": "lorem ipsum " * 100}
    column = JsonText(packed=True)
    on_sqlite = column.process_bind_param(value, sqlite.dialect())
    assert isinstance(on_sqlite, bytes)
    assert column.process_result_value(on_sqlite, sqlite.dialect()) == value
    on_pg = column.process_bind_param(value, postgresql.dialect())
    assert on_pg == orjson.dumps(value).decode()
    assert JsonText().process_bind_param(value, sqlite.dialect()) == on_pg
