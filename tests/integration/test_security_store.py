"""The key store on real SQLite and PostgreSQL: versioned migrations that keep keys, replicas
migrating at once, activation and usage upserts, and the CLI on the same database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.auth.store import MIGRATIONS, KeyRecord, KeyStore, api_keys, schema_version
from gateway.registry import ModelEntry, upsert_entry
from tests.integration.keys_support import ROOT


async def test_migrations_upgrade_an_old_database_without_losing_keys(database_url: str) -> None:
    store = KeyStore(database_url)
    async with store.engine.begin() as conn:  # a database left at schema version 1
        await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
        await MIGRATIONS[0](conn)
        await conn.execute(schema_version.insert().values(version=1, applied_at=0.0))
        await conn.execute(api_keys.insert().values(id="k1", digest="d" * 64, prefix="p", name="old",
                                                    owner="", admin=False, revoked=False,
                                                    created_at=1.0))
    assert await store.migrate() == len(MIGRATIONS)
    assert await store.migrate() == len(MIGRATIONS)  # idempotent
    assert (await store.get("k1")).name == "old"  # type: ignore[union-attr]
    await store.add_usage([("k1", "2026-01-01", 1, 2, 3)])
    assert (await store.usage("k1"))[0]["completion_tokens"] == 3
    async with store.engine.connect() as conn:
        versions = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
    assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))
    await store.close()


async def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    stores = [KeyStore(database_url) for _ in range(4)]
    try:
        assert await asyncio.gather(*(s.migrate() for s in stores)) == [len(MIGRATIONS)] * 4
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
        assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for s in stores:
            await s.close()


async def test_activation_usage_and_last_used(database_url: str) -> None:
    store = KeyStore(database_url)
    await store.migrate()
    await store.create_key(KeyRecord(id="k", digest="e" * 64, prefix="sk-chungus-abcd...",
                                     allowed_models=("a", "b"), rpm=3))
    assert (await store.by_digest("e" * 64)).allowed_models == ("a", "b")  # type: ignore[union-attr]
    assert await store.by_digest("f" * 64) is None
    await store.set_model_active("m", False)
    await store.set_model_active("m", True)
    await store.set_model_active("n", False)
    assert await store.model_states() == {"m": True, "n": False}
    await store.add_usage([("k", "2026-01-01", 1, 10, 20), ("k", "2026-01-02", 1, 1, 1)])
    await store.add_usage([("k", "2026-01-01", 2, 5, 5)])
    rows = [(r["day"], r["requests"], r["prompt_tokens"], r["completion_tokens"])
            for r in await store.usage("k")]
    assert rows == [("2026-01-01", 3, 15, 25), ("2026-01-02", 1, 1, 1)]
    await store.touch({"k": 1234.5})
    assert (await store.get("k")).last_used_at == 1234.5  # type: ignore[union-attr]
    await store.close()


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                            text=True, env={**os.environ, **env}, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_cli_keys_and_models(database_url: str, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    upsert_entry(registry, ModelEntry(id="chat-a", triton_model="chat_a"))
    env = {"CHUNGUS_DATABASE_URL": database_url, "CHUNGUS_REGISTRY_PATH": str(registry)}
    out = _cli(env, "keys", "create", "--name", "cli", "--rpm", "7", "--models", "chat-a")
    created = json.loads(out[: out.rindex("}") + 1])
    assert created["rpm"] == 7 and created["allowed_models"] == ["chat-a"]
    listed = _cli(env, "keys", "list")
    assert created["id"] in listed and created["prefix"] in listed and created["key"] not in listed
    assert "revoked" in _cli(env, "keys", "revoke", created["id"])
    assert "revoked" in _cli(env, "keys", "list")
    assert "active=True" in _cli(env, "models", "list")
    _cli(env, "models", "deactivate", "chat-a")
    assert "active=False" in _cli(env, "models", "list")

    async def check() -> None:
        store = KeyStore(database_url)
        record = await store.get(created["id"])
        assert record is not None and record.revoked and record.rpm == 7
        assert await store.model_states() == {"chat-a": False}
        await store.close()

    asyncio.run(check())
