"""Image bytes -> an RGB Pillow image: format sniffed from the bytes, pixel limit, EXIF orientation."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.errors import InvalidRequestError

FORMATS = {"JPEG", "PNG", "WEBP"}


def decode_image(data: bytes, max_pixels: int, param: str) -> Image.Image:
    """Decode and normalise an image.

    Raises:
        InvalidRequestError: unsupported format, corrupt data, or more than ``max_pixels``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidRequestError(
                    f"Image has {width}x{height} pixels; the limit is {max_pixels}", param=param,
                    code="image_too_large")
            image.load()
    except InvalidRequestError:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidRequestError("Unsupported or unrecognised image format: use jpeg, png or webp",
                                  param=param, code="unsupported_image_format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidRequestError("Image is too large to decode", param=param,
                                  code="image_too_large") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequestError("Image data is corrupt or truncated", param=param,
                                  code="invalid_image") from exc
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB")
