"""Preprocessing without torch against Hugging Face's own image processors (the Pillow backend,
which LLaVA checkpoints were trained with): same pixel values for the same image."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from gateway.images.decode import decode_image
from gateway.images.preprocess import pixel_values, resized_size
from gateway.registry import ImageProcessorConfig
from tests.images import make_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil  # noqa: E402

P = "messages[0].content[0].image_url.url"
SIZES = [(1024, 768), (768, 1024), (333, 500), (336, 336), (100, 40), (65, 64), (7, 9), (1, 1),
         (3000, 200)]


def _noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _hf(processor: object, image: Image.Image) -> np.ndarray:
    return np.asarray(processor(images=image, return_tensors="np")["pixel_values"][0])  # type: ignore[operator]


@pytest.mark.parametrize(("shortest", "crop", "resample"), [
    (336, (336, 336), 3),  # llava-1.5 / llava-hf CLIP ViT-L/14-336
    (224, (224, 224), 3),  # CLIP ViT-B
    (64, (64, 64), 3),  # tiny-llava-random
    (30, (40, 35), 2),  # a crop larger than the resize: zero padding, odd offsets
    (100, (90, 110), 1),
])
def test_clip_processor(shortest: int, crop: tuple[int, int], resample: int) -> None:
    hf = CLIPImageProcessorPil(size={"shortest_edge": shortest},
                               crop_size={"height": crop[0], "width": crop[1]}, resample=resample)
    cfg = ImageProcessorConfig(shortest_edge=shortest, crop_height=crop[0], crop_width=crop[1],
                               resample=resample)
    for i, size in enumerate(SIZES):
        image = _noise(size, i)
        want, got = _hf(hf, image), pixel_values(image, cfg)
        assert got.shape == want.shape == (3, *crop)
        assert np.abs(got - want).max() < 1e-5, size
        # What goes on the wire is FP16: still within half a step of FP16 at these magnitudes.
        assert np.abs(got.astype(np.float16).astype(np.float32) - want).max() < 4e-3


@pytest.mark.parametrize("side", [384, 224, 48])
def test_siglip_processor(side: int) -> None:
    hf = SiglipImageProcessorPil(size={"height": side, "width": side})
    cfg = ImageProcessorConfig(resize_mode="fixed", height=side, width=side, do_center_crop=False,
                               resample=int(hf.resample), rescale_factor=float(hf.rescale_factor),
                               image_mean=tuple(hf.image_mean),  # type: ignore[arg-type]
                               image_std=tuple(hf.image_std))  # type: ignore[arg-type]
    for i, size in enumerate(SIZES):
        image = _noise(size, i)
        assert np.abs(pixel_values(image, cfg) - _hf(hf, image)).max() < 1e-5, size


def test_decoded_files_match_too() -> None:
    hf = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    for fmt in ("JPEG", "PNG", "WEBP"):
        image = decode_image(make_image(fmt, (1024, 768)), 10**8, P)
        assert np.abs(pixel_values(image, ImageProcessorConfig()) - _hf(hf, image)).max() < 1e-5


def test_extreme_strips_are_bounded_and_close() -> None:
    """A 40000x4 strip would resize to 3.36M x 336 first; only the crop is resampled instead."""
    cfg = ImageProcessorConfig()
    assert resized_size(40000, 4, cfg) == (3_360_000, 336)
    strip = Image.linear_gradient("L").resize((40000, 4)).convert("RGB")
    start = time.perf_counter()
    got = pixel_values(strip, cfg)
    assert time.perf_counter() - start < 0.5 and got.shape == (3, 336, 336)
    hf = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    smaller = Image.linear_gradient("L").resize((3000, 60)).convert("RGB")  # 50:1, HF can do it
    want = _hf(hf, smaller)
    assert np.abs(pixel_values(smaller, cfg) - want).mean() < 0.02
