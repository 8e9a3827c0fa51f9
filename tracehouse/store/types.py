"""Portable column types: UTC timestamps and JSON kept as text on every backend."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard
from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from tracehouse.memo import BoundedMemo


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out, on SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: keep one naive UTC format so ordering holds.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Bound once: reading a module's attribute is a dictionary lookup on every call, and these run
# several times for every row written.
_dumps = orjson.dumps
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


def dump_json(value: Any) -> str:
    """JSON text of a value; non-JSON values (e.g. datetimes) are serialised the orjson way."""
    return _dumps(value, option=_NON_STR_KEYS).decode()


# Packed JSON text (SQLite): values of at least PACK_MIN_CHARS characters (JSON columns count
# the bytes of their UTF-8) are stored compressed (a BLOB) when that saves at least a fifth;
# shorter ones, and every value on PostgreSQL (which compresses large values itself), stay
# text. The storage class tells the two apart. A packed value is a format byte and a
# compressed stream primed with a dictionary:
# - format 1: raw deflate, 2 KiB window, _DICTIONARY_1 (read only);
# - format 2: a Zstandard frame without magic number or checksum, with the content size,
#   level 1, _DICTIONARY_1 as raw content (read only);
# - format 3: the same frame with dictionary 2 (``zstd_dictionary_2.bin``, trained by
#   scripts/train_zstd_dictionary.py on this repository's own text shaped as chat messages,
#   code and span metadata). A trained dictionary carries entropy tables that a small value
#   can reuse instead of building its own, which was most of the cost of a value of a few
#   hundred bytes: format 3 writes such values 40 % faster than format 2, as small or smaller.
# Never change a dictionary or a format once released: add a new format instead.
PACK_MIN_CHARS = 100
_FORMAT_1 = b"\x01"
_FORMAT_2 = b"\x02"
_FORMAT_3 = b"\x03"
_DICTIONARY_1 = (
    b'{"1|2026-01-01T00:00:00.000000|0":["#0","#6","#1","#10","#11",".resourceAttributes",'
    b'".scope","#12","#5","#2","#3","#9"]}'
    b'{"1|2026-01-01T00:00:00.000000|0":["#14","#1","#20","#6",".attributes",'
    b'".resourceAttributes",".scope","#12","#5","#10","#11","#18","#19","#23","#13","#15",'
    b'"#16","#22"]}'
    b'"finish_reason":"stop"{"type":"text","text":"{"type":"text","content":"'
    b'[{"role":"user","parts":[{"type":"text","content":"'
    b'"tool_calls":[{"id":"call_","type":"function","function":{"name":"","arguments":"{\\"'
    b'"attributes":{"public_key":"pk-lf-"},"scope":{"name":"langfuse-sdk","version":"'
    b'"resourceAttributes":{"service.name":"","service.version":"",'
    b'"telemetry.sdk.language":"python","telemetry.sdk.name":"opentelemetry",'
    b'"telemetry.sdk.version":"1.","host.name":"","deployment.environment.name":"production"}'
    b'[{"role":"system","content":"{"role":"assistant","content":"{"role":"user","content":"'
)
_WBITS = -11  # format 1: a 2 KiB window


_DICTIONARY_2 = (Path(__file__).parent / "zstd_dictionary_2.bin").read_bytes()


class _Zstd(threading.local):
    """Zstandard contexts, one set per thread (a context is not thread safe): the compressor
    of format 3 and the decompressors of formats 2 and 3."""

    def __init__(self) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(
            1,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_content_size=True,
            write_checksum=False,
            write_dict_id=False,
        )
        self.compress = zstandard.ZstdCompressor(
            dict_data=_ZSTD_DICTIONARY_2, compression_params=params
        ).compress
        self.decompress = {
            fmt: zstandard.ZstdDecompressor(
                dict_data=dictionary, format=zstandard.FORMAT_ZSTD1_MAGICLESS
            ).decompress
            for fmt, dictionary in (
                (_FORMAT_2, _ZSTD_DICTIONARY_1),
                (_FORMAT_3, _ZSTD_DICTIONARY_2),
            )
        }


_ZSTD_DICTIONARY_1 = zstandard.ZstdCompressionDict(
    _DICTIONARY_1, dict_type=zstandard.DICT_TYPE_RAWCONTENT
)
_ZSTD_DICTIONARY_2 = zstandard.ZstdCompressionDict(
    _DICTIONARY_2, dict_type=zstandard.DICT_TYPE_FULLDICT
)
_ZSTD_DICTIONARY_2.precompute_compress(level=1)  # shared by the threads' compressors, read only
_zstd = _Zstd()


def _packed(raw: bytes) -> bytes | None:
    """``raw`` in format 3, or None when that would not save at least a fifth."""
    packed = _FORMAT_3 + _zstd.compress(raw)
    return packed if len(packed) * 5 <= len(raw) * 4 else None


def pack_text(text: str) -> str | bytes:
    if len(text) < PACK_MIN_CHARS:
        return text
    return _packed(text.encode()) or text


def _inflate(value: bytes) -> bytes:
    fmt = value[:1]
    decompress = _zstd.decompress.get(fmt)
    if decompress is not None:
        return decompress(memoryview(value)[1:])
    if fmt == _FORMAT_1:
        inflate = zlib.decompressobj(_WBITS, _DICTIONARY_1)
        return inflate.decompress(memoryview(value)[1:]) + inflate.flush()
    raise ValueError(f"unknown packed JSON format {fmt!r}")


def unpack_text(value: str | bytes | None) -> str | None:
    """Text of a packed column value (SQLite function ``th_unpack``)."""
    if isinstance(value, bytes):
        return _inflate(value).decode()
    return value


def _pack_json(raw: bytes) -> str | bytes:
    """JSON bytes as stored in a packed column: format 3 when large enough and it pays, else
    the text (the size rule counts the UTF-8 bytes rather than characters)."""
    return (len(raw) >= PACK_MIN_CHARS and _packed(raw)) or raw.decode()


def _dump_packed(value: Any) -> str | bytes:
    """``pack_text(dump_json(value))`` without the round trip through ``str``: the JSON bytes
    are compressed as they come."""
    return _pack_json(_dumps(value, option=_NON_STR_KEYS))


# Metadata values repeat: most of a span's metadata is its resource's and its scope's attributes,
# the same for every span a service sends (in bench/ingest_otlp.py, 59 of a request's 100
# observations carry the same metadata). A value packed lately is taken from here instead of
# being compressed again (the frames are the same bytes: compression is deterministic).
# Bounded: emptied when full; values above _REPEATS_MAX_BYTES are not kept.
_REPEATS_MAX = 512
_REPEATS: BoundedMemo[bytes, str | bytes] = BoundedMemo(_pack_json, _REPEATS_MAX)
_REPEATS_MAX_BYTES = 2_048


def _dump_packed_repeated(value: Any) -> str | bytes:
    """``_dump_packed`` for columns whose values often repeat (see ``_REPEATS``)."""
    raw = _dumps(value, option=_NON_STR_KEYS)
    if not PACK_MIN_CHARS <= len(raw) <= _REPEATS_MAX_BYTES:
        return _pack_json(raw)
    return _REPEATS[raw]


class JsonText(TypeDecorator[Any]):
    """Any JSON value stored as text, so a string stays a string and key order is kept.

    SQL NULL means "no value"; a JSON null sent by a client is stored as SQL NULL too.
    ``packed``: on SQLite, large values are stored compressed (see ``pack_text``); SQL that
    looks inside such a column reads it through ``unpacked``. ``repeats``: the column's
    values often repeat, so recent packed ones are remembered (see ``_REPEATS``).
    """

    impl = Text
    cache_ok = True

    def __init__(self, *, packed: bool = False, repeats: bool = False) -> None:
        super().__init__()
        self.packed = packed
        self.repeats = repeats

    def bind_converter(self, dialect: Dialect) -> Callable[[Any], str | bytes]:
        """What a non-null value is stored as, on ``dialect``."""
        if not self.packed or dialect.name != "sqlite":
            return dump_json
        return _dump_packed_repeated if self.repeats else _dump_packed

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | bytes | None:
        return None if value is None else self.bind_converter(dialect)(value)

    def process_result_value(self, value: str | bytes | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bytes):
            return orjson.loads(_inflate(value))
        return orjson.loads(value)


def unpacked(col: Any, dialect: str) -> Any:
    """A column as JSON text in SQL: packed SQLite values go through ``th_unpack``."""
    from sqlalchemy import func

    type_ = getattr(col, "type", None)
    if dialect == "sqlite" and isinstance(type_, JsonText) and type_.packed:
        return func.th_unpack(col, type_=Text())
    return col
