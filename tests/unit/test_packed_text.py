"""pack_text / unpack_text: compressed JSON text for SQLite's large column values."""

from __future__ import annotations

import hashlib
import random
import string
import zlib
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import zstandard
from sqlalchemy.dialects import sqlite

from tracehouse.store.types import (
    _DICTIONARY_1,
    _DICTIONARY_2,
    PACK_MIN_CHARS,
    JsonText,
    pack_text,
    unpack_text,
)


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


def test_values_written_in_format_1_still_read():
    # Format 1 (raw deflate primed with the same dictionary) was written by earlier releases.
    text = "[" + ",".join(['{"resourceAttributes":{"service.name":"api"}}'] * 4) + "]"
    deflate = zlib.compressobj(1, zlib.DEFLATED, -11, 3, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY_1)
    old = b"\x01" + deflate.compress(text.encode()) + deflate.flush()
    assert unpack_text(old) == text
    assert JsonText(packed=True).process_result_value(old, sqlite.dialect()) == orjson.loads(text)
    assert pack_text(text)[:1] == b"\x03"  # new values are written in format 3


def test_values_written_in_format_2_still_read():
    # Format 2 (Zstandard, _DICTIONARY_1 as raw content) was written by earlier releases.
    text = '[{"role":"user","content":"' + "what changed in the release? " * 12 + '"}]'
    params = zstandard.ZstdCompressionParameters.from_level(
        1, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=True
    )
    dictionary = zstandard.ZstdCompressionDict(
        _DICTIONARY_1, dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    frame = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
    old = b"\x02" + frame.compress(text.encode())
    assert unpack_text(old) == text
    assert JsonText(packed=True).process_result_value(old, sqlite.dialect()) == orjson.loads(text)


def test_the_released_dictionary_never_changes():
    # Values of format 3 can only be read with these exact bytes: a new dictionary needs a
    # new format (see tracehouse/store/types.py).
    assert len(_DICTIONARY_2) == 16384
    assert (
        hashlib.sha256(_DICTIONARY_2).hexdigest()
        == "a867404f9cafab56fa36399e0f35c01fdf58ca09eafcc10d2276bd685604d870"
    )


def test_packing_from_many_threads_round_trips():
    texts = [f'{{"n":{i},"text":"{"word " * (20 + i)}"}}' for i in range(200)]

    def pack_and_unpack(text: str) -> str | None:
        return unpack_text(pack_text(text))

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(pack_and_unpack, texts)) == texts


def test_an_unknown_format_is_an_error_not_garbage():
    with pytest.raises(ValueError, match="unknown packed JSON format"):
        unpack_text(b"\x09abc")


def test_the_column_type_packs_on_sqlite_only():
    from sqlalchemy.dialects import postgresql

    value = {"document": "lorem ipsum " * 100}
    column = JsonText(packed=True)
    on_sqlite = column.process_bind_param(value, sqlite.dialect())
    assert isinstance(on_sqlite, bytes)
    assert column.process_result_value(on_sqlite, sqlite.dialect()) == value
    on_pg = column.process_bind_param(value, postgresql.dialect())
    assert on_pg == orjson.dumps(value).decode()
    assert JsonText().process_bind_param(value, sqlite.dialect()) == on_pg


def test_repeated_values_are_stored_as_the_same_bytes_and_the_memory_is_bounded():
    """Columns whose values repeat (metadata) remember recent packed values: the bytes are
    those of packing anew, and what is remembered stays bounded."""
    from tracehouse.store import types

    column = JsonText(packed=True, repeats=True)
    plain = JsonText(packed=True)
    dialect = sqlite.dialect()
    value = {"resourceAttributes": {"service.name": "api", "host.name": "h" * 50}, "n": 1}
    first = column.process_bind_param(value, dialect)
    assert first == plain.process_bind_param(value, dialect)
    assert column.process_bind_param(dict(value), dialect) is first  # taken, not packed again
    assert column.process_result_value(first, dialect) == value
    short = {"a": 1}
    assert column.process_bind_param(short, dialect) == plain.process_bind_param(short, dialect)
    large = {"text": "word " * 1_000}
    assert column.process_bind_param(large, dialect) == plain.process_bind_param(large, dialect)
    assert orjson.dumps(large) not in types._REPEATS  # too large to keep
    for i in range(types._REPEATS_MAX * 3):
        text = f"value number {i} " * 10
        packed = column.process_bind_param({"v": text}, dialect)
        assert column.process_result_value(packed, dialect) == {"v": text}
        assert len(types._REPEATS) <= types._REPEATS_MAX


def test_none_bytes_and_bools_bind_as_before():
    """The store registers pass-through sqlite3 adapters for None, bytes and bool (a speed-up):
    they still bind as NULL, BLOB and integer."""
    import sqlite3

    import tracehouse.store.db  # noqa: F401  (registers the adapters)

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b, c, d, e)")
    conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (None, b"\x00\x01", "text", True, False))
    row = conn.execute("SELECT typeof(a), typeof(b), typeof(c), b, d, e, typeof(d) FROM t")
    assert row.fetchone() == ("null", "blob", "text", b"\x00\x01", 1, 0, "integer")
