"""ImageService: refs in prompt order -> FP16 [n, 3, H, W]; the first bad part is the one reported,
and one failure cancels the rest instead of waiting for them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from gateway.errors import InvalidRequestError
from gateway.images import ImageService
from gateway.registry import ImageProcessorConfig, ModelEntry
from gateway.settings import Settings
from tests.images import ImageServer, data_uri, image_server, make_image

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
