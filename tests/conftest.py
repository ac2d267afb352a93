"""Markers from what a test needs, so a plain ``pytest`` runs without outside services.

- ``e2e``: the real stack (Triton on CPU with the reference models); every test under tests/e2e.
- ``postgres``: PostgreSQL on 127.0.0.1:5432.
- ``redis``: Redis on 127.0.0.1:6379, or a private redis-server.

``pytest`` alone deselects all three (see ``addopts`` in pyproject.toml); ``make test`` passes
``-m ""`` and runs everything.
"""

from __future__ import annotations

import pytest

_POSTGRES_FIXTURES = {"pg_url"}
_REDIS_FIXTURES = {"redis_prefix", "private_redis"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = set(map(str, callspec.params.values())) if callspec else set()
        if fixtures & _POSTGRES_FIXTURES or "postgresql" in params:
            item.add_marker(pytest.mark.postgres)
        if fixtures & _REDIS_FIXTURES or "redis" in params:
            item.add_marker(pytest.mark.redis)
