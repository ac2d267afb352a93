"""JSON responses encoded once with one reused msgspec encoder."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from litestar import Response

_encoder = msgspec.json.Encoder()

JSON = "application/json"


def json_response(body: object, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response[bytes]:
    """``body`` (a struct, dict or list) as an ``application/json`` response."""
    return Response(_encoder.encode(body), status_code=status, media_type=JSON,
                    headers=dict(headers) if headers else None)
