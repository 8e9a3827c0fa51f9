"""The webhook delivery job: sends queued prompt-change deliveries, with retries and backoff.

Prompt changes queue one ``webhook_deliveries`` row per matching webhook in their own
transaction (an outbox, ``store.webhooks.enqueue_prompt_event``). This job, one per API process,
polls for due rows (and wakes at once when its process changed a prompt), leases them with a
compare-and-set on ``locked_until`` so that several processes never send the same delivery at
the same time, POSTs the stored payload signed like Langfuse does, and records the outcome:

- 2xx: ``delivered``;
- anything else, a network error or a timeout: ``attempts + 1`` and the next attempt after
  ``backoff_base * 2**(attempts - 1)`` seconds (capped, plus up to 10% jitter), or ``failed``
  once ``max_attempts`` attempts were made;
- the webhook was deleted or deactivated: ``failed`` without sending.

Delivery is at least once: a process that dies mid-send leaves its lease to expire, and the
delivery is then sent again (receivers can deduplicate on the payload's ``id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
from sqlalchemy.engine import Connection, Engine

from .. import __version__
from ..config import Settings
from ..errors import Overloaded
from ..store import webhooks as store

log = logging.getLogger("tracehouse.webhooks")

Run = Callable[[Callable[[Connection], Any]], Awaitable[Any]]
"""The write path's ``run``: ``fn(conn)`` in a write transaction."""

USER_AGENT = f"tracehouse/{__version__}"
SIGNATURE_HEADER = "x-langfuse-signature"
BATCH = 50  # deliveries leased (and sent concurrently) at once
_ERROR_CHARS = 500  # of a failed reply's body kept in last_error
_STOP_GRACE_S = 5.0  # how long shutdown waits for deliveries in flight


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``x-langfuse-signature`` value: ``t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def backoff_s(attempts: int, base: float, cap: float) -> float:
    """Wait after the ``attempts``-th failed attempt: base, 2·base, 4·base … up to cap, +≤10%."""
    delay: float = min(cap, base * 2 ** min(attempts - 1, 62))
    return delay * (1 + random.uniform(0, 0.1))


