"""The image path: preprocessing time per 1024x768 JPEG, images/s in the gateway's image service and
end to end, and gateway memory while 32 image requests are in flight; and (``--big``) the peak
memory and time of one and four 5792x5792 RGBA PNGs in one request (issue 12), each in a fresh
process, with the default pixel cap and with it raised to 64 Mpx.

Run: ``.venv/bin/python -m bench.bench_images [--requests 64] [--repeats 3] [--big]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from build_engines.progress import Progress
from build_engines.vision import build_vision
from gateway.images import ImageService
from gateway.images.decode import decode_image
from gateway.images.preprocess import pixel_values
from gateway.registry import ImageProcessorConfig, ModelEntry, load_registry
from gateway.settings import Settings
from gateway.triton.server import TritonServer, free_port
from tests.images import big_png, data_uri, image_server, make_image
from tests.support import GatewayProcess

LLAVA_15 = ImageProcessorConfig()  # CLIP ViT-L/14-336: short side 336, crop 336x336


def preprocessing_ms(jpeg: bytes, cfg: ImageProcessorConfig, runs: int = 30) -> dict[str, float]:
    """Median decode and decode+preprocess times for one image, one thread."""
    decode, total = [], []
    for _ in range(runs):
        start = time.perf_counter()
        image = decode_image(jpeg, 10**8, "x")
        mid = time.perf_counter()
        pixel_values(image, cfg).astype("float16")
        decode.append((mid - start) * 1000)
        total.append((time.perf_counter() - start) * 1000)
    return {"decode_ms": round(statistics.median(decode), 2),
            "decode_and_preprocess_ms": round(statistics.median(total), 2)}


async def service_rate(url: str, entry: ModelEntry, n: int, concurrency: int = 32) -> dict[str, float]:
    """Images/s and CPU ms per image of ImageService.resolve alone (no model), 32 at a time."""
    service = ImageService(Settings(image_allow_http=True, image_allowed_hosts=("127.0.0.1",)))
    todo = list(range(n))

    async def worker() -> None:
        while todo:
            todo.pop()
            await service.resolve([(url, "x")], entry)

    try:
        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await service.aclose()
    return {"images_per_s": round(n / wall, 1), "cpu_ms_per_image": round(cpu / n * 1000, 2)}


async def _big_pngs(n: int, max_pixels: int) -> dict[str, Any]:
    """Peak RSS growth (VmHWM) and time of resolving ``n`` 5792x5792 RGBA PNGs in one request."""
    entry = ModelEntry(id="v", triton_model="v", vision=True, max_images=n,
                       image_processor=LLAVA_15)
    uris = [data_uri(big_png((5792, 5792)))] * n
    # 256 MiB fits one 154 MiB decode at a time on any machine (the default, 384, may fit two)
    service = ImageService(Settings(image_max_pixels=max_pixels, image_decode_memory_mb=256))
    await service.resolve([(data_uri(make_image()), "warm-up")], entry)
    base, start = _rss_kib(0, "VmHWM"), time.perf_counter()
    try:
        result: Any = list((await service.resolve([(u, "x") for u in uris], entry)).shape)
    except Exception as exc:  # a refusal is a result here
        result = getattr(exc, "code", repr(exc))
    seconds = time.perf_counter() - start
    await service.aclose()
    return {"images": n, "max_pixels": max_pixels, "data_uri_kb": round(sum(map(len, uris)) / 1024),
            "result": result, "seconds": round(seconds, 2),
            "peak_rss_growth_mib": round((_rss_kib(0, "VmHWM") - base) / 1024, 1)}


def big_pngs(n: int, max_pixels: int) -> dict[str, Any]:
    """``_big_pngs`` in a fresh process, so that its peak is its own."""
    out = subprocess.run([sys.executable, "-m", "bench.bench_images", "--big-child", str(n),
                          str(max_pixels)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A /proc status field in KiB (pid 0: this process)."""
    path = Path("/proc/self/status" if pid == 0 else f"/proc/{pid}/status")
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def through_gateway(gw: GatewayProcess, content: Any, requests: int,
                          concurrency: int) -> dict[str, float]:
    """Requests/s through the gateway with ``concurrency`` in flight, and the gateway's RSS."""
    body = {"model": "tiny-llava-random", "max_tokens": 1,
            "messages": [{"role": "user", "content": content}]}
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    pid = gw.process.pid  # type: ignore[union-attr]
    peak, todo = 0, list(range(requests))
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
                peak = max(peak, _rss_kib(pid))
                await asyncio.sleep(0.02)

        idle, start = _rss_kib(pid), time.perf_counter()
        await asyncio.gather(sample(), *(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"per_s": requests / wall, "rss_idle_mib": idle / 1024, "rss_peak_mib": peak / 1024}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="only the 5792x5792 PNG measurements")
    parser.add_argument("--big-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.big_child:
        print(json.dumps(asyncio.run(_big_pngs(*args.big_child))), flush=True)
        return
    if args.big:
        for n, cap in ((4, Settings().image_max_pixels), (1, 64 << 20), (4, 64 << 20)):
            print(json.dumps({"big_rgba_png_5792": big_pngs(n, cap)}), flush=True)
        return
    jpeg = make_image("JPEG", (1024, 768))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_vision(out, progress=Progress(quiet=True))
        entry = load_registry(out / "registry.toml").get("tiny-llava-random")
        assert entry is not None and entry.image_processor is not None
        print(json.dumps({"jpeg_1024x768_tiny_64px": preprocessing_ms(jpeg, entry.image_processor),
                          "jpeg_1024x768_llava15_336px": preprocessing_ms(jpeg, LLAVA_15)}), flush=True)
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port())
        triton.start()
        env = {"CHUNGUS_ACCESS_LOG": "false", "CHUNGUS_IMAGE_ALLOW_HTTP": "true",
               "CHUNGUS_IMAGE_ALLOWED_HOSTS": "127.0.0.1"}
        gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gw", env=env)
        try:
            gw.start()
            with image_server() as server:
                sources = {"url": server.base + "/cat.jpg", "base64": data_uri(jpeg, "image/jpeg")}
                for name, url in sources.items():
                    rate = asyncio.run(service_rate(url, entry, args.requests))
                    print(json.dumps({f"image_service_{name}_32_in_flight": rate}), flush=True)
                cases = {"text_only": "Describe.", **{
                    name: [{"type": "image_url", "image_url": {"url": url}},
                           {"type": "text", "text": "Describe."}] for name, url in sources.items()}}
                for name, content in cases.items():
                    runs = [asyncio.run(through_gateway(gw, content, args.requests, 32))
                            for _ in range(args.repeats)]
                    print(json.dumps({f"gateway_{name}_32_in_flight": _median(runs)}), flush=True)
        finally:
            gw.stop()
            triton.stop()


if __name__ == "__main__":
    main()
