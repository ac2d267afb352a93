"""Embeddings: sentences/s through the gateway (32 concurrent single-sentence clients) vs
sentence-transformers called directly with batches of 32 in one process, same run.

The two paths alternate for ``--rounds`` rounds on one warm stack and one loaded model, so that
load from other processes on the machine hits both alike; the ratio reported is the median of
the per-round ratios. The CPU each process spends per sentence is reported too: on a shared
machine it is the steadier figure, and ``cpu_bound_ratio`` (direct CPU per sentence over the
gateway path's) is the throughput ratio the two paths reach when each has every core to itself.

Run: ``.venv/bin/python -m bench.bench_embeddings [--sentences 1024] [--rounds 5] [--clients 4 16 32 64]``
(``--quick``: a few seconds). Writes var/bench/embeddings.json and docs/bench/embeddings.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench import report
from bench.report import tree_cpu_s
from build_engines.embedding import DEFAULT_ID, build_embedding, default_source
from build_engines.progress import Progress
from gateway.triton.server import TritonServer, free_port
from tests.support import GatewayProcess

SENTENCES = [f"This is benchmark sentence number {i}, about topic {i % 13}." for i in range(4096)]


def load_direct(threads: int) -> Any:
    """sentence-transformers in this process (CUDA when torch sees a GPU, as the stack), warmed up."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(default_source()), device=device)
    model.encode(SENTENCES[:64], batch_size=32)
    return model


def direct(model: Any, n: int) -> float:
    """Sentences/s of ``model.encode`` in batches of 32."""
    start = time.perf_counter()
    model.encode(SENTENCES[:n], batch_size=32, normalize_embeddings=True)
    return n / (time.perf_counter() - start)


