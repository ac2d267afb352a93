"""Image bytes -> an RGB Pillow image: format sniffed from the bytes, pixel limit, EXIF orientation."""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.errors import InvalidRequestError

FORMATS = ("JPEG", "PNG", "WEBP")


def sniff_format(data: bytes) -> str | None:
    """The format the leading bytes say (JPEG, PNG, WEBP), whatever the sender claimed."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _rgb(image: Image.Image) -> Image.Image:
    """RGB the way Hugging Face's ``convert_to_rgb`` does it: transparency onto white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_pixels: int, param: str) -> Image.Image:
    """Decode and normalise one image; the claimed type is ignored, the bytes decide.

    Args:
        data: the encoded image.
        max_pixels: the most pixels (width x height) accepted, checked from the header before
            any pixel is decoded.
        param: the request field, for errors.

    Returns:
        An upright RGB image.

    Raises:
        InvalidRequestError: ``unsupported_image_format`` (not JPEG, PNG or WebP),
            ``image_too_large`` (too many pixels), ``invalid_image`` (corrupt or truncated).
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidRequestError("Unsupported or unrecognised image format: use jpeg, png or "
                                  "webp", param=param, code="unsupported_image_format")
    try:
        image = Image.open(io.BytesIO(data), formats=(fmt,))
    except UnidentifiedImageError as exc:  # the right magic bytes, then nonsense
        raise InvalidRequestError(f"Image data is corrupt ({fmt} header unreadable)",
                                  param=param, code="invalid_image") from exc
    except Image.DecompressionBombError as exc:
        raise InvalidRequestError("Image has too many pixels", param=param,
                                  code="image_too_large") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequestError("Image data is corrupt", param=param,
                                  code="invalid_image") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidRequestError("Image has no pixels", param=param, code="invalid_image")
    if width * height > max_pixels:
        raise InvalidRequestError(f"Image has {width}x{height} pixels; the limit is {max_pixels}",
                                  param=param, code="image_too_large")
    try:
        image.load()
        return _rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as exc:
        raise InvalidRequestError("Image has too many pixels", param=param,
                                  code="image_too_large") from exc
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, ZeroDivisionError,
            struct.error) as exc:
        raise InvalidRequestError("Image data is corrupt or truncated", param=param,
                                  code="invalid_image") from exc

