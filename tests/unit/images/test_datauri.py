"""``data:`` image URIs: header, type, strict base64, and the size cap applied before decoding."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import InvalidRequestError
from gateway.images.datauri import check_data_uri, decode_data_uri
from tests.images import data_uri, make_image

P = "messages[0].content[2].image_url.url"


@pytest.mark.parametrize(("uri", "code"), [
    ("data:text/plain;base64,aGk=", "unsupported_image_format"),
    ("data:image/svg+xml;base64,PHN2Zz4=", "unsupported_image_format"),
    ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "unsupported_image_format"),
    ("data:image/png,rawdata", "invalid_image_url"),  # not base64
    ("data:;base64,aGk=", "invalid_image_url"),
    ("data:image/png;base64", "invalid_image_url"),
    ("data:image/png;base64,aGk", "invalid_image"),  # missing padding: strict
    ("data:image/png;base64,a b=", "invalid_image"),  # whitespace
    ("data:image/png;base64,aGk=\n", "invalid_image"),
    ("data:image/png;base64,-_-_", "invalid_image"),  # the URL-safe alphabet
    ("data:image/png;base64,aGk=aGk=", "invalid_image"),  # padding in the middle
    ("data:image/png;base64,", "invalid_image"),
    ("data:image/png;base64," + "A" * 1340, "image_too_large"),
])
def test_errors(uri: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_data_uri(uri, 1000, P)
    assert info.value.code == code and info.value.param == P
    payload = uri.partition(",")[2]
    assert not payload or payload not in info.value.message  # never echo the payload


def test_roundtrip_types_and_parameters() -> None:
    png = make_image()
    assert decode_data_uri(data_uri(png), 10**6, P) == png
    for mime in ("image/jpeg", "image/jpg", "IMAGE/WEBP", "image/png;charset=binary"):
        assert decode_data_uri(data_uri(png, mime), 10**6, P) == png  # the bytes decide later


def test_size_cap_is_exact_and_checked_before_decoding() -> None:
    exactly = data_uri(b"\x01" * 999)  # 999 bytes -> 1332 base64 characters
    assert decode_data_uri(exactly, 999, P) == b"\x01" * 999
    with pytest.raises(InvalidRequestError) as info:
        decode_data_uri(data_uri(b"\x01" * 1002), 999, P)
    assert info.value.code == "image_too_large"
    # A huge payload of garbage is refused by its length alone, without decoding.
    garbage = "data:image/png;base64," + "!" * 10_000_000
    with pytest.raises(InvalidRequestError) as info:
        check_data_uri(garbage, 1000, P)
    assert info.value.code == "image_too_large"


def test_payload_offset() -> None:
    uri = data_uri(b"xyz", "image/webp")
    assert base64.b64decode(uri[check_data_uri(uri, 100, P):]) == b"xyz"
