"""``data:image/<jpeg|png|webp>;base64,...`` URIs: strict base64, size capped before decoding."""

from __future__ import annotations

import base64
import binascii
import re

from gateway.errors import InvalidRequestError

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,",
                       re.IGNORECASE)
ALLOWED_MIME = {"image/jpeg", "image/jpg", "image/png", "image/webp"}


def check_data_uri(uri: str, max_bytes: int, param: str) -> int:
    """Check a data URI's header, type and size without decoding it.

    Returns:
        Where the base64 payload starts.

    Raises:
        InvalidRequestError: not a base64 data URI, an unsupported type, or too large.
    """
    match = _DATA_URI.match(uri)
    if match is None:
        raise InvalidRequestError("Image data URIs must look like data:image/png;base64,...",
                                  param=param, code="invalid_image_url")
    mime = match.group("mime").lower()
    if mime not in ALLOWED_MIME:
        raise InvalidRequestError(f"Unsupported image type '{mime}': use jpeg, png or webp",
                                  param=param, code="unsupported_image_format")
    if len(uri) - match.end() > (max_bytes + 2) // 3 * 4:
        raise InvalidRequestError(f"Image is larger than {max_bytes} bytes", param=param,
                                  code="image_too_large")
    return match.end()


def decode_data_uri(uri: str, max_bytes: int, param: str) -> bytes:
    """The bytes of a base64 image data URI (strict base64: no whitespace, padding required).

    Raises:
        InvalidRequestError: not a base64 data URI, an unsupported type, too large, bad base64.
    """
    start = check_data_uri(uri, max_bytes, param)
    try:
        data = base64.b64decode(uri[start:], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("Image data URI is not valid base64", param=param,
                                  code="invalid_image") from exc
    if not data:
        raise InvalidRequestError("Image data URI is empty", param=param, code="invalid_image")
    return data
