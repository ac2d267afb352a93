"""The image path: preprocessing time per 1024x768 JPEG, images/s through the gateway, and gateway
memory while 32 image requests are in flight.

Run: ``.venv/bin/python -m bench.bench_images [--requests 64]``
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

from build_engines.progress import Progress
from build_engines.vision import build_vision
from gateway.backends.triton.server import TritonServer, free_port
from gateway.multimodal.decode import decode_image
from gateway.multimodal.preprocess import pixel_values
from gateway.registry import load_registry
from tests.images import data_uri, image_server, make_image
from tests.support import GatewayProcess


def preprocessing_ms(jpeg: bytes, cfg, runs: int = 50) -> dict[str, float]:  # type: ignore[no-untyped-def]
    decode, total = [], []
    for _ in range(runs):
        start = time.perf_counter()
        image = decode_image(jpeg, 10**8, "x")
        mid = time.perf_counter()
        pixel_values(image, cfg)
        end = time.perf_counter()
        decode.append((mid - start) * 1000)
        total.append((end - start) * 1000)
    return {"decode_ms": statistics.median(decode), "decode_and_preprocess_ms": statistics.median(total)}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def through_gateway(gw: GatewayProcess, url: str, requests: int, concurrency: int) -> dict:
    body = {"model": "tiny-llava-random", "max_tokens": 1,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "Describe."}]}]}
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    peak = 0
    todo = list(range(requests))

    async with aiohttp.ClientSession() as http:
        async def worker() -> None:
            while todo:
                todo.pop()
                async with http.post(gw.base_url + "/v1/chat/completions", json=body,
                                     headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()

        async def sample() -> None:
            nonlocal peak
            while todo:
                peak = max(peak, _rss_kib(gw.process.pid))  # type: ignore[union-attr]
                await asyncio.sleep(0.02)

        idle = _rss_kib(gw.process.pid)  # type: ignore[union-attr]
        start = time.perf_counter()
        await asyncio.gather(sample(), *(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"images_per_s": requests / wall, "gateway_rss_idle_mib": idle / 1024,
            "gateway_rss_peak_mib": peak / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()
    jpeg = make_image("JPEG", (1024, 768))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_vision(out, progress=Progress(quiet=True))
        cfg = load_registry(out / "registry.toml").get("tiny-llava-random").image_processor  # type: ignore[union-attr]
        print(json.dumps({"jpeg_1024x768": preprocessing_ms(jpeg, cfg)}), flush=True)
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        triton.start()
        env = {"CHUNGUS_ACCESS_LOG": "false", "CHUNGUS_IMAGE_ALLOW_HTTP": "true",
               "CHUNGUS_IMAGE_ALLOWED_HOSTS": "127.0.0.1"}
        gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gw", env=env)
        try:
            gw.start()
            with image_server() as base:
                for name, url in (("url", base + "/cat.jpg"), ("base64", data_uri(jpeg, "image/jpeg"))):
                    result = asyncio.run(through_gateway(gw, url, args.requests, 32))
                    print(json.dumps({f"{name}_1024x768_jpeg_32_in_flight": result}), flush=True)
        finally:
            gw.stop()
            triton.stop()


if __name__ == "__main__":
    main()
