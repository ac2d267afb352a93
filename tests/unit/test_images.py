"""Data URIs, safe decoding, preprocessing against Hugging Face's processors, and the fetcher
against a real loopback HTTP server."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

from gateway.errors import InvalidRequestError
from gateway.multimodal.datauri import decode_data_uri
from gateway.multimodal.decode import decode_image
from gateway.multimodal.fetch import ImageFetcher
from gateway.multimodal.preprocess import pixel_values
from gateway.multimodal.ssrf import BlockedURL, UrlPolicy
from gateway.registry import ImageProcessorConfig
from tests.images import data_uri, image_server, make_image

P = "messages[0].content[0].image_url.url"


@pytest.mark.parametrize(("uri", "code"), [
    ("data:text/plain;base64,aGk=", "unsupported_image_format"),
    ("data:image/svg+xml;base64,PHN2Zz4=", "unsupported_image_format"),
    ("data:image/png,rawdata", "invalid_image_url"),
    ("data:image/png;base64,aGk", "invalid_image"),  # missing padding: strict
    ("data:image/png;base64,a b=", "invalid_image"),
    ("data:image/png;base64,", "invalid_image"),
    ("data:image/png;base64," + "A" * 4000, "image_too_large"),
])
def test_data_uri_errors(uri: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_data_uri(uri, 1000, P)
    assert info.value.code == code and info.value.param == P


def test_data_uri_roundtrip() -> None:
    png = make_image()
    assert decode_data_uri(data_uri(png), 10**6, P) == png
    assert decode_data_uri(data_uri(png).replace("image/png", "image/png;charset=x"), 10**6, P) == png


def test_format_is_sniffed_from_bytes_and_exif_is_applied() -> None:
    webp = make_image("WEBP")
    assert decode_image(webp, 10**6, P).size == (96, 72)  # claimed png elsewhere does not matter
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    assert decode_image(buf.getvalue(), 10**6, P).size == (20, 40)


def test_pixel_limit_and_bombs() -> None:
    big = make_image("PNG", (2000, 2000))
    with pytest.raises(InvalidRequestError) as info:
        decode_image(big, 1_000_000, P)
    assert info.value.code == "image_too_large"
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(InvalidRequestError) as info:
        decode_image(gif.getvalue(), 10**6, P)
    assert info.value.code == "unsupported_image_format"


@pytest.mark.parametrize("size", [(96, 72), (1024, 768), (300, 500), (64, 64), (50, 30)])
def test_preprocessing_matches_the_hf_clip_processor(size: tuple[int, int]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import CLIPImageProcessor

    hf = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    cfg = ImageProcessorConfig(shortest_edge=64, crop_height=64, crop_width=64)
    image = decode_image(make_image("JPEG", size), 10**8, P)
    want = np.asarray(hf(images=image, return_tensors="np")["pixel_values"][0])
    got = pixel_values(image, cfg)
    assert got.shape == want.shape == (3, 64, 64)
    assert np.abs(got - want).max() < 0.02


def test_preprocessing_matches_the_hf_siglip_processor() -> None:
    from transformers import SiglipImageProcessor

    hf = SiglipImageProcessor(size={"height": 48, "width": 48})
    cfg = ImageProcessorConfig(resize_mode="fixed", height=48, width=48, do_center_crop=False,
                               resample=int(hf.resample), image_mean=tuple(hf.image_mean),  # type: ignore[arg-type]
                               image_std=tuple(hf.image_std))  # type: ignore[arg-type]
    image = decode_image(make_image("PNG", (120, 80)), 10**8, P)
    want = np.asarray(hf(images=image, return_tensors="np")["pixel_values"][0])
    assert np.abs(pixel_values(image, cfg) - want).max() < 0.02


def _fetcher(**kw: object) -> ImageFetcher:
    policy = UrlPolicy(allow_http=True, allowed_hosts=("127.0.0.1",))
    args = {"connect_timeout_s": 1.0, "total_timeout_s": 2.0, "max_bytes": 1024 * 1024,
            "max_redirects": 2, **kw}
    return ImageFetcher(policy, **args)  # type: ignore[arg-type]


async def test_fetch_rules_on_a_loopback_server() -> None:
    with image_server() as base:
        fetcher = _fetcher()
        try:
            assert (await fetcher.fetch(base + "/cat.png", P)).startswith(b"\x89PNG")
            assert (await fetcher.fetch(base + "/to-cat", P)).startswith(b"\x89PNG")
            cases = {"/to-metadata": "image_url_blocked", "/to-private": "image_url_blocked",
                     "/loop": "image_fetch_failed", "/big": "image_too_large",
                     "/slow": "image_fetch_timeout", "/missing": "image_fetch_failed"}
            for path, code in cases.items():
                with pytest.raises(InvalidRequestError) as info:
                    await fetcher.fetch(base + path, P)
                assert info.value.code == code, path
        finally:
            await fetcher.aclose()


async def test_blocked_names_are_refused_before_any_connection() -> None:
    fetcher = ImageFetcher(UrlPolicy(), connect_timeout_s=1, total_timeout_s=2, max_bytes=10,
                           max_redirects=0)
    try:
        for url in ("https://localhost/x.png", "https://127.0.0.1/x.png", "http://8.8.8.8/x.png"):
            with pytest.raises(BlockedURL):
                await fetcher.fetch(url, P)
    finally:
        await fetcher.aclose()


def test_base64_helper() -> None:
    assert base64.b64decode(data_uri(b"x").split(",", 1)[1]) == b"x"