async def through_gateway(gw: GatewayProcess, n: int, clients: int) -> tuple[float, float]:
    """Sentences/s of ``clients`` concurrent clients, one sentence per request, ``n`` in all,
    and the median request latency (ms)."""
    url = gw.base_url + "/v1/embeddings"
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    todo = list(range(n))
    latencies: list[float] = []

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        async def one(i: int) -> None:
            start = time.perf_counter()
            async with http.post(url, json={"model": DEFAULT_ID, "input": SENTENCES[i]},
                                 headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            latencies.append(time.perf_counter() - start)

        async def worker() -> None:
            while todo:
                await one(todo.pop())

        await asyncio.gather(*(one(i) for i in range(2 * clients)))  # warm connections
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return n / (time.perf_counter() - start), 1000 * statistics.median(latencies)


def _cpu(gw: GatewayProcess, triton: TritonServer) -> dict[str, float]:
    assert gw.process is not None and triton.process is not None
    me = os.times()
    return {"gateway": tree_cpu_s(gw.process.pid), "triton": tree_cpu_s(triton.process.pid),
            "client": me.user + me.system}


@contextlib.contextmanager
def stack(args: argparse.Namespace) -> Iterator[tuple[GatewayProcess, TritonServer]]:
    """The embedding model built with the requested knobs, Triton and the gateway, all started."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_embedding(out, progress=Progress(quiet=True), **_knobs(args))
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        triton.start()
        gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gw",
                            env={"CHUNGUS_ACCESS_LOG": "false"})
        try:
            gw.start()
            yield gw, triton
        finally:
            gw.stop()
            triton.stop()


def _knobs(args: argparse.Namespace) -> dict[str, int]:
    knobs = {"instances": args.instances, "n_threads": args.threads,
             "queue_delay_us": args.queue_delay_us}
    return {k: v for k, v in knobs.items() if v is not None}


def run_level(args: argparse.Namespace, model: Any, gw: GatewayProcess, triton: TritonServer,
              clients: int) -> dict[str, Any]:
    """Alternate the two paths ``args.rounds`` times at ``clients``; sentences/s, CPU per sentence."""
    rounds: list[tuple[float, float, float, float]] = []
    cpu = {"gateway": 0.0, "triton": 0.0, "client": 0.0, "direct": 0.0}
    for _ in range(args.rounds):
        load = report.load_avg()[0]
        before = _cpu(gw, triton)
        via, p50 = asyncio.run(through_gateway(gw, args.sentences, clients))
        for k, v in _cpu(gw, triton).items():
            cpu[k] += v - before[k]
        me = os.times()
        rounds.append((direct(model, args.sentences), via, p50, load))
        cpu["direct"] += os.times().user + os.times().system - me.user - me.system
    per_sentence = {k: 1000 * v / (args.rounds * (args.sentences + 2 * clients)) for k, v in cpu.items()}
    per_sentence["direct"] = 1000 * cpu["direct"] / (args.rounds * args.sentences)
    path = per_sentence["gateway"] + per_sentence["triton"] + per_sentence["client"]
    direct_s = statistics.median(r[0] for r in rounds)
    return {
        "clients": clients,
        "direct_batch32_sent_s": round(direct_s, 1),
        "gateway_sent_s": round(statistics.median(r[1] for r in rounds), 1),
        "ratio_median": round(statistics.median(r[1] / r[0] for r in rounds), 3),
        "gateway_p50_ms": round(statistics.median(r[2] for r in rounds), 2),
        "direct_batch32_ms": round(32_000 / direct_s, 2),
        "load1": statistics.median(r[3] for r in rounds),
        "rounds": [[round(r[0], 1), round(r[1], 1)] for r in rounds],
        # CPU per sentence by process (the gateway path's warm-up requests included), and the
        # ratio the two paths reach when both keep every core busy: robust to other load.
        "cpu_ms_per_sentence": {k: round(v, 2) for k, v in per_sentence.items()},
        "cpu_bound_ratio": round(per_sentence["direct"] / path, 3),
    }


def publish(levels: list[dict[str, Any]], args: argparse.Namespace, device: str) -> None:
    print(report.table(
        ["clients", "sentence-transformers sent/s (batches of 32)", "gateway sent/s", "ratio",
         "gateway p50 ms", "CPU-bound ratio", "load1"],
        [[x["clients"], x["direct_batch32_sent_s"], x["gateway_sent_s"], x["ratio_median"], x["gateway_p50_ms"],
          x["cpu_bound_ratio"], x["load1"]] for x in levels]))
    config = {**_knobs(args), "device": device, "sentences": args.sentences, "rounds": args.rounds}
    print(report.write_json(args.name, {"command": vars(args), "config": config, "levels": levels}, args.json_dir))
    ours = "CHUNGUS (one sentence per request)"
    peer = "sentence-transformers in process (batches of 32)"
    print(report.plot(
        args.name, "Embeddings, all-MiniLM-L6-v2 on CPU: gateway vs sentence-transformers",
        {ours: [(x["clients"], x["gateway_sent_s"]) for x in levels],
         peer: [(x["clients"], x["direct_batch32_sent_s"]) for x in levels]},
        {ours: [(x["clients"], x["gateway_p50_ms"]) for x in levels],
         f"{peer}, per batch": [(x["clients"], x["direct_batch32_ms"]) for x in levels]},
        throughput_label="sentences/s", latency_label="p50 latency (ms)", x_label="concurrent clients",
        directory=args.plot_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=1024, help="sentences per path per round")
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=None,
                        help="Triton model instances (default: the builder's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per instance (default: the builder's)")
    parser.add_argument("--queue-delay-us", type=int, default=None,
                        help="dynamic batcher delay (default: the builder's)")
    parser.add_argument("--direct-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="seconds: 64 sentences, 4 clients, 1 round")
    report.output_args(parser, "embeddings")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.clients, args.rounds = 64, [4], 1
    model = load_direct(args.direct_threads)
    with stack(args) as (gw, triton):
        levels = [run_level(args, model, gw, triton, c) for c in args.clients]
    publish(levels, args, str(model.device))


if __name__ == "__main__":
    main()
