"""Safe decoding: the bytes decide the format, pixel limits hold before decoding, EXIF orientation,
transparency onto white like Hugging Face, and corrupt files become 400s, never 500s."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gateway.errors import InvalidRequestError
from gateway.images.decode import decode_image
from tests.images import make_image

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
