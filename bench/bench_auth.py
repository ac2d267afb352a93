"""Added latency of auth + limits per request: the same gateway with auth off, with keys and
in-process limits, and with keys and Redis limits; same run, same instant echo model.

Run: ``.venv/bin/python -m bench.bench_auth [--requests 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from gateway.triton.server import TritonServer, free_port
from tests.models.build import build_test_models
from tests.support import GatewayProcess

BODY = {"model": "echo", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def _latencies(gw: GatewayProcess, key: str, n: int) -> list[float]:
    url = gw.base_url + "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}
    out = []
    async with aiohttp.ClientSession() as http:
        for i in range(n + 50):
            start = time.perf_counter()
            async with http.post(url, json=BODY, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            if i >= 50:
                out.append(time.perf_counter() - start)
    return out


async def _key(gw: GatewayProcess) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            gw.base_url + "/admin/keys", json={"rpm": 10**6, "tpm": 10**9, "max_concurrent": 100},
            headers={"Authorization": f"Bearer {gw.admin_key}"}) as resp:
        return (await resp.json())["key"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_test_models(out)
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        triton.start()
        quiet = {"CHUNGUS_ACCESS_LOG": "false"}
        setups = {
            "auth off": GatewayProcess(triton.grpc_url, out / "registry.toml", out / "a",
                                       env={**quiet, "CHUNGUS_AUTH_ENABLED": "false"}),
            "keys + in-process limits": GatewayProcess(triton.grpc_url, out / "registry.toml",
                                                       out / "b", env=quiet),
            "keys + Redis limits": GatewayProcess(triton.grpc_url, out / "registry.toml", out / "c",
                                                  env={**quiet, "CHUNGUS_REDIS_URL":
                                                       "redis://127.0.0.1:6379/0"}),
        }
        try:
            keys = {}
            for name, gw in setups.items():
                gw.start()
                keys[name] = asyncio.run(_key(gw)) if name != "auth off" else "none"
            p50: dict[str, list[float]] = {name: [] for name in setups}
            for _ in range(args.rounds):  # interleave the setups, medians over rounds
                for name, gw in setups.items():
                    lat = asyncio.run(_latencies(gw, keys[name], args.requests))
                    p50[name].append(statistics.median(lat) * 1000)
        finally:
            for gw in setups.values():
                gw.stop()
            triton.stop()
    base = statistics.median(p50["auth off"])
    for name, values in p50.items():
        med = statistics.median(values)
        print(json.dumps({"setup": name, "p50_ms": round(med, 3), "added_ms": round(med - base, 3),
                          "rounds": [round(v, 3) for v in values]}))


if __name__ == "__main__":
    main()
