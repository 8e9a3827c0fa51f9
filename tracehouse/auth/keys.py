"""API-key authentication: HTTP Basic ``public_key:secret_key`` → the key's project.

Verification is a salted scrypt check (about 60 ms of CPU and 16 MiB), so verified
credentials are cached in memory under a keyed digest of the secret: a repeat request costs
microseconds. Concurrent requests with credentials not in the cache wait for one check
instead of each running their own (an SDK opens several connections at once, and a server
under load saw its 16 clients all miss together at start and at every expiry), and a
positive entry close to expiry is checked again by one request while the others keep it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ..errors import Unauthorized
from ..store import projects as project_store
from .secrets import DUMMY_HASH, verify_secret

POSITIVE_TTL_S = 60.0
NEGATIVE_TTL_S = 5.0
REFRESH_AHEAD_S = 10.0  # a positive entry this close to expiry is checked again by one request
MAX_CACHE = 10_000
_FLIGHT_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a project, and how much of it the credentials open."""

    project_id: str
    org_id: str
    public_key: str
    scope: str  # "project" (Basic pk:sk) or "scores" (Bearer pk: scores and sdk-log only)


def parse_authorization(header: str | None) -> tuple[str, str | None]:
    """(public key, secret key or None for Bearer) from an Authorization header."""
    if not header:
        raise Unauthorized(
            "Missing authorization header; use HTTP Basic auth with public_key:secret_key"
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized(
                "Invalid authorization header: not base64 'public_key:secret_key'"
            ) from exc
        public_key, sep, secret_key = decoded.partition(":")
        if not sep or not public_key or not secret_key:
            raise Unauthorized("Invalid authorization header: expected 'public_key:secret_key'")
        return public_key, secret_key
    if scheme.lower() == "bearer" and value:
        return value, None
    raise Unauthorized("Unsupported authorization scheme; use HTTP Basic auth")


_INVALID = "Invalid credentials. Confirm that you've configured the correct host."


def _accepted(principal: Principal | None) -> Principal:
    """The answer to verified credentials: their principal, or 401 for bad ones."""
    if principal is None:
        raise Unauthorized(_INVALID)
    return principal


class Authenticator:
    """Resolves credentials to a Principal; thread-safe; caches verified results.

    ``positive_ttl_s`` / ``refresh_ahead_s``: how long good credentials stay cached, and how
    close to expiry one request checks them again.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        positive_ttl_s: float = POSITIVE_TTL_S,
        refresh_ahead_s: float = REFRESH_AHEAD_S,
    ) -> None:
        self._engine = engine
        self._positive_ttl_s = positive_ttl_s
        self._refresh_ahead_s = refresh_ahead_s
        self._pepper = os.urandom(32)
        self._cache: dict[tuple[str, bytes], tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, bytes], threading.Event] = {}  # checks running
        self._refreshing: set[tuple[str, bytes]] = set()  # entries being checked again
        self.checks = 0  # full checks run (each a scrypt verification)

    def _cache_key(self, public_key: str, secret: str | None) -> tuple[str, bytes]:
        digest = hashlib.blake2b((secret or "").encode(), key=self._pepper, digest_size=32)
        return public_key, digest.digest()

    def _fresh(self, key: tuple[str, bytes]) -> tuple[Principal | None, float] | None:
        """The cached answer for ``key`` and when it expires, unless it has expired."""
        hit = self._cache.get(key)
        return hit if hit is not None and hit[1] >= time.monotonic() else None

    def cached(self, header: str | None, *, refresh: bool = True) -> Principal | None:
        """The principal if these credentials were verified recently; raises if known-bad.

        None: call ``authenticate``. Close to the entry's expiry one caller gets None (and so
        checks again) while the others still get the cached principal; ``refresh=False``: a
        caller that would not check again, which always gets the cached principal.
        """
        public_key, secret = parse_authorization(header)
        key = self._cache_key(public_key, secret)
        hit = self._fresh(key)
        if hit is None:
            return None
        principal = _accepted(hit[0])
        if refresh and hit[1] - time.monotonic() < self._refresh_ahead_s:
            with self._lock:
                if key not in self._refreshing:
                    self._refreshing.add(key)
                    return None
        return principal

    def authenticate(self, header: str | None) -> Principal:
        """Full check (may take tens of ms); call off the event loop. Concurrent calls with
        the same credentials share one check."""
        public_key, secret = parse_authorization(header)
        key = self._cache_key(public_key, secret)
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = threading.Event()
        if not leader:
            flight.wait(_FLIGHT_WAIT_S)
            hit = self._fresh(key)
            if hit is not None:
                return _accepted(hit[0])
            return self._verify(key, public_key, secret)  # the check failed (e.g. database)
        try:
            return self._verify(key, public_key, secret)
        finally:
            with self._lock:
                del self._flights[key]
                self._refreshing.discard(key)
            flight.set()

    def _verify(self, key: tuple[str, bytes], public_key: str, secret: str | None) -> Principal:
        principal: Principal | None = None
        with self._engine.connect() as conn:
            row = project_store.find_api_key(conn, public_key)
        if secret is None:
            # Bearer public key: scores-only access, as Langfuse grants to browser clients.
            if row is not None:
                principal = Principal(row["project_id"], row["org_id"], public_key, "scores")
        elif row is None:
            verify_secret(secret, DUMMY_HASH)  # same cost as a hit: no key enumeration by timing
        elif verify_secret(secret, row["secret_hash"]):
            principal = Principal(row["project_id"], row["org_id"], public_key, "project")
        ttl = self._positive_ttl_s if principal else NEGATIVE_TTL_S
        with self._lock:
            self.checks += 1
            if len(self._cache) >= MAX_CACHE:
                self._cache.clear()
            self._cache[key] = (principal, time.monotonic() + ttl)
        return _accepted(principal)

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
