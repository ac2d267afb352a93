"""The stored-responses table on real SQLite and PostgreSQL: per-key scope, expiry, pruning, and
replicas that create the table at the same time."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from gateway.auth.store import KeyStore
from gateway.errors import ServiceUnavailableError
from gateway.responses import store as store_module
from gateway.responses.store import ResponseStore, responses


async def _rows(store: ResponseStore) -> list[str]:
    async with store.engine.connect() as conn:
        return sorted(r.id for r in (await conn.execute(sa.select(responses.c.id))).all())


async def test_scope_delete_and_the_keys_tables_untouched(database_url: str) -> None:
    keys = KeyStore(database_url)
    await keys.migrate()
    replicas = [ResponseStore(database_url, 60.0) for _ in range(3)]
    await asyncio.gather(*(r.start() for r in replicas))
    store = replicas[0]
    try:
        await store.save("resp_1", "key_a", {"id": "resp_1"}, [{"type": "message", "role": "user",
                                                               "content": "hi"}])
        got = await replicas[1].get("resp_1", "key_a")
        assert got is not None
        assert got.body == {"id": "resp_1"}
        assert got.items == [{"type": "message", "role": "user", "content": "hi"}]
        assert await store.get("resp_1", "key_b") is None
        assert await store.delete("resp_1", "key_b") is False
        assert await store.delete("resp_1", "key_a") is True
        assert await store.get("resp_1", "key_a") is None
        assert await keys.list_keys() == []  # the key store's own schema still works
    finally:
        for r in replicas:
            await r.close()
        await keys.close()


async def test_expired_responses_are_hidden_then_pruned(database_url: str) -> None:
    store = ResponseStore(database_url, -1.0)  # expired as soon as saved
    await store.start()
    store._pruned_at = time.time()  # just pruned: the next save does not prune
    try:
        await store.save("resp_old", "k", {}, [])
        assert await store.get("resp_old", "k") is None
        assert await _rows(store) == ["resp_old"]  # pruned at most every PRUNE_EVERY_S
        store._pruned_at -= store_module.PRUNE_EVERY_S
        store.retention_s = 60.0
        await store.save("resp_new", "k", {}, [])
        assert await _rows(store) == ["resp_new"]
    finally:
        await store.close()


async def test_an_unreachable_database_is_a_503() -> None:
    store = ResponseStore("postgresql+asyncpg://postgres@127.0.0.1:1/none", 60.0)
    try:
        for call in (store.get("resp_1", "k"), store.delete("resp_1", "k")):
            with pytest.raises(ServiceUnavailableError) as exc:
                await call
            assert (exc.value.status, exc.value.code) == (503, "store_unavailable")
    finally:
        await store.close()
