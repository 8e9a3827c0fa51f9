"""API-key authentication: HTTP Basic ``public_key:secret_key`` → the key's project.

Verification is a salted scrypt check (tens of milliseconds), so verified credentials are
cached in memory under a keyed digest of the secret: a repeat request costs microseconds.
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
MAX_CACHE = 10_000


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


class Authenticator:
    """Resolves credentials to a Principal; thread-safe; caches verified results."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pepper = os.urandom(32)
        self._cache: dict[tuple[str, bytes], tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def _cache_key(self, public_key: str, secret: str | None) -> tuple[str, bytes]:
        digest = hashlib.blake2b((secret or "").encode(), key=self._pepper, digest_size=32)
        return public_key, digest.digest()

    def cached(self, header: str | None) -> Principal | None:
        """The principal if these credentials were verified recently; raises if known-bad."""
        public_key, secret = parse_authorization(header)
        hit = self._cache.get(self._cache_key(public_key, secret))
        if hit is None or hit[1] < time.monotonic():
            return None
        if hit[0] is None:
            raise Unauthorized(
                "Invalid credentials. Confirm that you've configured the correct host."
            )
        return hit[0]

    def authenticate(self, header: str | None) -> Principal:
        """Full check (may take tens of ms); call off the event loop."""
        public_key, secret = parse_authorization(header)
        key = self._cache_key(public_key, secret)
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
        ttl = POSITIVE_TTL_S if principal else NEGATIVE_TTL_S
        with self._lock:
            if len(self._cache) >= MAX_CACHE:
                self._cache.clear()
            self._cache[key] = (principal, time.monotonic() + ttl)
        if principal is None:
            raise Unauthorized(
                "Invalid credentials. Confirm that you've configured the correct host."
            )
        return principal

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
