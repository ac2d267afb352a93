"""API keys: ``sk-chungus-<random>``; only a SHA-256 digest and a display prefix are ever stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "sk-chungus-"
_FORMAT = re.compile(r"sk-chungus-[A-Za-z0-9_-]{16,128}")


def generate_key() -> str:
    """A new random key (256 bits of entropy)."""
    return PREFIX + secrets.token_urlsafe(32)


def well_formed(key: str) -> bool:
    """True when ``key`` has our format (checked before any lookup)."""
    return _FORMAT.fullmatch(key) is not None


def digest(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """What lists show of a key: enough to recognise it, too little to use it."""
    return key[: len(PREFIX) + 4] + "..."


def same_digest(a: str, b: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(a.encode(), b.encode())


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
