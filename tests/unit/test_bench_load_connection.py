"""The benchmarks' lean HTTP/1.1 client (``bench/_common.LoadConnection``) against a small
HTTP server on a socket: replies by length, by chunks and with ``Connection: close``, a request
that reaches the server as sent, and a broken reply that fails one request, not the next."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _common import LoadConnection, LoadConnectionError  # noqa: E402

Reply = Callable[[bytes, bytes], bytes]


async def _serve(reply: Reply, seen: list[tuple[bytes, bytes]], connections: list[int]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                seen.append((head, body))
                out = reply(head, body)
                writer.write(out)
                await writer.drain()
                if b"Connection: close" in out:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(reply: Reply, client: Callable[[str], Awaitable[None]]) -> tuple[list[Any], list[int]]:
    seen: list[tuple[bytes, bytes]] = []
    connections: list[int] = []

    async def main() -> None:
        server = await _serve(reply, seen, connections)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await client(f"http://127.0.0.1:{port}")

    asyncio.run(main())
    return seen, connections


def _by_length(head: bytes, body: bytes) -> bytes:
    payload = b"got " + str(len(body)).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nRetry-After: 3\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )


def test_requests_arrive_as_sent_and_reuse_one_connection() -> None:
    replies = []

    async def client(url: str) -> None:
        conn = LoadConnection(url + "/base", {"Authorization": "Basic abc", "X-Test": "1"})
        for size in (0, 10, 300_000):
            replies.append(await conn.post("/v1/traces", b"x" * size))
        await conn.close()

    seen, connections = _run(_by_length, client)
    assert [r[0] for r in replies] == [200, 200, 200]
    assert [r[2] for r in replies] == [b"got 0", b"got 10", b"got 300000"]
    assert replies[0][1]["retry-after"] == "3"  # header names in lower case
    head, body = seen[2]
    assert head.startswith(b"POST /base/v1/traces HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Basic abc\r\n" in head
    assert b"\r\nX-Test: 1\r\n" in head
    assert b"\r\nHost: 127.0.0.1:" in head
    assert body == b"x" * 300_000
    assert connections == [1]  # kept alive


def test_chunked_reply_with_trailer() -> None:
    def chunked(head: bytes, body: bytes) -> bytes:
        return (
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )

    replies = []

    async def client(url: str) -> None:
        conn = LoadConnection(url, {})
        replies.append(await conn.post("/a", b"1"))
        replies.append(await conn.post("/a", b"2"))
        await conn.close()

    _, connections = _run(chunked, client)
    assert [(r[0], r[2]) for r in replies] == [(503, b"hello, world")] * 2
    assert connections == [1]


def test_connection_close_reply_reconnects() -> None:
    def closing(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    replies = []

    async def client(url: str) -> None:
        conn = LoadConnection(url, {})
        for _ in range(3):
            replies.append(await conn.post("/a", b"body"))
        await conn.close()

    seen, connections = _run(closing, client)
    assert [r[2] for r in replies] == [b"ok"] * 3
    assert len(seen) == 3
    assert connections == [1, 1, 1]


def test_a_broken_reply_fails_that_request_only() -> None:
    def sometimes_broken(head: bytes, body: bytes) -> bytes:
        if body == b"bad":
            return b"SMTP ready\r\n\r\n"
        if body == b"no-length":
            return b"HTTP/1.1 200 OK\r\n\r\n"
        return _by_length(head, body)

    outcomes: list[Any] = []

    async def client(url: str) -> None:
        conn = LoadConnection(url, {})
        for body in (b"good", b"bad", b"good", b"no-length", b"good"):
            try:
                outcomes.append((await conn.post("/a", body))[2])
            except LoadConnectionError as exc:
                outcomes.append(str(exc))
        await conn.close()

    _, connections = _run(sometimes_broken, client)
    assert outcomes[0] == outcomes[2] == outcomes[4] == b"got 4"
    assert "not an HTTP/1.x reply" in outcomes[1]
    assert "neither Content-Length nor chunks" in outcomes[3]
    assert connections == [1, 1, 1]  # a new connection after each failure


def test_refused_connection_and_https_url() -> None:
    async def client() -> None:
        with pytest.raises(LoadConnectionError, match="ConnectionRefusedError|OSError"):
            await LoadConnection(f"http://127.0.0.1:{_closed_port()}", {}).post("/a", b"")

    asyncio.run(client())
    with pytest.raises(ValueError, match="plain http"):
        LoadConnection("https://example.invalid", {})


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
