"""Request limits per credential (in memory, per process)."""

from __future__ import annotations

import time


class PublicKeyLimiter:
    """Token bucket per public key, in memory per process.

    ``rate_per_minute`` tokens flow in per minute; a bucket holds at most ``burst`` (a sixth of
    the minute's rate, at least 1) so a page can send a few scores at once. 0 disables it.
    """

    def __init__(self, rate_per_minute: int) -> None:
        self.rate_per_s = rate_per_minute / 60.0
        self.burst = max(1.0, rate_per_minute / 6.0)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        """0 when a request may pass (one token taken), else the seconds until one may."""
        if self.rate_per_s <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > _MAX_LIMITED_KEYS:
            self._buckets.clear()  # crude bound; only verified public keys ever get here
        return (1.0 - tokens) / self.rate_per_s


_MAX_LIMITED_KEYS = 100_000
