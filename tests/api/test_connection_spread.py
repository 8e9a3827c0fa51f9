"""``serve --workers N`` keeps the keep-alive connections of its processes near an even split.

``SO_REUSEPORT`` places each new connection by a hash of its addresses, so a few long-lived
connections can land unevenly; a process with more than its share answers with
``Connection: close`` and the client's next connection is placed anew.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from tests.api.test_crash_safety import serving
from tracehouse.processes import ConnectionSpread


def _counts(*values: int) -> Any:
    counts = multiprocessing.get_context("spawn").RawArray("i", len(values))
    counts[:] = list(values)
    return counts


def test_a_process_over_its_share_closes_down_to_it() -> None:
    connections = set(range(11))
    counts = _counts(0, 5)  # the other process published 5
    spread = ConnectionSpread(connections, counts, 0)
    # 16 in all, 8 each: three replies close their connections, then none (those three are
    # still open until their replies are sent).
    assert [spread.should_close() for _ in range(5)] == [True, True, True, False, False]
    assert counts[0] == 11  # what it publishes for the others
    for _ in range(3):
        connections.pop()
        spread.closed()
    counts[1] = 8  # the clients connected again, and the hash placed them over there
    assert not spread.should_close()
    assert counts[0] == 8


def test_an_even_or_nearly_even_split_is_left_alone() -> None:
    assert not ConnectionSpread(set(range(9)), _counts(0, 8), 0).should_close()  # 17: 9 and 8
    assert not ConnectionSpread(set(range(4)), _counts(0, 4, 5), 0).should_close()
    # A process under its share never closes, whatever the others have.
    assert not ConnectionSpread(set(range(2)), _counts(0, 30), 0).should_close()


def test_the_processes_of_serve_end_up_with_even_shares(tmp_path: Path) -> None:
    env = {**os.environ, "TRACEHOUSE_DATA_DIR": str(tmp_path / "data")}
    log_path = tmp_path / "serve.log"
    with serving(env, log_path, workers=2) as (url, proc):
        port = int(urlsplit(url).port or 0)
        processes = _wait_listening(proc.pid, port, 2, log_path)  # the second may be starting
        limits = httpx.Limits(max_connections=1)
        clients = [httpx.Client(base_url=url, limits=limits) for _ in range(12)]
        try:
            shares: list[int] = []
            for _ in range(40):  # each round, a request on each of the 12 keep-alive connections
                for client in clients:
                    assert client.get("/api/public/health").status_code == 200
                shares = sorted(_established(pid, port) for pid in processes)
                if shares == [6, 6]:
                    break
            assert shares == [6, 6]
        finally:
            for client in clients:
                client.close()


def _connections(pid: int) -> list[Any]:
    process = psutil.Process(pid)
    listing = getattr(process, "net_connections", None) or process.connections
    try:
        return list(listing(kind="tcp"))
    except psutil.NoSuchProcess:
        return []


def _listening(parent: int, port: int) -> list[int]:
    """The API processes: children of ``serve`` listening on ``port``."""
    return [
        child.pid
        for child in psutil.Process(parent).children()
        if any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in _connections(child.pid)
        )
    ]


def _established(pid: int, port: int) -> int:
    return sum(
        c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in _connections(pid)
    )


def test_a_process_that_dies_is_replaced_and_a_stop_meanwhile_ends_them_all(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TRACEHOUSE_DATA_DIR": str(tmp_path / "data")}
    log_path = tmp_path / "serve.log"
    with serving(env, log_path, workers=2) as (url, proc):
        port = int(urlsplit(url).port or 0)
        first = _wait_listening(proc.pid, port, 2, log_path)
        os.kill(first[0], signal.SIGKILL)
        replaced = _wait_listening(proc.pid, port, 2, log_path, without=first[0])
        assert first[0] not in replaced
        assert httpx.get(f"{url}/api/public/health").status_code == 200
        # Killed again, and the stop comes while serve waits to start its replacement.
        os.kill(replaced[0], signal.SIGKILL)
        time.sleep(0.5)  # serve looks every 0.2 s, then waits 1 s before starting another
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # it used to start the replacement anyway and wait for it forever
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, log_path.read_text()
        assert "exited with code -9; starting a new one" in log_path.read_text()


def _wait_listening(
    parent: int, port: int, count: int, log_path: Path, without: int | None = None
) -> list[int]:
    """The API processes once ``count`` of them listen (and not ``without``); fails after 60 s
    with serve's log."""
    deadline = time.monotonic() + 60
    while True:
        processes = _listening(parent, port)
        if len(processes) >= count and without not in processes:
            return processes
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
