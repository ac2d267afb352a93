"""Gateway CPU time per request, robust to other load on the machine: CPU seconds the gateway
process spent, divided by requests served (the instant ``echo`` model, 16 tokens, 16 clients).

Compare source trees (e.g. a ``git worktree`` of an older commit against this one), alternating
rounds: ``.venv/bin/python -m bench.bench_gateway_cpu --trees /tmp/old . --rounds 2``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import httpx

from bench.report import cpu_s
from gateway.triton.server import TritonServer, free_port
from tests.models.build import build_test_models

ADMIN = "sk-chungus-bench-admin-key-0123456789"
PROMPT = " ".join(f"w{i}" for i in range(16))


async def _load(url: str, key: str, stream: bool, requests: int, concurrency: int) -> None:
    body = {"model": "echo", "stream": stream, "max_tokens": 16,
            "messages": [{"role": "user", "content": PROMPT}]}
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            async with gate, session.post(url, json=body,
                                          headers={"Authorization": f"Bearer {key}"}) as r:
                await r.read()
                assert r.status == 200, r.status

        await asyncio.gather(*(one() for _ in range(requests)))


def _gateway(tree: Path, out: Path, triton_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "CHUNGUS_PORT": str(port), "CHUNGUS_ADMIN_KEY": ADMIN,
           "CHUNGUS_REGISTRY_PATH": str(out / "registry.toml"), "CHUNGUS_ACCESS_LOG": "false",
           "CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{out}/keys-{port}.db"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--external-triton",
                             triton_url], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/health/live", timeout=1)
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return proc, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    build_test_models(out)
    triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                          grpc_port=free_port(), metrics_port=free_port())
    triton.start()
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for tree in args.trees:
                proc, base = _gateway(tree.resolve(), out, triton.grpc_url)
                try:
                    key = httpx.post(base + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"},
                                     json={"name": "bench", "rpm": 10**6, "tpm": 10**9,
                                           "max_concurrent": 1000}).json()["key"]
                    url = base + "/v1/chat/completions"
                    asyncio.run(_load(url, key, True, 100, args.concurrency))  # warm up
                    for stream in (True, False):
                        before = cpu_s(proc.pid)
                        asyncio.run(_load(url, key, stream, args.requests, args.concurrency))
                        ms = (cpu_s(proc.pid) - before) / args.requests * 1000
                        results.setdefault((str(tree), "stream" if stream else "plain"), []).append(ms)
                finally:
                    proc.terminate()
                    proc.wait()
    finally:
        triton.stop()
    print("| tree | mode | gateway CPU ms per request (each round) |\n|---|---|---|")
    for (tree, mode), values in results.items():
        print(f"| {tree} | {mode} | {' / '.join(f'{v:.2f}' for v in values)} |")


if __name__ == "__main__":
    main()
