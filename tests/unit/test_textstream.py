"""UTF-8-safe deltas and stop strings in the CPU chat model's text stream."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "model_repository/llamacpp_chat/1/textstream.py"
_spec = importlib.util.spec_from_file_location("textstream", _path)
assert _spec and _spec.loader
textstream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(textstream)
TextStream = textstream.TextStream


def _run(pieces: list[bytes], stop: list[str] | None = None) -> list[str]:
    stream = TextStream(stop)
    out = [stream.push(p) for p in pieces]
    out.append(stream.flush())
    return out


def test_multibyte_characters_split_across_tokens_are_held_back() -> None:
    data = "café 🌊".encode()
    pieces = [data[i:i + 1] for i in range(len(data))]
    out = _run(pieces)
    assert "".join(out) == "café 🌊"
    assert all("\ufffd" not in piece for piece in out)


def test_stop_string_is_cut_and_nothing_after_it_is_sent() -> None:
    out = _run([b"Hello", b" wor", b"ld", b"!", b" more"], stop=["world"])
    assert "".join(out) == "Hello "


def test_partial_stop_prefix_is_released_when_it_is_not_a_stop() -> None:
    stream = TextStream(["STOP"])
    assert stream.push(b"go ST") == "go "
    assert stream.push(b"AR") == "STAR"
    assert not stream.stopped


@pytest.mark.parametrize(("stops", "expected"),
                         [(["a"], "1"), (["xyz", "b"], "1a"), (["2", "ab"], "1"), (["q"], "1ab2")])
def test_earliest_stop_wins(stops: list[str], expected: str) -> None:
    assert "".join(_run([b"1ab2"], stops)) == expected


def test_invalid_bytes_are_replaced_not_fatal() -> None:
    assert "".join(_run([b"ok\xff\xfeok"])) == "ok\ufffd\ufffdok"
