"""ImageService: refs in prompt order -> FP16 [n, 3, H, W]; the first bad part is the one reported,
and one failure cancels the rest instead of waiting for them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.errors import InvalidRequestError
from gateway.images import ImageService
from gateway.registry import ImageProcessorConfig, ModelEntry
from gateway.settings import Settings
from tests.images import ImageServer, big_png, data_uri, image_server, make_image

CFG = ImageProcessorConfig(shortest_edge=32, crop_height=32, crop_width=32)
VISION = ModelEntry(id="v", triton_model="v", vision=True, max_images=3, image_processor=CFG)


def _p(i: int) -> str:
    return f"messages[0].content[{i}].image_url.url"


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with image_server() as s:
        yield s


@pytest.fixture
async def service() -> AsyncIterator[ImageService]:
    svc = ImageService(Settings(image_allow_http=True, image_allowed_hosts=("127.0.0.1/32",),
                                image_fetch_timeout_s=5))
    yield svc
    await svc.aclose()


async def test_urls_and_data_uris_in_prompt_order(service: ImageService, server: ImageServer) -> None:
    red, blue = make_image(), make_image("JPEG", color=(0, 0, 255))  # red as /cat.png
    refs = [(data_uri(red), _p(0)), (server.base + "/cat.png", _p(1)),
            (data_uri(blue, "image/jpeg"), _p(2))]
    out = await service.resolve(refs, VISION)
    assert out.dtype == np.float16 and out.shape == (3, 3, 32, 32)
    assert out[0, 0].mean() > out[0, 2].mean() and out[2, 2].mean() > out[2, 0].mean()
    assert (out[1] == out[0]).all()  # /cat.png is the same image


async def test_the_first_bad_part_is_reported_without_waiting(service: ImageService,
                                                              server: ImageServer) -> None:
    refs = [(server.base + "/slow", _p(0)), (data_uri(b"not an image"), _p(1)),
            ("ftp://example.com/x.png", _p(2))]
    with pytest.raises(InvalidRequestError) as info:
        await service.resolve(refs, VISION)
    assert (info.value.code, info.value.param) == ("invalid_image_url", _p(2))  # cheap checks first
    start = time.monotonic()
    with pytest.raises(InvalidRequestError) as info:
        await service.resolve(refs[:2], VISION)
    assert (info.value.code, info.value.param) == ("unsupported_image_format", _p(1))
    assert time.monotonic() - start < 2  # /slow (10 s) was cancelled, not awaited


async def test_model_rules(service: ImageService) -> None:
    uri = data_uri(make_image())
    with pytest.raises(InvalidRequestError) as info:
        await service.resolve([(uri, _p(i)) for i in range(4)], VISION)
    assert info.value.code == "too_many_images"
    text = ModelEntry(id="t", triton_model="t")
    with pytest.raises(InvalidRequestError) as info:
        await service.resolve([(uri, _p(0))], text)
    assert info.value.code == "invalid_model_type"


# --- Memory, time and the event loop with big images (issue 12) ---------------------------------

_MEASURE = """
import asyncio, json, sys, time
from gateway.images import ImageService
from gateway.registry import ImageProcessorConfig, ModelEntry
from gateway.settings import Settings
from tests.images import big_png, data_uri, make_image

def hwm_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

