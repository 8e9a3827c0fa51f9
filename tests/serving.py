"""Running the real `tracehouse serve` command in tests: a free port and a health wait."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(
    url: str, proc: subprocess.Popen[str], output: Callable[[], str], timeout: float = 30
) -> None:
    """Poll /api/public/health until 200; fail with the server's output if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/api/public/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"tracehouse serve did not start:\n{output()}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str], timeout: float = 15) -> None:
    """SIGTERM (graceful: queued writes are committed), then SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
