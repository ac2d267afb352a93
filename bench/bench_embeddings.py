"""Embeddings: sentences/s through the gateway (32 concurrent single-sentence clients) vs
sentence-transformers called directly with batches of 32 in one process, same run.

Run: ``.venv/bin/python -m bench.bench_embeddings [--sentences 1024]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import aiohttp

from build_engines.embedding import build_embedding, default_source
from build_engines.progress import Progress
from gateway.backends.triton.server import TritonServer, free_port
from tests.support import GatewayProcess

SENTENCES = [f"This is benchmark sentence number {i}, about topic {i % 13}." for i in range(4096)]


def direct(n: int) -> float:
    """Sentences/s of sentence-transformers in this process, batches of 32."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(str(default_source()), device="cpu")
    model.encode(SENTENCES[:64], batch_size=32)
    start = time.perf_counter()
    model.encode(SENTENCES[:n], batch_size=32, normalize_embeddings=True)
    return n / (time.perf_counter() - start)


async def through_gateway(gw: GatewayProcess, n: int, clients: int) -> float:
    url = gw.base_url + "/v1/embeddings"
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    todo = list(range(n))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        async def one(i: int) -> None:
            async with http.post(url, json={"model": "all-minilm-l6-v2", "input": SENTENCES[i]},
                                 headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()

        async def worker() -> None:
            while todo:
                await one(todo.pop())

        await asyncio.gather(*(one(i) for i in range(64)))  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_embedding(out, progress=Progress(quiet=True))
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        triton.start()
        gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gw",
                            env={"CHUNGUS_ACCESS_LOG": "false"})
        try:
            gw.start()
            via = asyncio.run(through_gateway(gw, args.sentences, args.clients))
        finally:
            gw.stop()
            triton.stop()
    base = direct(args.sentences)
    print(json.dumps({"direct_batch32_sent_s": round(base, 1),
                      f"gateway_{args.clients}_clients_sent_s": round(via, 1),
                      "ratio": round(via / base, 3)}))


if __name__ == "__main__":
    main()
