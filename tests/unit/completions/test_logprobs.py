"""Legacy logprobs built from the backends' TokenLogprob lists, text_offset included."""

from __future__ import annotations

import math

from gateway.backends.base import TokenLogprob, TopLogprob
from gateway.completions.logprobs import FLOOR, LegacyLogprobs


def _tok(token: str, logprob: float, *top: tuple[str, float], raw: bytes | None = None) -> TokenLogprob:
    alts = tuple(TopLogprob(token=t, bytes=t.encode(), logprob=lp) for t, lp in top)
    return TokenLogprob(token=token, bytes=raw if raw is not None else token.encode(), logprob=logprob, top=alts)


def test_tokens_logprobs_top_and_offsets() -> None:
    legacy = LegacyLogprobs(top=2)
    piece = legacy.add([_tok("Hi", -0.5, ("Hi", -0.5), ("Hey", -1.5), ("Yo", -3.0)),
                        _tok(" there", -0.25, ("!", -0.1), (" there", -0.25))])
    assert piece.tokens == ["Hi", " there"]
    assert piece.token_logprobs == [-0.5, -0.25]
    assert piece.top_logprobs == [{"Hi": -0.5, "Hey": -1.5}, {"!": -0.1, " there": -0.25}]
    assert piece.text_offset == [0, 2]


def test_the_sampled_token_is_added_when_not_among_the_top() -> None:
    legacy = LegacyLogprobs(top=1)
    piece = legacy.add([_tok("b", -2.0, ("a", -0.1), ("c", -0.2))])
    assert piece.top_logprobs == [{"a": -0.1, "b": -2.0}]


def test_zero_alternatives_still_lists_the_sampled_token() -> None:
    piece = LegacyLogprobs(top=0).add([_tok("x", -0.7, ("y", -0.1))])
    assert piece.top_logprobs == [{"x": -0.7}]


def test_alternatives_are_taken_likeliest_first_whatever_their_order() -> None:
    piece = LegacyLogprobs(top=2).add([_tok("a", -1.0, ("c", -3.0), ("a", -1.0), ("b", -0.5))])
    assert list(piece.top_logprobs[0].items()) == [("b", -0.5), ("a", -1.0)]


def test_offsets_continue_across_chunks_and_total_holds_everything() -> None:
    legacy = LegacyLogprobs(top=0, offset=5)
    first = legacy.add([_tok("ab", -1.0)])
    second = legacy.add([_tok("cde", -2.0), _tok("f", -3.0)])
    assert first.text_offset == [5]
    assert second.text_offset == [7, 10]
    assert legacy.total.tokens == ["ab", "cde", "f"]
    assert legacy.total.text_offset == [5, 7, 10]
    assert legacy.total.token_logprobs == [-1.0, -2.0, -3.0]


def test_a_character_split_over_tokens_starts_where_the_character_starts() -> None:
    euro = "€".encode()  # 3 bytes, one character
    legacy = LegacyLogprobs(top=0)
    piece = legacy.add([_tok("a", -1.0), _tok("\ufffd", -1.0, raw=euro[:2]),
                        _tok("\ufffd", -1.0, raw=euro[2:]), _tok("b", -1.0)])
    assert piece.text_offset == [0, 1, 1, 2]


def test_tokens_without_bytes_count_their_text() -> None:
    piece = LegacyLogprobs(top=0).add([_tok("héllo", -1.0, raw=b""), _tok("x", -1.0, raw=b"")])
    assert piece.text_offset == [0, 5]


def test_non_finite_logprobs_become_openais_floor() -> None:
    piece = LegacyLogprobs(top=1).add([_tok("a", -math.inf, ("b", math.nan)), _tok("c", -1e6)])
    assert piece.token_logprobs == [FLOOR, FLOOR]
    assert piece.top_logprobs == [{"b": FLOOR, "a": FLOOR}, {"c": FLOOR}]
    assert FLOOR == -9999.0