async def main(n, max_pixels):
    entry = ModelEntry(id="v", triton_model="v", vision=True, max_images=4,
                       image_processor=ImageProcessorConfig())
    uris = [data_uri(big_png((5792, 5792)))] * n
    # a 256 MiB budget fits one 154 MiB decode at a time however many CPUs there are
    service = ImageService(Settings(image_max_pixels=max_pixels, image_decode_memory_mb=256))
    await service.resolve([(data_uri(make_image()), "w")], entry)  # threads and imports warm
    base, start = hwm_mib(), time.perf_counter()
    try:
        result = list((await service.resolve([(u, "p") for u in uris], entry)).shape)
    except Exception as exc:
        result = exc.code
    seconds = time.perf_counter() - start
    print(json.dumps({"result": result, "seconds": seconds, "growth_mib": hwm_mib() - base,
                      "budget_used": service.budget.used, "data_kb": sum(map(len, uris)) / 1024}))
    await service.aclose()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def _measure(n: int, max_pixels: int) -> dict[str, Any]:
    """Peak RSS growth of a fresh process resolving ``n`` 5792x5792 RGBA PNGs in one request."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(n), str(max_pixels)], check=True,
                         capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parents[3])
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_four_34_mpx_pngs_are_refused_at_once_by_default() -> None:
    """Issue 12: 770 KB of data URIs took 1.99 GiB. The default cap (16 Mpx) refuses them."""
    got = _measure(4, Settings().image_max_pixels)
    assert got["result"] == "image_too_large" and 600 < got["data_kb"] < 1000
    assert got["seconds"] < 2 and got["growth_mib"] < 30 and got["budget_used"] == 0


@pytest.mark.parametrize(("n", "growth_mib"), [(1, 200), (4, 200)])
def test_34_mpx_pngs_with_a_raised_cap_stay_within_the_budget(n: int, growth_mib: int) -> None:
    """Allowed (cap 64 Mpx), they decode one at a time within a 256 MiB budget, reduced to 1159
    px: before, one took 767 MiB and four 1548 MiB."""
    got = _measure(n, 64 * 1024 * 1024)
    assert got["result"] == [n, 3, 336, 336] and got["budget_used"] == 0
    assert got["growth_mib"] < growth_mib, got
    assert got["seconds"] < 15 * n, got  # about 1.8 s each on two busy cores


async def test_the_event_loop_stays_responsive_while_decoding() -> None:
    service = ImageService(Settings(image_max_pixels=64 * 1024 * 1024))
    entry = ModelEntry(id="v", triton_model="v", vision=True, max_images=2,
                       image_processor=ImageProcessorConfig())
    uri = data_uri(big_png((4096, 4096)))
    lags: list[float] = []

    async def tick() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - start - 0.005)

    ticker = asyncio.create_task(tick())
    try:
        out = await service.resolve([(uri, _p(0)), (uri, _p(1))], entry)
    finally:
        ticker.cancel()
        await service.aclose()
    assert out.shape == (2, 3, 336, 336) and len(lags) > 20
    assert max(lags) < 0.1, sorted(lags)[-5:]


async def test_a_cancelled_decode_gives_its_memory_back_when_its_thread_ends() -> None:
    service = ImageService(Settings(image_max_pixels=64 * 1024 * 1024))
    entry = ModelEntry(id="v", triton_model="v", vision=True, max_images=2,
                       image_processor=ImageProcessorConfig())
    refs = [(data_uri(big_png((4096, 4096))), _p(0)), (data_uri(b"not an image"), _p(1))]
    try:
        with pytest.raises(InvalidRequestError):
            await service.resolve(refs, entry)
        for _ in range(200):  # the big one's thread finishes on its own
            if service.budget.used == 0:
                break
            await asyncio.sleep(0.05)
        assert service.budget.used == 0
    finally:
        await service.aclose()


async def test_budget_and_threads_come_from_the_environment() -> None:
    settings = Settings.from_env({"CHUNGUS_IMAGE_DECODE_MEMORY_MB": "64",
                                  "CHUNGUS_IMAGE_DECODE_THREADS": "3",
                                  "CHUNGUS_IMAGE_MAX_PIXELS": str(64 * 1024 * 1024)})
    service = ImageService(settings)
    entry = ModelEntry(id="v", triton_model="v", vision=True, max_images=1,
                       image_processor=ImageProcessorConfig())
    try:
        assert (service.budget.total, service.threads) == (64 << 20, 3)
        with pytest.raises(InvalidRequestError) as info:  # needs about 154 MiB to decode
            await service.resolve([(data_uri(big_png((5792, 5792))), _p(0))], entry)
        assert (info.value.code, info.value.param) == ("image_too_large", _p(0))
        assert "needs about 154 MiB" in info.value.message
        assert "CHUNGUS_IMAGE_DECODE_MEMORY_MB" in info.value.message
        assert service.budget.used == 0
    finally:
        await service.aclose()
