"""`serve --workers N`: several API processes on one port, each with its own listening socket.

uvicorn's own ``workers=`` shares one listening socket between the processes, and whichever
process wakes first accepts: under load a few busy keep-alive connections pile up on one
process while the other idles. Here every process binds the port itself with ``SO_REUSEPORT``,
so the kernel spreads new connections across them (Linux, BSD, macOS) by a hash of their
addresses, and the processes even out what the hash left uneven (``ConnectionSpread``). Where
the option does not exist, uvicorn's shared-socket workers are used instead.

The parent only supervises: it starts the processes, restarts one that dies unexpectedly, and on
SIGTERM/SIGINT passes the signal on and waits until every process has drained and exited. If
the parent itself is killed, the processes get SIGTERM from the kernel and stop gracefully.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("tracehouse.processes")

_RESTART_PAUSE_S = 1.0
_PR_SET_PDEATHSIG = 1


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _exit_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM (a graceful stop) if the supervising parent dies, even by
    SIGKILL, so that no API process is left behind serving on its own (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before that took effect
        os.kill(os.getpid(), signal.SIGTERM)


def keep_to_one_cpu() -> None:
    """Keep this process (its threads, and those it starts later) to one of its usable CPUs,
    chosen by process id so that servers started side by side spread out. Nothing happens
    where there is only one CPU to use or the platform cannot (not Linux).

    Why: a process runs Python on one thread at a time (the GIL) and hands the lock back and
    forth between its event loop and its writer thread many times per request. When the two
    threads sit on different cores, every hand-over wakes the other core and moves the
    interpreter's working set between their caches; on one core it is a plain context switch.
    Measured on the 2-core bench machine, one `serve` process: 7 to 16 % more spans/s. With
    several processes it made no difference there, so ``serve --workers N`` does not pin.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    setaffinity = getattr(os, "sched_setaffinity", None)
    if getaffinity is None or setaffinity is None:
        return
    cpus = sorted(getaffinity(0))
    if len(cpus) < 2:
        return
    cpu = cpus[os.getpid() % len(cpus)]
    try:
        setaffinity(0, {cpu})
    except OSError as exc:  # e.g. a container that forbids it: run unpinned
        log.warning("could not keep the process to CPU %s: %s", cpu, exc)


class ConnectionSpread:
    """Keeps the keep-alive connections of the API processes near an even split.

    ``SO_REUSEPORT`` picks a process for each new connection by a hash of its addresses, so a
    few long-lived connections can split unevenly (the bench's 17 split 10/7 and 11/6) and
    leave one process with more than its core can serve while the other idles. Each process
    publishes how many connections it has in a shared array; one that has more than its even
    share answers a request with ``Connection: close``, and the client's next connection is
    placed anew. HTTP/1.1 clients (the SDKs, OpenTelemetry exporters, proxies) reconnect
    without an error.
    """

    def __init__(self, connections: set[Any], counts: Any, slot: int) -> None:
        self._connections = connections  # uvicorn's set of this process's open connections
        self._counts = counts
        self._slot = slot
        self._closing = 0  # replies sent with Connection: close whose connection is still open

    def should_close(self) -> bool:
        mine = len(self._connections)
        counts = self._counts
        counts[self._slot] = mine
        total = sum(counts)
        share = -(-total // len(counts))  # ceiling: an odd total leaves one process one more
        if mine - self._closing <= share:
            return False
        self._closing += 1
        return True

    def closed(self) -> None:
        self._closing -= 1


_SPREAD: ConnectionSpread | None = None


def spread_app_from_environment() -> Any:
    """The app of one ``serve --workers N`` process, answering with ``Connection: close`` where
    that evens out the processes' connections (see ``ConnectionSpread``)."""
    from .app import app_from_environment

    app = app_from_environment()
    spread = _SPREAD
    if spread is None:
        return app

    async def spread_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not spread.should_close():
            await app(scope, receive, send)
            return

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_closing)
        finally:
            spread.closed()

    return spread_app


def _serve_one(
    config_kwargs: dict[str, Any], parent_pid: int, counts: Any = None, slot: int = 0
) -> None:
    """One API process: its own socket on the shared port, the app from the environment."""
    import uvicorn

    global _SPREAD
    _exit_with_parent(parent_pid)

    config = uvicorn.Config(
        "tracehouse.processes:spread_app_from_environment", factory=True, **config_kwargs
    )
    server = uvicorn.Server(config)
    if counts is not None:
        _SPREAD = ConnectionSpread(server.server_state.connections, counts, slot)
    sock = _bind(config.host, config.port)
    server.run(sockets=[sock])


def run_workers(workers: int, config_kwargs: dict[str, Any]) -> int:
    """Run ``workers`` API processes until SIGTERM/SIGINT; returns the exit code for the parent."""
    context = multiprocessing.get_context("spawn")
    # Bind once in the parent too: a port in use fails here, at once, with a clear error.
    probe = _bind(config_kwargs["host"], config_kwargs["port"])
    stopping = False

    counts = context.RawArray("i", workers)  # each process's open connections

    def start(slot: int) -> BaseProcess:
        process = context.Process(
            target=_serve_one, args=(config_kwargs, os.getpid(), counts, slot), daemon=False
        )
        process.start()
        return process

    def stop_all() -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        stop_all()

    processes = [start(slot) for slot in range(workers)]
    probe.close()  # the processes hold the port now
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping:
            time.sleep(0.2)
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.error(
                        "API process %s exited with code %s; starting a new one",
                        process.pid,
                        process.exitcode,
                    )
                    time.sleep(_RESTART_PAUSE_S)
                    if stopping:  # a stop came during the pause: nothing to restart
                        break
                    counts[i] = 0
                    processes[i] = start(i)
        # A process started while the signal was handled would have missed it (uvicorn takes
        # a repeated SIGTERM as the same request to stop).
        stop_all()
        for process in processes:
            process.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if all(p.exitcode in (0, -signal.SIGTERM) for p in processes) else 1
