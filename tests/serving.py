"""Running the real `tracehouse serve` command in tests: a free port and a health wait."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def serving(env: dict[str, str], data_dir: Path) -> Iterator[str]:
    """``tracehouse serve`` on a free port with ``env``, output in ``data_dir/server.log``;
    yields its URL once healthy and stops it (SIGTERM) afterwards."""
    port = free_port()
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracehouse", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, proc, log_path.read_text)
            yield url
        finally:
            stop(proc)