class WebhookJob:
    """One per process; ``start`` and ``stop`` run on the app's event loop."""

    def __init__(
        self,
        engine: Engine,
        run: Run,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._engine = engine
        self._run = run
        self._poll_s = settings.webhook_poll_interval_s
        self._timeout_s = settings.webhook_timeout_s
        self._max_attempts = settings.webhook_max_attempts
        self._base_s = settings.webhook_backoff_base_s
        self._cap_s = settings.webhook_backoff_max_s
        # A lease outlives an attempt (timeout) and the wait to record its outcome.
        self._lease_s = self._timeout_s + 60.0
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0  # attempts made (for tests and metrics)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=False,
            transport=self._transport,
        )
        self._task = asyncio.create_task(self._main(), name="tracehouse-webhooks")

    async def stop(self) -> None:
        """Let deliveries in flight finish (briefly), then stop; unsent ones stay queued."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            done, _ = await asyncio.wait({task}, timeout=_STOP_GRACE_S)
            if not done:
                # Cancelled in flight: those leases expire and the deliveries are sent again.
                task.cancel()
                await asyncio.wait({task})
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None

    def wake(self) -> None:
        """Look for due deliveries now (safe from any thread; a no-op when not running)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # -- the loop -----------------------------------------------------------------------------

    async def _main(self) -> None:
        while not self._stopping:
            wait = self._poll_s
            try:
                busy, next_due = await self.step()
                if busy:
                    continue
                if next_due is not None:
                    until = (next_due - datetime.now(UTC)).total_seconds()
                    wait = min(wait, max(until, 0.0))
            except Overloaded:
                log.warning("webhook job: the write path is full; retrying in %g s", wait)
            except Exception:
                log.exception("webhook job: could not process deliveries; retrying")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def step(self) -> tuple[bool, datetime | None]:
        """Send what is due. Returns (anything was leased, when the next delivery falls due)."""
        now = datetime.now(UTC)
        due = await anyio.to_thread.run_sync(self._next_due, now)
        if due is None or due > now:
            return False, due

        def claim(conn: Connection) -> tuple[list[store.Claimed], list[Any]]:
            at = datetime.now(UTC)
            return store.claim_due(conn, at, at + timedelta(seconds=self._lease_s), BATCH)

        claimed, dropped = await self._run(claim)
        for d, reason in dropped:
            log.warning(
                "webhook delivery %s of project %s (webhook %s) failed: %s",
                d.id,
                d.project_id,
                d.webhook_id,
                reason,
            )
        if claimed:
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        # Something was done: look again at once (more may be due, or a retry soon).
        return bool(claimed or dropped), None

    def _next_due(self, now: datetime) -> datetime | None:
        with self._engine.connect() as conn:
            return store.next_due(conn, now)

    # -- one attempt --------------------------------------------------------------------------

    async def _deliver(self, c: store.Claimed) -> None:
        d = c.delivery
        body = d.payload.encode()
        headers = {
            **c.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(c.secret, body, int(time.time())),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            status_code, error = await self._post(c.url, body, headers)
        except TimeoutError:
            error = f"timed out after {self._timeout_s:g} s"
        except httpx.TimeoutException as exc:
            error = f"timed out after {self._timeout_s:g} s ({type(exc).__name__})"
        except Exception as exc:  # network errors, bad URLs: all count as a failed attempt
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.sent += 1
        attempts = d.attempts + 1
        now = datetime.now(UTC)
        if error is None:
            outcome: dict[str, Any] = {"status": "delivered"}
        elif attempts >= self._max_attempts:
            outcome = {"status": "failed"}
        else:
            wait = backoff_s(attempts, self._base_s, self._cap_s)
            outcome = {"status": "pending", "next_attempt_at": now + timedelta(seconds=wait)}
        if error is not None:
            log.warning(
                "webhook delivery %s of project %s (webhook %s) attempt %d/%d failed: %s%s",
                d.id,
                d.project_id,
                d.webhook_id,
                attempts,
                self._max_attempts,
                error,
                "; giving up" if outcome["status"] == "failed" else "",
            )

        def record(conn: Connection) -> bool:
            return store.finish(
                conn,
                d,
                c.lease,
                attempts=attempts,
                now=now,
                status_code=status_code,
                error=error,
                **outcome,
            )

        try:
            kept = await self._run(record)
        except Exception:
            log.exception(
                "webhook delivery %s of project %s: could not record the attempt's outcome "
                "(it is retried once its lease expires)",
                d.id,
                d.project_id,
            )
            return
        if not kept:
            log.warning(
                "webhook delivery %s of project %s: lease expired before the outcome was "
                "recorded; another process may send it again",
                d.id,
                d.project_id,
            )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        """POST once; (status code, None) on 2xx, else (status code, what went wrong)."""
        assert self._client is not None
        with anyio.fail_after(self._timeout_s):
            async with self._client.stream("POST", url, content=body, headers=headers) as reply:
                if 200 <= reply.status_code < 300:
                    return reply.status_code, None
                text = b""
                async for chunk in reply.aiter_bytes():
                    text += chunk
                    if len(text) >= _ERROR_CHARS:
                        break
        snippet = text[:_ERROR_CHARS].decode(errors="replace").strip()
        return reply.status_code, f"HTTP {reply.status_code}" + (f": {snippet}" if snippet else "")

    def waking(self, run: Run) -> Run:
        """``run`` that wakes the job after each committed write (for the prompt service, whose
        writes queue deliveries)."""

        async def run_then_wake(fn: Callable[[Connection], Any]) -> Any:
            result = await run(fn)
            self.wake()
            return result

        return run_then_wake
