"""Image bytes -> an upright RGB Pillow image, no bigger than preprocessing needs.

Two steps, so that a caller can reserve memory in between: ``open_image`` reads only the header
(format sniffed from the bytes, size, mode, frames) and refuses what is over the limits before a
pixel is decoded; ``decode`` then decodes the first frame only, JPEGs already scaled down by the
decoder (``draft``), and every other format reduced by an integer factor in strips right after
decoding. So a big image costs its decoded size once, in its own mode (a JPEG not even that),
plus memory proportional to what preprocessing needs, not the several full-size copies that
converting, compositing and rotating at full size would make.

An image is reduced only while it stays at least ``REDUCING_GAP`` times larger than the size
preprocessing resizes it to, which is how Pillow's own ``resize(reducing_gap=...)`` keeps the
result close to resampling the full image (see ``preprocess`` and the README's image section for
how close).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

from gateway.errors import InvalidRequestError
from gateway.registry import ImageProcessorConfig

FORMATS = ("JPEG", "PNG", "WEBP")
REDUCING_GAP = 3  # keep at least this many source pixels per output pixel when reducing early
_STRIP_BYTES = 4 << 20  # convert and reduce this much of a decoded image at a time
# PNG text chunks (zTXt, iTXt) may inflate to this much in all; Pillow's default is 64 MiB.
PngImagePlugin.MAX_TEXT_MEMORY = 4 << 20
# Pillow allocates image memory in blocks (16 MiB by default). Blocks of 16 MiB fall under glibc's
# mmap threshold once it has risen, land in per-thread arenas and stay in RSS after the image is
# freed; blocks of 64 MiB are mmapped and go back to the system, so decode threads do not each
# keep the high-water mark of the biggest image they saw (four 34 Mpx PNGs: 280 -> 172 MiB).
Image.core.set_block_size(64 << 20)  # type: ignore[attr-defined]  # Pillow's C module, untyped
# EXIF orientation -> (swaps axes, reverses the stored x axis, reverses the stored y axis)
_ORIENT = {2: (False, True, False), 3: (False, True, True), 4: (False, False, True),
           5: (True, False, False), 6: (True, False, True), 7: (True, True, True),
           8: (True, True, False)}
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_CORRUPT = (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, ZeroDivisionError,
            EOFError, struct.error)


@dataclass(frozen=True)
class Decoded:
    """A decoded image and what it stands for.

    ``image`` is upright RGB, possibly reduced: the whole source (``size`` pixels, upright)
    covers ``box`` within it, ``(0, 0, *image.size)`` when it was not reduced.
    """

    image: Image.Image
    size: tuple[int, int]
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Plan:
    """How ``decode`` will decode an opened image, and about how many bytes that needs at most."""

    draft: int  # JPEG DCT scaling (1, 2, 4, 8)
    factor: int  # then reduced this many times
    cost: int


def sniff_format(data: bytes) -> str | None:
    """The format the leading bytes say (JPEG, PNG, WEBP), whatever the sender claimed."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP header says (VP8X, VP8L or VP8), before anything is allocated.

    libwebp's decoder allocates its canvas when Pillow opens the file, so the pixel cap must hold
    before that.
    """
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _too_large(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="image_too_large")


def open_image(data: bytes, max_pixels: int, param: str, max_frames: int = 100) -> ImageFile.ImageFile:
    """Open an image and check its header; no pixel is decoded.

    Args:
        data: the encoded image.
        max_pixels: the most pixels (width x height) accepted.
        param: the request field, for errors.
        max_frames: the most frames an animated PNG or WebP may have (only the first is used).

    Raises:
        InvalidRequestError: ``unsupported_image_format`` (not JPEG, PNG or WebP),
            ``image_too_large`` (too many pixels or frames), ``invalid_image`` (corrupt header).
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidRequestError("Unsupported or unrecognised image format: use jpeg, png or "
                                  "webp", param=param, code="unsupported_image_format")
    claimed = webp_size(data) if fmt == "WEBP" else None
    if claimed is not None and claimed[0] * claimed[1] > max_pixels:
        raise _too_large(f"Image has {claimed[0]}x{claimed[1]} pixels; the limit is {max_pixels}", param)
    try:
        image = Image.open(io.BytesIO(data), formats=(fmt,))
        frames = int(getattr(image, "n_frames", 1))
    except UnidentifiedImageError as exc:  # the right magic bytes, then nonsense
        raise InvalidRequestError(f"Image data is corrupt ({fmt} header unreadable)",
                                  param=param, code="invalid_image") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own backstop, past twice its limit
        raise _too_large("Image has too many pixels", param) from exc
    except _CORRUPT as exc:
        raise InvalidRequestError("Image data is corrupt", param=param,
                                  code="invalid_image") from exc
    assert isinstance(image, ImageFile.ImageFile)  # Image.open only returns these
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidRequestError("Image has no pixels", param=param, code="invalid_image")
    if width * height > max_pixels:
        raise _too_large(f"Image has {width}x{height} pixels; the limit is {max_pixels}", param)
    if frames > max_frames:
        raise _too_large(f"Image has {frames} frames; the limit is {max_frames}", param)
    return image


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel: one byte for 1/L/P, two for I;16, else four (RGB too)."""
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def reduction(size: tuple[int, int], cfg: ImageProcessorConfig | None) -> int:
    """The largest integer factor that keeps ``size`` ``REDUCING_GAP`` times the resize target.

    The same whichever way EXIF turns the image: for a fixed-size resize the smaller ratio of
    either pairing of the axes counts.
    """
    if cfg is None:
        return 1
    width, height = size
    if cfg.resize_mode == "fixed":
        ratio = min(width / cfg.width, height / cfg.height, width / cfg.height, height / cfg.width)
    else:
        ratio = min(width, height) / cfg.shortest_edge
    return max(1, int(ratio / REDUCING_GAP))


def plan(image: ImageFile.ImageFile, cfg: ImageProcessorConfig | None) -> Plan:
    """How to decode ``image`` for ``cfg`` (full size when None), and its memory estimate.

    The estimate counts the decoded image in its own mode (four times for WebP: libwebp's canvas
    and previous frame, the bytes Pillow copies out and its image, 4.1x measured), a progressive
    JPEG's full-size coefficients (libjpeg keeps them however small it decodes), a strip being
    converted, the reduced RGB image twice (EXIF rotation copies it) and some slack for the
    preprocessing arrays.
    """
    width, height = image.size
    factor = reduction(image.size, cfg)
    draft, coefficients = 1, 0
    if image.format == "JPEG":
        draft = next(s for s in (8, 4, 2, 1) if factor >= s)
        factor //= draft
        if image.info.get("progressive"):  # libjpeg keeps every DCT coefficient: 2 bytes each
            coefficients = width * height * 2 * len(image.getbands())
        width, height = -(-width // draft), -(-height // draft)
    decoded = width * height * _bytes_per_pixel(image.mode) * (4 if image.format == "WEBP" else 1)
    decoded += coefficients
    reduced = -(-width // factor) * -(-height // factor) * 4
    return Plan(draft=draft, factor=factor, cost=decoded + 2 * reduced + 2 * _STRIP_BYTES + (8 << 20))


def _rgb(image: Image.Image) -> Image.Image:
    """RGB the way Hugging Face's ``convert_to_rgb`` does it: transparency onto white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _rgb_reduced(image: Image.Image, factor: int) -> Image.Image:
    """``_rgb(image).reduce(factor)``, a strip at a time: no full-size copy is ever made."""
    if image.mode == "RGB":
        return image if factor == 1 else image.reduce(factor)
    width, height = image.size
    rows = max(1, _STRIP_BYTES // (4 * width) // factor) * factor
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = _rgb(image.crop((0, top, width, min(height, top + rows))))
        out.paste(strip if factor == 1 else strip.reduce(factor), (0, top // factor))
    return out


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except _CORRUPT:  # unreadable EXIF: as if there were none, like Pillow's exif_transpose
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _upright(image: Image.Image, orientation: int, scale: float, size: tuple[int, int]) -> Decoded:
    """Turn a (reduced) image upright and say where the whole source lies within it.

    A reduced image's last row and column stand for fewer source pixels; after a flip they come
    first, so the box starts a fraction of a pixel in.
    """
    width, height = size
    span_x, span_y = width / scale, height / scale
    swap, flip_x, flip_y = _ORIENT.get(orientation, (False, False, False))
    x0 = image.width - span_x if flip_x else 0.0
    y0 = image.height - span_y if flip_y else 0.0
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    if swap:
        return Decoded(image, (height, width), (y0, x0, y0 + span_y, x0 + span_x))
    return Decoded(image, (width, height), (x0, y0, x0 + span_x, y0 + span_y))


def decode(image: ImageFile.ImageFile, how: Plan, param: str) -> Decoded:
    """Decode the first frame of an opened image as ``how`` says.

    Args:
        image: from ``open_image``.
        how: from ``plan``.
        param: the request field, for errors.

    Returns:
        The upright RGB image, reduced where ``how`` says, and where the source lies in it.

    Raises:
        InvalidRequestError: ``invalid_image`` (corrupt or truncated), ``image_too_large``.
    """
    size, reduced, scale = image.size, None, 1
    try:
        if how.draft > 1:  # the scale libjpeg takes, which is the planned one in practice
            drafted = image.draft(image.mode, (size[0] // how.draft, size[1] // how.draft))
            scale = round(size[0] / drafted[1][2]) if drafted else 1
        image.load()
        orientation = _orientation(image)
        reduced = _rgb_reduced(image, how.factor)
    except Image.DecompressionBombError as exc:
        raise _too_large("Image has too many pixels", param) from exc
    except _CORRUPT as exc:
        raise InvalidRequestError("Image data is corrupt or truncated", param=param,
                                  code="invalid_image") from exc
    finally:
        if reduced is not image:
            image.close()  # the full-size pixels go now, not when the caller lets go
    return _upright(reduced, orientation, scale * how.factor, size)


def decode_image(data: bytes, max_pixels: int, param: str,
                 cfg: ImageProcessorConfig | None = None) -> Image.Image:
    """``open_image`` then ``decode``: an upright RGB image, reduced for ``cfg`` if given.

    Raises:
        InvalidRequestError: see ``open_image`` and ``decode``.
    """
    image = open_image(data, max_pixels, param)
    return decode(image, plan(image, cfg), param).image

