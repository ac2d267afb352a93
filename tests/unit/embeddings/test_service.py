"""Embedding input rules and dimension reduction."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from gateway.embeddings.service import (
    _encode_vector,
    check_dimensions,
    parse_input,
    reduce_dimensions,
)
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry


def test_string_becomes_a_list() -> None:
    assert parse_input("a", 10) == ["a"]


@pytest.mark.parametrize(("value", "code"), [
    (msgspec.UNSET, "missing_input"), (None, "missing_input"), ("", "invalid_input"),
    ([], "invalid_input"), ({"a": 1}, "invalid_input"), ([1, 2], "unsupported_input"),
    ([[1], [2]], "unsupported_input"), (["a", None], "invalid_input"),
    (["a"] * 11, "too_many_inputs"),
])
def test_bad_inputs(value: object, code: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_input(value, 10)
    assert info.value.code == code


def test_dimensions_truncate_and_renormalise_when_supported() -> None:
    entry = ModelEntry(id="m", triton_model="m", kind="embedding", embedding_dim=3,
                       supports_dimensions=True)
    v = np.array([[3.0, 4.0, 12.0]], dtype=np.float32) / 13
    assert check_dimensions(2, entry) == 2
    assert np.allclose(reduce_dimensions(v, 2), [[0.6, 0.8]])
    assert check_dimensions(3, entry) is None and check_dimensions(None, entry) is None
    assert reduce_dimensions(v, None) is v


@pytest.mark.parametrize(("dimensions", "supports", "code"), [
    (0, True, "invalid_value"), (-1, True, "invalid_value"), (4, True, "invalid_value"),
    (2, False, "unsupported_parameter"), (4, False, "unsupported_parameter"),
])
def test_bad_dimensions(dimensions: int, supports: bool, code: str) -> None:
    entry = ModelEntry(id="m", triton_model="m", kind="embedding", embedding_dim=3,
                       supports_dimensions=supports)
    with pytest.raises(InvalidRequestError) as info:
        check_dimensions(dimensions, entry)
    assert (info.value.code, info.value.param) == (code, "dimensions")


def test_base64_is_little_endian_float32() -> None:
    import base64

    v = np.array([1.5, -2.0], dtype=np.float32)
    assert base64.b64decode(_encode_vector(v, "base64")) == b"\x00\x00\xc0?\x00\x00\x00\xc0"
