"""``chungus keys ...`` and ``chungus models ...``: manage keys and activation in the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from gateway.auth.keys import digest, display_prefix, generate_key
from gateway.auth.store import KeyRecord, KeyStore, ensure_sqlite_dir, new_key_id
from gateway.settings import Settings


def _store() -> KeyStore:
    url = Settings.from_env(os.environ).database_url
    ensure_sqlite_dir(url)
    return KeyStore(url)


async def _with_store(action: Any) -> Any:
    store = _store()
    try:
        await store.migrate()
        return await action(store)
    finally:
        await store.close()


def _keys_create(args: argparse.Namespace) -> int:
    key = generate_key()
    record = KeyRecord(
        id=new_key_id(), digest=digest(key), prefix=display_prefix(key), name=args.name,
        owner=args.owner, admin=args.admin, rpm=args.rpm, tpm=args.tpm,
        max_concurrent=args.max_concurrent,
        allowed_models=tuple(args.models.split(",")) if args.models else None,
        expires_at=time.time() + args.expires_in_days * 86400 if args.expires_in_days else None)
    asyncio.run(_with_store(lambda s: s.create_key(record)))
    print(json.dumps({"key": key, **record.public()}, indent=2))
    print("Store the key now: it is not shown again.")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    keys = asyncio.run(_with_store(lambda s: s.list_keys()))
    for k in keys:
        state = "revoked" if k.revoked else "active"
        print(f"{k.id}  {k.prefix:<22} {state:<8} {k.name or '-':<20} owner={k.owner or '-'} "
              f"rpm={k.rpm} tpm={k.tpm} concurrent={k.max_concurrent} admin={k.admin}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    record = asyncio.run(_with_store(lambda s: s.update_key(args.key_id, revoked=True)))
    if record is None:
        print(f"no key with id {args.key_id}")
        return 1
    print(f"revoked {record.id} ({record.prefix}); replicas stop accepting it within their cache TTL")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from gateway.registry import load_registry

    registry = load_registry(Settings.from_env(os.environ).registry_path)
    states = asyncio.run(_with_store(lambda s: s.model_states()))
    for m in registry.models:
        print(f"{m.id:<32} {m.kind:<10} active={states.get(m.id, m.active)} triton={m.triton_model}")
    return 0


def _models_set(active: bool) -> Any:
    def run(args: argparse.Namespace) -> int:
        asyncio.run(_with_store(lambda s: s.set_model_active(args.model_id, active)))
        print(f"{args.model_id}: {'active' if active else 'inactive'}")
        return 0
    return run


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="API keys in the database (CHUNGUS_DATABASE_URL)")
    ks = keys.add_subparsers(dest="keys_command", required=True)
    create = ks.add_parser("create", help="create a key; prints it once")
    create.add_argument("--name", default="")
    create.add_argument("--owner", default="")
    create.add_argument("--admin", action="store_true")
    create.add_argument("--models", help="comma-separated model ids this key may use (default all)")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--max-concurrent", type=int)
    create.add_argument("--expires-in-days", type=float)
    create.set_defaults(run=_keys_create)
    ks.add_parser("list", help="list keys (never the secrets)").set_defaults(run=_keys_list)
    revoke = ks.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=_keys_revoke)
    models = sub.add_parser("models", help="model activation")
    ms = models.add_subparsers(dest="models_command", required=True)
    ms.add_parser("list", help="registry models and their activation").set_defaults(run=_models_list)
    for name, active in (("activate", True), ("deactivate", False)):
        p = ms.add_parser(name, help=f"{name} a model for every replica")
        p.add_argument("model_id")
        p.set_defaults(run=_models_set(active))
