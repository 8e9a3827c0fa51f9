"""Secret hashing: API secret keys and passwords are stored as salted scrypt hashes, never in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

_N, _R, _P = 2**14, 8, 1


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_N}${_R}${_P}${salt_b64}${digest_b64}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a stored hash."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
        return hmac.compare_digest(digest, base64.b64decode(digest_b64))
    except (ValueError, TypeError):
        return False


# A hash to verify against when a key does not exist, so a miss costs what a hit costs.
DUMMY_HASH = hash_secret(secrets.token_hex(16))


def new_key_pair() -> tuple[str, str]:
    """A fresh (public, secret) key pair in Langfuse's format."""
    return f"pk-lf-{secrets.token_hex(16)}", f"sk-lf-{secrets.token_hex(16)}"


def display_secret(secret: str) -> str:
    return f"{secret[:6]}...{secret[-4:]}" if len(secret) > 12 else "..." + secret[-2:]
