"""Safe decoding: the bytes decide the format, pixel limits hold before decoding, EXIF orientation,
transparency onto white like Hugging Face, and corrupt files become 400s, never 500s."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from gateway.errors import InvalidRequestError
from gateway.images.decode import Plan, decode, decode_image, open_image, plan, reduction, webp_size
from gateway.registry import ImageProcessorConfig
from tests.images import animated, big_png, make_image, png_claiming, webp_claiming

P = "messages[0].content[0].image_url.url"


def _code(data: bytes, max_pixels: int = 10**6) -> str | None:
    with pytest.raises(InvalidRequestError) as info:
        decode_image(data, max_pixels, P)
    assert info.value.param == P
    return info.value.code


@pytest.mark.parametrize(("fmt", "mode"), [
    *((f, m) for f in ("PNG", "WEBP") for m in ("RGB", "L", "RGBA", "LA", "P", "1")),
    ("PNG", "I;16"), ("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"),
    ("WEBP", "CMYK"),
])
def test_formats_and_modes_become_rgb(fmt: str, mode: str) -> None:
    image = decode_image(make_image(fmt, (40, 30), mode=mode), 10**6, P)
    assert image.mode == "RGB" and image.size == (40, 30)


def test_transparency_goes_onto_white_like_hf() -> None:
    from transformers.image_transforms import convert_to_rgb

    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    ours = np.asarray(decode_image(buf.getvalue(), 10**6, P))
    theirs = convert_to_rgb(Image.open(io.BytesIO(buf.getvalue())), return_numpy=True)
    assert (ours == theirs).all()
    assert tuple(ours[1, 1]) == (255, 255, 255) and tuple(ours[0, 0]) == (0, 0, 255)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(buf, format="JPEG", exif=exif.tobytes())
    assert decode_image(buf.getvalue(), 10**6, P).size == (20, 40)


def test_pixel_limit_is_checked_from_the_header() -> None:
    assert _code(make_image("PNG", (2000, 2000)), max_pixels=1_000_000) == "image_too_large"
    # A 30000x30000 PNG of one colour is a few hundred KB: refused before anything is decoded.
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, format="PNG")
    assert len(bomb.getvalue()) < 1_000_000
    assert _code(bomb.getvalue(), max_pixels=32 * 1024 * 1024) == "image_too_large"


@pytest.mark.parametrize(("data", "code"), [
    (b"", "unsupported_image_format"),
    (b"this is not an image", "unsupported_image_format"),
    (b"GIF89a" + b"\0" * 32, "unsupported_image_format"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "unsupported_image_format"),
    (b"BM" + b"\0" * 60, "unsupported_image_format"),  # BMP
    (make_image("PNG")[:80], "invalid_image"),  # truncated
    (make_image("JPEG")[:300], "invalid_image"),
    (make_image("WEBP")[:40], "invalid_image"),
    (make_image("PNG")[:33] + b"\xff" * 200, "invalid_image"),  # header fine, data garbage
])
def test_bad_bytes(data: bytes, code: str) -> None:
    assert _code(data) == code


def test_gif_and_tiff_are_refused_even_though_pillow_reads_them() -> None:
    for fmt in ("GIF", "TIFF", "BMP"):
        assert _code(make_image(fmt)) == "unsupported_image_format"


# --- Bombs and budgets: refused from the header, fast; big images decoded small -----------------

CLIP_336 = ImageProcessorConfig()  # short side 336, crop 336


def _timed_code(data: bytes, max_pixels: int = 16 * 1024 * 1024, seconds: float = 1.0) -> str | None:
    start = time.perf_counter()
    code = _code(data, max_pixels)
    assert time.perf_counter() - start < seconds
    return code


@pytest.mark.parametrize("size", [(100_000, 100_000), (2**31 - 1, 1), (5792, 5792), (4097, 4097)])
def test_huge_dimensions_in_a_tiny_png(size: tuple[int, int]) -> None:
    data = png_claiming(size)
    assert len(data) < 100
    assert _timed_code(data) == "image_too_large"


def test_real_png_bomb_is_refused_before_decoding() -> None:
    data = big_png((5792, 5792))  # 34 Mpx, RGBA: 128 MiB decoded from about 170 KB
    assert len(data) < 200_000
    assert _timed_code(data) == "image_too_large"


@pytest.mark.parametrize("size", [(16384, 16384), (8000, 8000), (4097, 4096)])
def test_webp_bomb(size: tuple[int, int]) -> None:
    """Refused from the bytes before Pillow opens it: libwebp allocates its canvas on open."""
    data = webp_claiming(size)
    assert len(data) < 100 and webp_size(data) == size
    with pytest.raises(InvalidRequestError) as info:
        open_image(data, 16 * 1024 * 1024, P)
    assert info.value.code == "image_too_large" and f"{size[0]}x{size[1]}" in info.value.message


def test_webp_size_reads_every_kind_of_header() -> None:
    lossless, alpha = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (123, 45)).save(lossless, format="WEBP", lossless=True)
    Image.new("RGBA", (67, 89)).save(alpha, format="WEBP")
    assert webp_size(make_image("WEBP", (333, 222))) == (333, 222)  # VP8 (lossy)
    assert webp_size(lossless.getvalue()) == (123, 45)  # VP8L
    assert webp_size(alpha.getvalue()) == (67, 89)  # VP8X
    assert webp_size(animated("WEBP", 3, (40, 30))) == (40, 30)  # VP8X, animated
    assert webp_size(b"RIFF\0\0\0\0WEBPJUNK") is None


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animations_use_the_first_frame_and_many_frames_are_refused(fmt: str) -> None:
    image = decode_image(animated(fmt, 5), 10**6, P)
    assert image.size == (32, 32) and image.getpixel((3, 3)) == (0, 255, 0)  # frame 0's colour
    with pytest.raises(InvalidRequestError) as info:
        open_image(animated(fmt, 101), 10**6, P, max_frames=100)
    assert info.value.code == "image_too_large" and "101 frames" in info.value.message
    assert _timed_code(animated(fmt, 2000)) == "image_too_large"  # the default cap: 100


def test_animated_gif_is_refused_fast() -> None:
    assert _timed_code(animated("GIF", 2000)) == "unsupported_image_format"


def test_truncated_big_png_is_invalid_fast() -> None:
    data = big_png((2048, 2048))
    assert _timed_code(data[:len(data) // 2]) == "invalid_image"
    assert _timed_code(make_image("WEBP", (2048, 2048))[:5000]) == "invalid_image"
    assert _timed_code(make_image("JPEG", (2048, 2048))[:2000]) == "invalid_image"


def test_png_text_bomb_is_invalid() -> None:
    """zTXt chunks inflate: 4 MiB of text in all is the most we read (Pillow's default is 64)."""
    info = PngImagePlugin.PngInfo()
    for i in range(6):
        info.add_text(f"k{i}", "a" * (1 << 20), zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    assert len(buf.getvalue()) < 100_000
    assert _timed_code(buf.getvalue()) == "invalid_image"


@pytest.mark.parametrize(("size", "cfg", "factor"), [
    ((1000, 1000), CLIP_336, 1),  # 2.97x: not reduced
    ((2016, 2016), CLIP_336, 2),
    ((5792, 5792), CLIP_336, 5),
    ((40000, 4), CLIP_336, 1),  # a strip: its short side is below the target
    ((4000, 3000), ImageProcessorConfig(resize_mode="fixed", width=384, height=128), 2),
    ((3000, 4000), ImageProcessorConfig(resize_mode="fixed", width=384, height=128), 2),  # turned
    ((5000, 5000), None, 1),  # no processor: full size
])
def test_reduction_factor(size: tuple[int, int], cfg: ImageProcessorConfig | None, factor: int) -> None:
    assert reduction(size, cfg) == factor


def test_jpeg_is_drafted_and_png_reduced_and_the_estimate_follows() -> None:
    jpeg = open_image(make_image("JPEG", (4032, 3024)), 10**8, P)
    how = plan(jpeg, CLIP_336)
    assert (how.draft, how.factor) == (2, 1)  # 3024 / 336 = 9 = 3 x the gap: DCT scaling by 2
    decoded = decode(jpeg, how, P)
    assert decoded.image.size == (2016, 1512) and decoded.size == (4032, 3024)
    assert decoded.box == (0.0, 0.0, 2016.0, 1512.0)
    png = open_image(big_png((5792, 5792)), 10**8, P)
    png_how = plan(png, CLIP_336)
    assert (png_how.draft, png_how.factor) == (1, 5)
    # decoded RGBA once (128 MiB), the reduced RGB image twice, two strips, 8 MiB of slack
    assert png_how.cost == 5792 * 5792 * 4 + 2 * 1159 * 1159 * 4 + 2 * (4 << 20) + (8 << 20)
    decoded = decode(png, png_how, P)
    assert decoded.image.size == (1159, 1159) and decoded.size == (5792, 5792)
    assert decoded.box == (0.0, 0.0, 5792 / 5, 5792 / 5)
    assert decoded.image.getpixel((1100, 1100)) == (227, 142, 142)  # (200, 30, 30) at 128/255 on white


def test_reduced_rgba_equals_compositing_then_reducing_at_full_size() -> None:
    """The strips give exactly what the full-size conversion (HF's order) then reduce gives."""
    data = big_png((1500, 1300))
    whole = decode_image(data, 10**8, P).reduce(3)
    image = open_image(data, 10**8, P)
    reduced = decode(image, Plan(draft=1, factor=3, cost=0), P).image
    assert (np.asarray(reduced) == np.asarray(whole)).all()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_a_reduced_image_keeps_the_box_on_the_source(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.new("RGB", (2003, 1001), (255, 0, 0)).save(buf, format="PNG", exif=exif.tobytes())
    image = open_image(buf.getvalue(), 10**8, P)
    decoded = decode(image, Plan(draft=1, factor=2, cost=0), P)
    swap = orientation >= 5
    assert decoded.size == ((1001, 2003) if swap else (2003, 1001))
    assert decoded.image.size == ((501, 1002) if swap else (1002, 501))
    x0, y0, x1, y1 = decoded.box
    assert (x1 - x0, y1 - y0) == ((500.5, 1001.5) if swap else (1001.5, 500.5))
    # the half pixel that stands for one source row or column is last unless flipped to the front
    assert {x0, y0} <= {0.0, 0.5}
    assert x0 == (0.5 if orientation in (2, 3, 6, 7) else 0.0)
    assert y0 == (0.5 if orientation in (3, 4, 7, 8) else 0.0)


def test_a_progressive_jpeg_is_budgeted_for_its_full_size_coefficients() -> None:
    """libjpeg keeps all coefficients of a progressive JPEG however small it decodes (measured:
    +101 MiB for a 4:4:4 4096x4096 drafted by 4, against 5 MiB for a baseline one)."""
    image = Image.new("RGB", (2048, 2048), (9, 90, 200))
    costs = []
    for progressive in (False, True):
        buf = io.BytesIO()
        image.save(buf, format="JPEG", progressive=progressive, subsampling=0)
        how = plan(open_image(buf.getvalue(), 10**8, P), CLIP_336)
        assert (how.draft, how.factor) == (2, 1)
        costs.append(how.cost)
    assert costs[1] - costs[0] == 2048 * 2048 * 2 * 3
