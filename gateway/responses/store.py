"""Stored responses (``store: true``): one table in the keys' database (SQLite or PostgreSQL),
each row scoped to the key that created it and kept for a retention period."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.errors import ServiceUnavailableError

metadata = sa.MetaData()
responses = sa.Table(
    "chungus_responses", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("body", sa.Text, nullable=False),  # the response object, JSON
    sa.Column("history", sa.Text, nullable=False),  # JSON: input then output items (next turn's history)
)
PRUNE_EVERY_S = 60.0  # expired rows are deleted at most this often (on a save)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    body: dict[str, Any]
    items: list[dict[str, Any]]


class ResponseStore:
    """Responses by id, for the key that made them, until they expire."""

    def __init__(self, url: str, retention_s: float) -> None:
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self.retention_s = retention_s
        self._pruned_at = 0.0

    async def start(self) -> None:
        """Create the table if it is missing (other tables of the database are left alone).

        Replicas starting together may race to create it: the loser looks again and finds it.
        """
        try:
            await self._create()
        except sa.exc.DBAPIError:
            await self._create()

    async def _create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: metadata.create_all(c, checkfirst=True))

    async def close(self) -> None:
        await self.engine.dispose()

    async def save(self, response_id: str, key_id: str, body: dict[str, Any],
                   items: list[dict[str, Any]]) -> None:
        """Store a finished response; expired rows go at most every ``PRUNE_EVERY_S``."""
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(responses.insert().values(
                id=response_id, key_id=key_id, created_at=now, expires_at=now + self.retention_s,
                body=json.dumps(body), history=json.dumps(items)))
            if now - self._pruned_at >= PRUNE_EVERY_S:
                self._pruned_at = now
                await conn.execute(responses.delete().where(responses.c.expires_at < now))

    async def get(self, response_id: str, key_id: str) -> StoredResponse | None:
        """The response, if ``key_id`` made it and it has not expired.

        Raises:
            ServiceUnavailableError: the database cannot be reached.
        """
        query = sa.select(responses.c.body, responses.c.history).where(
            responses.c.id == response_id, responses.c.key_id == key_id,
            responses.c.expires_at >= time.time())
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise _unavailable() from exc
        if row is None:
            return None
        return StoredResponse(json.loads(row.body), json.loads(row.history))

    async def delete(self, response_id: str, key_id: str) -> bool:
        """Delete the response if ``key_id`` made it; False when there was none.

        Raises:
            ServiceUnavailableError: the database cannot be reached.
        """
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(responses.delete().where(
                    responses.c.id == response_id, responses.c.key_id == key_id))
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise _unavailable() from exc
        return bool(result.rowcount)


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("Stored responses are unavailable right now; try again later",
                                   code="store_unavailable")
