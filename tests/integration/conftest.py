"""Real databases and Redis for the security tests: SQLite files, a fresh PostgreSQL database per
test on 127.0.0.1:5432, a unique key prefix in Redis on 127.0.0.1:6379 (deleted afterwards), and
a private redis-server that tests may stop and start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.registry import ModelEntry, Registry
from tests.integration.keys_support import PrivateRedis

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture()
def pg_url() -> Iterator[str]:
    name = f"chungus_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg(f"CREATE DATABASE {name}"))
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _delete_prefix(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


@pytest.fixture()
def redis_prefix() -> Iterator[str]:
    """A key prefix no other run uses; its keys are deleted after the test."""
    prefix = f"chungus-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    _delete_prefix(prefix)


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of our own on a free port, so a test can take it down."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def chat_registry(tmp_path: Path) -> Registry:
    (tmp_path / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    return Registry(models=(
        ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja"),
        ModelEntry(id="chat-b", triton_model="chat_b", chat_template="t.jinja"),
    ), base_dir=str(tmp_path))
