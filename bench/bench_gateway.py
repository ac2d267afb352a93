"""Gateway overhead: the same streaming load straight to Triton (tritonclient) and through the gateway.

Uses the instant ``echo`` test model, so what is measured is the serving path, not a model.
Run: ``.venv/bin/python -m bench.bench_gateway [--requests 400] [--concurrency 1 16 64]``
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
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput

from gateway.triton.server import TritonServer, free_port
from tests.models.build import build_test_models
from tests.support import GatewayProcess

WORDS = " ".join(f"w{i}" for i in range(16))  # 16 "tokens" per answer


def _inputs() -> list[InferInput]:
    out = []
    for name, value, dtype, np_type in (("text_input", WORDS.encode(), "BYTES", np.object_),
                                        ("max_tokens", 16, "INT32", np.int32),
                                        ("stream", True, "BOOL", np.bool_)):
        t = InferInput(name, [1, 1], dtype)
        t.set_data_from_numpy(np.array([[value]], dtype=np_type))
        out.append(t)
    return out


async def _direct_one(client: grpcclient.InferenceServerClient) -> tuple[float, int]:
    async def reqs():  # type: ignore[no-untyped-def]
        yield {"model_name": "echo", "inputs": _inputs(), "enable_empty_final_response": True}

    start, tokens = time.perf_counter(), 0
    async for result, error in client.stream_infer(reqs()):
        assert error is None, error
        if result.as_numpy("text_output") is not None and result.as_numpy("finish_reason") is None:
            tokens += 1
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    return time.perf_counter() - start, tokens


async def _gateway_one(client: aiohttp.ClientSession, url: str, key: str) -> tuple[float, int]:
    body = {"model": "echo", "messages": [{"role": "user", "content": WORDS}], "stream": True,
            "max_tokens": 16}
    start, tokens = time.perf_counter(), 0
    async with client.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200, resp.status
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content":"' in line:
                tokens += 1
    return time.perf_counter() - start, tokens


async def _load(one, concurrency: int, total: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    tokens = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, tokens
        while remaining > 0:
            remaining -= 1
            took, n = await one()
            latencies.append(took)
            tokens += n

    for _ in range(min(concurrency * 2, 20)):  # warm-up
        await one()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {"rps": len(latencies) / wall, "tok_s": tokens / wall,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000}


async def run(triton_url: str, gw: GatewayProcess, levels: list[int], total: int) -> list[dict]:
    rows = []
    direct = grpcclient.InferenceServerClient(triton_url)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:
        url = gw.base_url + "/v1/chat/completions"
        for c in levels:
            d = await _load(lambda: _direct_one(direct), c, total)
            g = await _load(lambda: _gateway_one(http, url, gw.admin_key), c, total)
            rows.append({"concurrency": c, "direct": d, "gateway": g,
                         "ratio_tok_s": g["tok_s"] / d["tok_s"],
                         "added_p50_ms": g["p50_ms"] - d["p50_ms"]})
            print(json.dumps(rows[-1]), flush=True)
    await direct.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_test_models(out)
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        triton.start()
        gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gw",
                            env={"CHUNGUS_ACCESS_LOG": "false", "CHUNGUS_LOG_LEVEL": "WARNING"})
        try:
            gw.start()
            rows = asyncio.run(run(triton.grpc_url, gw, args.concurrency, args.requests))
        finally:
            gw.stop()
            triton.stop()
    print("\n| concurrency | direct tok/s | gateway tok/s | ratio | direct p50 ms | gateway p50 ms |"
          " added p50 ms |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['direct']['tok_s']:.0f} | {r['gateway']['tok_s']:.0f} | "
              f"{r['ratio_tok_s']:.2f} | {r['direct']['p50_ms']:.2f} | {r['gateway']['p50_ms']:.2f}"
              f" | {r['added_p50_ms']:.2f} |")


if __name__ == "__main__":
    main()
