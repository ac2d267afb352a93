"""The stream decoder on real tritonclient results: delta and cumulative text, U+FFFD, stops,
running counts, flags-only finals, the finish reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.backends.base import Delta
from gateway.triton.stream import Response, StreamDecoder, read_response
from tests.fake_triton import infer_result


def _run(responses: Sequence[Response], *, cumulative: bool = False, max_tokens: int = 16,
         stops: Sequence[str] = (), prompt_tokens: int | None = None,
         count: Callable[[str], int | None] | None = None) -> list[Delta]:
    decoder = StreamDecoder(cumulative=cumulative, max_tokens=max_tokens, stops=stops,
                            prompt_tokens=prompt_tokens, count=count)
    out = []
    for response in responses:
        delta = decoder.feed(response)
        if delta is not None:
            out.append(delta)
        if decoder.final:
            break
    out.append(decoder.finish())
    return out


def _text(deltas: Sequence[Delta]) -> list[str]:
    return [d.text for d in deltas]


def test_read_response_takes_text_counts_reason_and_the_final_flag() -> None:
    got = read_response(infer_result("Café", final=True, input_tokens=7, output_tokens=3,
                                     finish_reason="length"))
    assert got == Response(text="Café".encode(), final=True, input_tokens=7, output_tokens=3,
                           finish_reason="length")
    empty = read_response(infer_result(None))
    assert empty == Response(text=b"", final=False)


def test_delta_text_holds_a_character_split_across_responses() -> None:
    data = "é🌊".encode()  # 2 + 4 bytes
    parts = [Response(text=data[:1]), Response(text=data[1:3]), Response(text=data[3:])]
    deltas = _run(parts)
    assert _text(deltas) == ["é", "🌊", ""]


def test_cumulative_text_with_a_pending_character_is_never_sent_twice() -> None:
    # NVIDIA's postprocessing decodes every token each step: "é" is U+FFFD until it completes.
    seq = ["Caf", "Caf\ufffd", "Café", "Café ok"]
    deltas = _run([Response(text=s.encode()) for s in seq], cumulative=True)
    assert "".join(_text(deltas)) == "Café ok"
    assert _text(deltas) == ["Caf", "é", " ok", ""]


def test_cumulative_text_keeps_an_unresolved_replacement_at_the_end() -> None:
    deltas = _run([Response(text=b"ab"), Response(text="ab\ufffd".encode(), final=True)],
                  cumulative=True)
    assert _text(deltas) == ["ab", "\ufffd"]
    assert deltas[-1].finish_reason == "stop"


def test_cumulative_text_never_resends_when_sent_text_changes() -> None:
    deltas = _run([Response(text=b"Hello wor"), Response(text=b"Hello World!")], cumulative=True)
    assert "".join(_text(deltas)) == "Hello wor" + "ld!"


def test_model_counts_are_summed_per_response_and_running() -> None:
    parts = [Response(text=b"a", input_tokens=5, output_tokens=1),
             Response(text=b"b", output_tokens=2),
             Response(text=b"", output_tokens=0, final=True, finish_reason="length")]
    deltas = _run(parts, prompt_tokens=99)
    assert [(d.prompt_tokens, d.completion_tokens) for d in deltas] == [(5, 1), (5, 3), (5, 3)]
    assert deltas[-1].finish_reason == "length"


def test_without_model_counts_the_running_count_is_responses_and_the_final_uses_the_tokenizer() -> None:
    parts = [Response(text=b"one "), Response(text=b"two "), Response(text=b"three")]
    deltas = _run(parts, prompt_tokens=4, count=lambda text: len(text.split()) * 10)
    assert [d.completion_tokens for d in deltas[:-1]] == [1, 2, 3]
    assert deltas[-1].completion_tokens == 30
    assert all(d.prompt_tokens == 4 for d in deltas)


def test_finish_reason_falls_back_to_length_at_max_tokens() -> None:
    at_limit = _run([Response(text=b"x", output_tokens=4)], max_tokens=4)
    below = _run([Response(text=b"x", output_tokens=3)], max_tokens=4)
    assert at_limit[-1].finish_reason == "length"
    assert below[-1].finish_reason == "stop"


def test_stop_sequence_is_cut_and_ends_the_stream() -> None:
    parts = [Response(text=b"Hello EN"), Response(text=b"D and more"), Response(text=b"never")]
    deltas = _run(parts, stops=["END"], max_tokens=3)
    assert "".join(_text(deltas)) == "Hello "
    assert deltas[-1].finish_reason == "stop"  # not "length", though 3 responses were read


def test_flags_only_final_response_sends_no_text_but_ends() -> None:
    decoder = StreamDecoder(cumulative=True, max_tokens=8)
    assert decoder.feed(Response(text=b"hi", output_tokens=1)) is not None
    assert decoder.feed(Response(final=True)) is None
    assert decoder.final
    last = decoder.finish()
    assert (last.text, last.finish_reason, last.completion_tokens) == ("", "stop", 1)
