"""Every public route is served under both /v1 and /api/v1."""

from __future__ import annotations

PREFIXES = ("/v1", "/api/v1")


def both(path: str) -> list[str]:
    """``path`` under each API prefix."""
    return [prefix + path for prefix in PREFIXES]
