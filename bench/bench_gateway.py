"""Gateway overhead: the same load straight to Triton (tritonclient) and through the gateway,
streaming and not, at each concurrency, interleaved (direct, gateway, direct, gateway...).

Uses the instant ``echo`` test model, so what is measured is the serving path, not a model. 16
"tokens" per answer; streaming counts one SSE chunk per token, non-streaming one response.
Run: ``.venv/bin/python -m bench.bench_gateway [--requests 400] [--concurrency 1 16 64 256]
[--rounds 2] [--modes stream plain]``; ``--quick`` for a few seconds' smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput

from bench import report
from gateway.triton.server import TritonServer, free_port
from tests.models.build import build_test_models
from tests.support import GatewayProcess

WORDS = " ".join(f"w{i}" for i in range(16))  # 16 "tokens" per answer
One = Callable[[], Awaitable[tuple[float, int]]]


def _inputs(stream: bool) -> list[InferInput]:
    out = []
    for name, value, dtype, np_type in (("text_input", WORDS.encode(), "BYTES", np.object_),
                                        ("max_tokens", 16, "INT32", np.int32),
                                        ("stream", stream, "BOOL", np.bool_)):
        t = InferInput(name, [1, 1], dtype)
        t.set_data_from_numpy(np.array([[value]], dtype=np_type))
        out.append(t)
    return out


async def _direct_one(client: grpcclient.InferenceServerClient, stream: bool) -> tuple[float, int]:
    async def reqs():  # type: ignore[no-untyped-def]
        yield {"model_name": "echo", "inputs": _inputs(stream), "enable_empty_final_response": True}

    start, tokens = time.perf_counter(), 0
    async for result, error in client.stream_infer(reqs()):
        assert error is None, error
        if result.as_numpy("text_output") is not None and result.as_numpy("finish_reason") is None:
            tokens += 1
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    return time.perf_counter() - start, tokens if stream else 16


async def _gateway_one(client: aiohttp.ClientSession, url: str, key: str, stream: bool) -> tuple[float, int]:
    body = {"model": "echo", "messages": [{"role": "user", "content": WORDS}], "stream": stream,
            "max_tokens": 16}
    start, tokens = time.perf_counter(), 0
    async with client.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200, resp.status
        if not stream:
            await resp.read()
            return time.perf_counter() - start, 16
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content":"' in line:
                tokens += 1
    return time.perf_counter() - start, tokens


async def closed_loop(one: One, concurrency: int, total: int) -> dict[str, float]:
    """``concurrency`` workers sending ``total`` requests back to back, after a short warm-up."""
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

    await asyncio.gather(*(one() for _ in range(min(concurrency, 20))))  # warm-up
    load = report.load_avg()[0]
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {"rps": len(latencies) / wall, "tok_s": tokens / wall,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": report.percentile(latencies, 0.99) * 1000, "load1": load}


async def run(triton_url: str, gw: GatewayProcess, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (round, mode, concurrency): direct and gateway back to back, order alternating."""
    raw = []
    direct = grpcclient.InferenceServerClient(triton_url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024)) as http:
        url = gw.base_url + "/v1/chat/completions"
        for rnd in range(args.rounds):
            for mode in args.modes:
                stream = mode == "stream"
                paths: dict[str, One] = {
                    "direct": lambda s=stream: _direct_one(direct, s),  # type: ignore[misc]
                    "gateway": lambda s=stream: _gateway_one(http, url, gw.admin_key, s),  # type: ignore[misc]
                }
                for c in args.concurrency:
                    for path in (["direct", "gateway"] if rnd % 2 == 0 else ["gateway", "direct"]):
                        row = await closed_loop(paths[path], c, args.requests)
                        raw.append({"round": rnd, "mode": mode, "concurrency": c, "path": path, **row})
                        print(raw[-1], flush=True)
    await direct.close()
    return raw


def summarize(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over rounds per (mode, concurrency): both paths, ratio and added p50."""
    rows = []
    for mode, c in sorted({(r["mode"], r["concurrency"]) for r in raw}, key=lambda k: (k[0] != "stream", k[1])):
        med = {path: {k: statistics.median(r[k] for r in raw if (r["mode"], r["concurrency"], r["path"])
                                           == (mode, c, path)) for k in ("rps", "tok_s", "p50_ms", "p99_ms", "load1")}
               for path in ("direct", "gateway")}
        rows.append({"mode": mode, "concurrency": c, **med,
                     "ratio_rps": med["gateway"]["rps"] / med["direct"]["rps"],
                     "added_p50_ms": med["gateway"]["p50_ms"] - med["direct"]["p50_ms"]})
    return rows


def publish(rows: list[dict[str, Any]], raw: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(report.table(
        ["mode", "concurrency", "direct req/s", "gateway req/s", "ratio", "direct p50 ms", "gateway p50 ms",
         "added p50 ms", "load1"],
        [[r["mode"], r["concurrency"], r["direct"]["rps"], r["gateway"]["rps"], r["ratio_rps"],
          r["direct"]["p50_ms"], r["gateway"]["p50_ms"], r["added_p50_ms"], r["gateway"]["load1"]] for r in rows]))
    name = args.name
    print(report.write_json(name, {"command": vars(args), "rows": rows, "raw": raw}, args.json_dir))
    series_rps: report.Series = {}
    series_lat: report.Series = {}
    for r in rows:
        for path, label in (("gateway", "CHUNGUS"), ("direct", "tritonclient direct")):
            key = f"{label}, {r['mode']}"
            series_rps.setdefault(key, []).append((r["concurrency"], r[path]["rps"]))
            series_lat.setdefault(key, []).append((r["concurrency"], r[path]["p50_ms"]))
    print(report.plot(name, "Gateway vs direct tritonclient (instant echo model, 16 tokens)", series_rps,
                      series_lat, throughput_label="requests/s", latency_label="p50 latency (ms)",
                      directory=args.plot_dir))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--modes", nargs="+", default=["stream", "plain"], choices=["stream", "plain"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="seconds: 30 requests, concurrency 1 and 4, 1 round")
    report.output_args(parser, "gateway_overhead")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.concurrency, args.rounds = 30, [1, 4], 1
    return args


@contextlib.contextmanager
def echo_stack() -> Iterator[tuple[TritonServer, GatewayProcess]]:
    """Triton with the instant echo models and a gateway in front of it, both started."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_test_models(out)
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gw",
                            env={"CHUNGUS_ACCESS_LOG": "false", "CHUNGUS_LOG_LEVEL": "WARNING"})
        try:
            triton.start()
            gw.start()
            yield triton, gw
        finally:
            gw.stop()
            triton.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    with echo_stack() as (triton, gw):
        raw = asyncio.run(run(triton.grpc_url, gw, args))
    publish(summarize(raw), raw, args)


if __name__ == "__main__":
    main()
