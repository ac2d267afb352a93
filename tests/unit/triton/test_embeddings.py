"""The Triton side of embeddings: request tensors and the reassembly of chunked answers."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import BadGatewayError
from gateway.triton.embeddings import build_input, parse_outputs


def test_input_is_one_row_per_string_in_utf8() -> None:
    tensor = build_input(["a", "é ü", ""])
    assert tensor.name() == "text_input" and tensor.datatype() == "BYTES"
    assert tensor.shape() == [3, 1]
    raw = tensor._get_content()
    assert raw == b"".join(len(s).to_bytes(4, "little") + s for s in (b"a", "é ü".encode(), b""))


def test_chunks_are_concatenated_in_order() -> None:
    parts = [(np.ones((2, 3), np.float32), np.array([[4], [5]], np.int32)),
             (np.zeros((1, 3), np.float32), np.array([[6]], np.int32))]
    result = parse_outputs(parts, 3)
    assert result.vectors.shape == (3, 3) and result.vectors.dtype == np.float32
    assert result.vectors[:, 0].tolist() == [1, 1, 0]
    assert result.token_counts == [4, 5, 6]
    assert all(type(n) is int for n in result.token_counts)


def test_a_short_answer_is_a_bad_gateway() -> None:
    parts = [(np.ones((2, 3), np.float32), np.array([[4], [5]], np.int32))]
    with pytest.raises(BadGatewayError):
        parse_outputs(parts, 3)
