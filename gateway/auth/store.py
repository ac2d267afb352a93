"""The key store: SQLAlchemy async on SQLite (default) or PostgreSQL, with versioned migrations."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

metadata = sa.MetaData()
_LOCK_ID = 0x43484E47  # "CHNG": the advisory lock that serialises migrations

schema_version = sa.Table(
    "chungus_schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)
api_keys = sa.Table(
    "chungus_api_keys", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("owner", sa.String(200), nullable=False, default=""),
    sa.Column("admin", sa.Boolean, nullable=False, default=False),
    sa.Column("allowed_models", sa.Text, nullable=True),  # JSON list; NULL = every model
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
)
model_state = sa.Table(
    "chungus_model_state", metadata,
    sa.Column("model_id", sa.String(200), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
key_usage = sa.Table(
    "chungus_key_usage", metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False, default=0),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
)
# Usage over time: per key, model and bucket (MINUTE or HOUR wide, starting at ``start``, epoch s).
usage_buckets = sa.Table(
    "chungus_usage_buckets", metadata,
    sa.Column("width", sa.Integer, primary_key=True),
    sa.Column("start", sa.BigInteger, primary_key=True),
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False, default=0),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("errors", sa.BigInteger, nullable=False, default=0),
    sa.Column("rate_limited", sa.BigInteger, nullable=False, default=0),
)
# Web console sessions: only a digest of the session id is stored.
console_sessions = sa.Table(
    "chungus_console_sessions", metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("key_digest", sa.String(64), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
MINUTE = 60
HOUR = 3600
USAGE_COUNTS = ("requests", "prompt_tokens", "completion_tokens", "errors", "rate_limited")


async def _v1(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: metadata.create_all(c, tables=[api_keys, model_state]))


async def _v2(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: key_usage.create(c, checkfirst=True))
    # Raw DDL: an Index object would attach itself to the table and leak into version 1.
    await conn.execute(sa.text(
        "CREATE INDEX IF NOT EXISTS ix_chungus_api_keys_owner ON chungus_api_keys (owner)"))


async def _v3(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: metadata.create_all(c, tables=[usage_buckets, console_sessions]))
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_chungus_usage_buckets_start "
                               "ON chungus_usage_buckets (width, start)"))


# Append only: each step upgrades the schema by one version, keeping existing rows.
MIGRATIONS: tuple[Callable[[AsyncConnection], Awaitable[None]], ...] = (_v1, _v2, _v3)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    id: str
    digest: str
    prefix: str
    name: str = ""
    owner: str = ""
    admin: bool = False
    allowed_models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    expires_at: float | None = None
    revoked: bool = False
    created_at: float = field(default_factory=time.time)
    last_used_at: float | None = None

    def public(self) -> dict[str, Any]:
        """What the admin API shows (never the digest)."""
        return {"id": self.id, "prefix": self.prefix, "name": self.name, "owner": self.owner,
                "admin": self.admin, "allowed_models": list(self.allowed_models)
                if self.allowed_models is not None else None, "rpm": self.rpm, "tpm": self.tpm,
                "max_concurrent": self.max_concurrent, "expires_at": self.expires_at,
                "revoked": self.revoked, "created_at": self.created_at,
                "last_used_at": self.last_used_at}


def _record(row: Any) -> KeyRecord:
    data = dict(row._mapping)
    models = data.pop("allowed_models")
    return KeyRecord(**data, allowed_models=tuple(json.loads(models)) if models else None)


class KeyStore:
    """Keys, model activation and usage, in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)

    async def migrate(self) -> int:
        """Bring the schema to the newest version; returns it. Safe to run on every start.

        Replicas starting together take turns: a PostgreSQL advisory lock, or SQLite's write
        lock taken up front, so only the first one runs each step.
        """
        async with self.engine.connect() as conn:
            await _migration_lock(conn)
            await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
            current = (await conn.execute(sa.select(sa.func.max(schema_version.c.version)))).scalar()
            for version, step in enumerate(MIGRATIONS, start=1):
                if current is not None and version <= current:
                    continue
                await step(conn)
                await conn.execute(schema_version.insert().values(version=version,
                                                                  applied_at=time.time()))
            await conn.commit()
        return len(MIGRATIONS)

    async def close(self) -> None:
        await self.engine.dispose()

    async def create_key(self, record: KeyRecord) -> None:
        values = record.public() | {"digest": record.digest}
        values["allowed_models"] = (json.dumps(list(record.allowed_models))
                                    if record.allowed_models is not None else None)
        async with self.engine.begin() as conn:
            await conn.execute(api_keys.insert().values(**values))

    async def by_digest(self, key_digest: str) -> KeyRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.digest == key_digest))).first()
        return _record(row) if row else None

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        return _record(row) if row else None

    async def list_keys(self) -> list[KeyRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))).all()
        return [_record(r) for r in rows]

    async def update_key(self, key_id: str, **values: Any) -> KeyRecord | None:
        if "allowed_models" in values and values["allowed_models"] is not None:
            values["allowed_models"] = json.dumps(list(values["allowed_models"]))
        async with self.engine.begin() as conn:
            await conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(**values))
        return await self.get(key_id)

    async def touch(self, last_used: dict[str, float]) -> None:
        async with self.engine.begin() as conn:
            for key_id, when in last_used.items():
                await conn.execute(api_keys.update().where(api_keys.c.id == key_id)
                                   .values(last_used_at=when))

    async def add_usage(self, rows: Sequence[tuple[str, str, int, int, int]]) -> None:
        """Add (key_id, day, requests, prompt_tokens, completion_tokens) to the daily totals."""
        if not rows:
            return
        async with self.engine.begin() as conn:
            insert = _dialect_insert(conn)
            for key_id, day, req, prompt, completion in rows:
                stmt = insert(key_usage).values(key_id=key_id, day=day, requests=req,
                                                prompt_tokens=prompt, completion_tokens=completion)
                excluded = stmt.excluded
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[key_usage.c.key_id, key_usage.c.day],
                    set_={"requests": key_usage.c.requests + excluded.requests,
                          "prompt_tokens": key_usage.c.prompt_tokens + excluded.prompt_tokens,
                          "completion_tokens": key_usage.c.completion_tokens
                          + excluded.completion_tokens}))

    async def usage(self, key_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(key_usage).order_by(key_usage.c.day, key_usage.c.key_id)
        if key_id:
            query = query.where(key_usage.c.key_id == key_id)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def add_buckets(self, rows: Sequence[tuple[int, int, str, str, tuple[int, ...]]]) -> None:
        """Add (width, start, key_id, model, counts in ``USAGE_COUNTS`` order) to the buckets."""
        if not rows:
            return
        async with self.engine.begin() as conn:
            insert = _dialect_insert(conn)
            for width, start, key_id, model, counts in rows:
                stmt = insert(usage_buckets).values(width=width, start=start, key_id=key_id,
                                                    model=model, **dict(zip(USAGE_COUNTS, counts,
                                                                            strict=True)))
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[usage_buckets.c.width, usage_buckets.c.start,
                                    usage_buckets.c.key_id, usage_buckets.c.model],
                    set_={n: usage_buckets.c[n] + stmt.excluded[n] for n in USAGE_COUNTS}))

    async def buckets(self, width: int, since: int, *, key_id: str | None = None,
                      model: str | None = None) -> list[dict[str, Any]]:
        """Buckets of ``width`` starting at or after ``since``, summed over keys and models
        (or one of each), oldest first: dicts with ``start`` and the ``USAGE_COUNTS``."""
        sums = [sa.func.sum(usage_buckets.c[n]).label(n) for n in USAGE_COUNTS]
        query = (sa.select(usage_buckets.c.start, *sums)
                 .where(usage_buckets.c.width == width, usage_buckets.c.start >= since)
                 .group_by(usage_buckets.c.start).order_by(usage_buckets.c.start))
        if key_id is not None:
            query = query.where(usage_buckets.c.key_id == key_id)
        if model is not None:
            query = query.where(usage_buckets.c.model == model)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [{"start": int(r.start), **{n: int(getattr(r, n) or 0) for n in USAGE_COUNTS}}
                for r in rows]

    async def bucket_rows(self, width: int, since: int,
                          key_id: str | None = None) -> list[dict[str, Any]]:
        """Every bucket row of ``width`` since ``since`` (per key and model), for CSV export."""
        query = (sa.select(usage_buckets).where(usage_buckets.c.width == width,
                                                usage_buckets.c.start >= since)
                 .order_by(usage_buckets.c.start, usage_buckets.c.key_id, usage_buckets.c.model))
        if key_id is not None:
            query = query.where(usage_buckets.c.key_id == key_id)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def purge_buckets(self, width: int, before: int) -> int:
        """Delete buckets of ``width`` that start before ``before``; returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(usage_buckets.delete().where(
                usage_buckets.c.width == width, usage_buckets.c.start < before))
        return int(result.rowcount or 0)

    async def create_session(self, values: dict[str, Any]) -> None:
        """Store a console session (``console_sessions`` columns); expired ones go first."""
        async with self.engine.begin() as conn:
            await conn.execute(console_sessions.delete().where(
                console_sessions.c.expires_at <= time.time()))
            await conn.execute(console_sessions.insert().values(**values))

    async def session(self, session_digest: str) -> dict[str, Any] | None:
        """The unexpired session with this id digest, else None."""
        query = sa.select(console_sessions).where(console_sessions.c.digest == session_digest,
                                                  console_sessions.c.expires_at > time.time())
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return dict(row._mapping) if row else None

    async def delete_session(self, session_digest: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(console_sessions.delete().where(
                console_sessions.c.digest == session_digest))

    async def model_states(self) -> dict[str, bool]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(model_state))).all()
        return {r.model_id: bool(r.active) for r in rows}

    async def set_model_active(self, model_id: str, active: bool) -> None:
        async with self.engine.begin() as conn:
            insert = _dialect_insert(conn)
            stmt = insert(model_state).values(model_id=model_id, active=active,
                                              updated_at=time.time())
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[model_state.c.model_id],
                set_={"active": active, "updated_at": time.time()}))


async def _migration_lock(conn: AsyncConnection) -> None:
    """Serialise migrations across processes for the rest of this transaction."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    elif conn.dialect.name == "sqlite":
        # pysqlite leaves DDL outside transactions; take the write lock now (waits, busy timeout).
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def _dialect_insert(conn: AsyncConnection) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def new_key_id() -> str:
    return uuid.uuid4().hex


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite database file, so a fresh checkout just works."""
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
