"""read_body: one buffer for bodies with a Content-Length, clear errors when it lies."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from starlette.requests import Request

from tracehouse.api.deps import read_body
from tracehouse.errors import InvalidInput, PayloadTooLarge


def _request(chunks: list[bytes], headers: dict[str, str]) -> Request:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def _read(chunks: list[bytes], headers: dict[str, str], limit: int = 1000) -> bytes:
    return bytes(asyncio.run(read_body(_request(chunks, headers), limit)))


def test_chunks_fill_one_buffer_of_the_declared_length():
    assert _read([b"ab", b"cde", b"f"], {"content-length": "6"}) == b"abcdef"


def test_without_a_length_the_chunks_are_joined():
    assert _read([b"ab", b"cd"], {}) == b"abcd"


def test_a_body_shorter_or_longer_than_its_content_length_is_refused():
    with pytest.raises(InvalidInput, match="Content-Length said 10"):
        _read([b"abc"], {"content-length": "10"})
    with pytest.raises(InvalidInput, match="longer than its Content-Length"):
        _read([b"abc", b"def"], {"content-length": "4"})


def test_limits_apply_before_and_after_inflating():
    with pytest.raises(PayloadTooLarge):
        _read([b"x" * 20], {"content-length": "20"}, limit=10)
    with pytest.raises(PayloadTooLarge):
        _read([b"x" * 20], {}, limit=10)
    packed = gzip.compress(b"y" * 5000)
    with pytest.raises(PayloadTooLarge):
        _read([packed], {"content-length": str(len(packed)), "content-encoding": "gzip"})
    assert (
        _read(
            [packed], {"content-length": str(len(packed)), "content-encoding": "gzip"}, limit=6000
        )
        == b"y" * 5000
    )


def test_large_json_bodies_parse_the_same_and_refuse_the_same():
    from tracehouse.api.deps import parse_json

    big = b'{"batch": [{"input": "' + b"x" * (2 * 2**20) + b'", "n": 12345678901234567890}]}'
    parsed = parse_json(bytearray(big))
    assert len(parsed["batch"][0]["input"]) == 2 * 2**20
    assert parsed["batch"][0]["n"] == 12345678901234567890
    for bad in (big[:-1], big.replace(b"12345678901234567890", b"NaN")):
        with pytest.raises(InvalidInput, match="malformed JSON"):
            parse_json(bad)
    with pytest.raises(InvalidInput, match="malformed JSON"):
        parse_json(b'{"n": NaN}')
