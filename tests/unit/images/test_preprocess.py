"""Preprocessing without torch against Hugging Face's own image processors (the Pillow backend,
which LLaVA checkpoints were trained with): same pixel values for the same image."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from gateway.images.decode import decode, decode_image, open_image, plan
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


def _hf(processor: object, image: Image.Image) -> npt.NDArray[np.float32]:
    out = processor(images=image, return_tensors="np")  # type: ignore[operator]  # HF, untyped
    return np.asarray(out["pixel_values"][0], dtype=np.float32)


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


def _photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Smooth colour fields, hard-edged shapes and sensor-like noise (sigma 6): a photo's spectrum."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (h // 40 + 1, w // 40 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.ellipse((x, y, x + int(rng.integers(10, w // 4)), y + int(rng.integers(10, h // 4))),
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    noisy = np.asarray(image) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _levels(got: npt.NDArray[np.float32], want: npt.NDArray[np.float32],
            cfg: ImageProcessorConfig) -> npt.NDArray[np.float32]:
    """Differences in levels of 255, per value."""
    std = np.asarray(cfg.image_std, dtype=np.float32)[:, None, None]
    return np.asarray(np.abs(got - want) * std / np.float32(cfg.rescale_factor), dtype=np.float32)


SMALL = ImageProcessorConfig(shortest_edge=112, crop_height=112, crop_width=112)  # fast to test


@pytest.mark.parametrize(("size", "fmt", "cfg", "factor"), [
    ((1344, 1008), "JPEG", SMALL, 2),  # a 4:3 photo 9x the target: drafted by 2
    ((1344, 1008), "PNG", SMALL, 3),
    ((673, 1337), "PNG", SMALL, 2),  # odd sizes: the last reduced pixel stands for fewer
    ((1600, 1600), "WEBP", ImageProcessorConfig(resize_mode="fixed", height=128, width=128,
                                                do_center_crop=False, resample=2), 4),
])
def test_big_images_decoded_small_stay_close_to_hf(size: tuple[int, int], fmt: str,
                                                   cfg: ImageProcessorConfig, factor: int) -> None:
    """What reducing while decoding costs: a fraction of a level on average, a few at most."""
    buf = io.BytesIO()
    _photo(size).save(buf, format=fmt, quality=90)
    opened = open_image(buf.getvalue(), 10**8, P)
    how = plan(opened, cfg)
    assert how.draft * how.factor == factor
    decoded = decode(opened, how, P)
    if cfg.resize_mode == "fixed":
        hf: object = SiglipImageProcessorPil(size={"height": cfg.height, "width": cfg.width},
                                             resample=cfg.resample, image_mean=cfg.image_mean,
                                             image_std=cfg.image_std)
    else:
        hf = CLIPImageProcessorPil(size={"shortest_edge": cfg.shortest_edge},
                                   crop_size={"height": cfg.crop_height, "width": cfg.crop_width})
    full = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    levels = _levels(pixel_values(decoded, cfg), _hf(hf, full), cfg)
    assert levels.mean() < 0.4 and levels.max() <= 8, (levels.mean(), levels.max())


def test_images_below_the_gap_are_not_reduced_and_match_exactly() -> None:
    buf = io.BytesIO()
    _photo((900, 670)).save(buf, format="PNG")  # short side 670 < 3 x 2 x 112
    opened = open_image(buf.getvalue(), 10**8, P)
    how = plan(opened, SMALL)
    assert (how.draft, how.factor) == (1, 1)
    hf = CLIPImageProcessorPil(size={"shortest_edge": 112}, crop_size={"height": 112, "width": 112})
    got = pixel_values(decode(opened, how, P), SMALL)
    want = _hf(hf, Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.abs(got - want).max() < 1e-5
