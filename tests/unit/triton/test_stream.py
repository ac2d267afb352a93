"""The stream decoder on real tritonclient results: delta and cumulative text, U+FFFD, stops,
running counts, flags-only finals, the finish reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.backends.base import Delta
from gateway.triton.stops import StopTrimmer
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


class _Param:
    def __init__(self, value: bool) -> None:
        self.bool_param = value


class _Result:
    """Just what ``read_response`` reads from a tritonclient ``InferResult``."""

    def __init__(self, outputs: dict[str, np.ndarray], params: dict[str, _Param]) -> None:
        self.outputs, self.params = outputs, params

    def get_response(self) -> SimpleNamespace:
        return SimpleNamespace(parameters=self.params)

    def as_numpy(self, name: str) -> np.ndarray | None:
        return self.outputs.get(name)


def test_read_response_joins_every_text_item_and_takes_the_first_count() -> None:
    got = read_response(_Result({
        "text_output": np.array([[b"ab", "c\u00e9"]], dtype=object),
        "num_input_tokens": np.array([[7, 9]], dtype=np.int32),
        "num_output_tokens": np.array([[2, 5]], dtype=np.int32),
        "finish_reason": np.array([[b"\xffstop", b"length"]], dtype=object),
    }, {"triton_final_response": _Param(True)}))
    assert got == Response(text="abc\u00e9".encode(), final=True, input_tokens=7, output_tokens=2,
                           finish_reason="\ufffdstop")


def test_read_response_without_flag_or_with_empty_outputs() -> None:
    empty = np.zeros((1, 0), dtype=np.int32)
    got = read_response(_Result({"num_input_tokens": empty, "num_output_tokens": empty,
                                 "finish_reason": np.zeros((1, 0), dtype=object)}, {}))
    assert got == Response()
    blank = read_response(_Result({"finish_reason": np.array([[b""]], dtype=object)},
                                  {"triton_final_response": _Param(False)}))
    assert (blank.finish_reason, blank.final) == (None, False)
    assert read_response(_Result({"finish_reason": np.array([["length"]], dtype=object)},
                                 {})).finish_reason == "length"


def test_a_new_decoder_has_sent_nothing() -> None:
    decoder = StreamDecoder(cumulative=False, max_tokens=4)
    assert (decoder.responses, decoder.final, decoder.prompt_tokens, decoder.completion_tokens) == (
        0, False, None, 0)
    last = decoder.finish()
    assert last == Delta(text="", finish_reason="stop", prompt_tokens=None, completion_tokens=0)


def test_running_counts_without_model_counts_and_the_prompt_from_the_model() -> None:
    decoder = StreamDecoder(cumulative=False, max_tokens=4, prompt_tokens=3)
    assert decoder.feed(Response(text=b"a")) == Delta(text="a", prompt_tokens=3, completion_tokens=1)
    assert decoder.feed(Response(text=b"b", input_tokens=6)) == Delta(
        text="b", prompt_tokens=6, completion_tokens=2)
    assert decoder.feed(Response(text=b"c")) == Delta(text="c", prompt_tokens=6, completion_tokens=3)
    assert decoder.finish() == Delta(text="", finish_reason="stop", prompt_tokens=6, completion_tokens=3)


def test_a_model_count_of_zero_is_still_the_models_count() -> None:
    decoder = StreamDecoder(cumulative=False, max_tokens=4, count=lambda text: 99)
    assert decoder.feed(Response(text=b"a", output_tokens=0)) == Delta(
        text="a", prompt_tokens=None, completion_tokens=0)
    assert decoder.finish().completion_tokens == 0


def test_the_tokenizer_counts_all_sent_text_and_none_falls_back_to_responses() -> None:
    seen: list[str] = []

    def count(text: str) -> int | None:
        seen.append(text)
        return None

    deltas = _run([Response(text=b"ab"), Response(text=b"cEN")], stops=["END"], count=count)
    assert _text(deltas) == ["ab", "c", "EN"]  # "EN" held until the end: not a stop after all
    assert seen == ["abcEN"]
    assert deltas[-1].completion_tokens == 2


@pytest.mark.parametrize(("reason", "output_tokens", "expected"), [
    ("stop", 8, "stop"), ("length", 1, "length"), ("cancelled", 1, "stop"),
    ("cancelled", 4, "length"), (None, 5, "length"), (None, 3, "stop"),
])
def test_finish_reason_from_the_model_or_from_the_count(reason: str | None, output_tokens: int,
                                                        expected: str) -> None:
    deltas = _run([Response(text=b"x", output_tokens=output_tokens, finish_reason=reason)], max_tokens=4)
    assert deltas[-1].finish_reason == expected


def test_a_later_response_without_a_reason_keeps_the_earlier_one() -> None:
    deltas = _run([Response(text=b"x", finish_reason="length"), Response(text=b"y", finish_reason="")],
                  max_tokens=99)
    assert deltas[-1].finish_reason == "length"


def test_a_stop_sequence_beats_the_models_reason() -> None:
    deltas = _run([Response(text=b"abEND", finish_reason="length")], stops=["END"])
    assert _text(deltas) == ["ab", ""]
    assert deltas[-1].finish_reason == "stop"


def test_delta_text_replaces_bad_bytes_and_flushes_a_cut_character() -> None:
    deltas = _run([Response(text=b"a\xffb"), Response(text=b"c\xc3")])
    assert _text(deltas) == ["a\ufffdb", "c", "\ufffd"]


def test_cumulative_text_that_changed_sends_no_tail() -> None:
    deltas = _run([Response(text=b"Hello wor"), Response(text="Hello W\ufffd".encode())],
                  cumulative=True)
    assert _text(deltas) == ["Hello wor", ""]


def test_cumulative_tail_goes_through_the_stops() -> None:
    deltas = _run([Response(text=b"okE"), Response(text="okE\ufffd".encode())], cumulative=True,
                  stops=["E\ufffd"])
    assert _text(deltas) == ["ok", ""]
    assert deltas[-1].finish_reason == "stop"


def test_stop_trimmer_ignores_empty_stops() -> None:
    trimmer = StopTrimmer(["", "x"])
    assert trimmer.stops == ("x",)
    assert trimmer.hit is False
    passthrough = StopTrimmer([""])
    assert passthrough.push("abc") == "abc"
    assert passthrough.flush() == ""


def test_stop_trimmer_cuts_at_the_earliest_stop_and_then_sends_nothing() -> None:
    trimmer = StopTrimmer(["cd", "b"])
    assert trimmer.push("abcd") == "a"
    assert trimmer.hit is True
    assert trimmer.push("more") == ""
    assert trimmer.flush() == ""


def test_stop_trimmer_holds_the_longest_partial_stop() -> None:
    trimmer = StopTrimmer(["ab", "xyz"])
    assert trimmer.push("qxy") == "q"
    assert trimmer.push("w") == "xyw"
    assert trimmer.push("aab") == "a"
    assert trimmer.hit is True
    longest = StopTrimmer(["aab"])
    assert longest.push("xaa") == "x"
    assert longest.push("c") == "aac"
    short = StopTrimmer(["abcdef"])
    assert short.push("ab") == ""
    assert short.flush() == "ab"
    assert short.flush() == ""


def test_stop_trimmer_finds_a_stop_split_across_pieces() -> None:
    trimmer = StopTrimmer(["bc"])
    assert trimmer.push("ab") == "a"
    assert trimmer.push("c!") == ""
    assert trimmer.hit is True


def test_a_cumulative_decoder_with_no_responses_sends_nothing() -> None:
    last = StreamDecoder(cumulative=True, max_tokens=4).finish()
    assert last == Delta(text="", finish_reason="stop", prompt_tokens=None, completion_tokens=0)


def test_a_stop_sequence_ends_the_call_at_once() -> None:
    decoder = StreamDecoder(cumulative=False, max_tokens=9, stops=["END"])
    assert decoder.feed(Response(text=b"aEND")) == Delta(text="a", completion_tokens=1)
    assert decoder.final is True


def test_cumulative_text_replaces_bad_bytes() -> None:
    deltas = _run([Response(text=b"ab\xff", final=True)], cumulative=True)
    assert _text(deltas) == ["ab", "\ufffd"]


def test_stop_trimmer_cuts_at_the_first_occurrence() -> None:
    assert StopTrimmer(["b"]).push("abab") == "a"


def test_stop_trimmer_tries_every_partial_length() -> None:
    trimmer = StopTrimmer(["abcd"])
    assert trimmer.push("xab") == "x"
    assert trimmer.flush() == "ab"


def test_model_done_only_after_the_models_final_response() -> None:
    decoder = StreamDecoder(cumulative=False, max_tokens=9, stops=["END"])
    assert decoder.model_done is False
    decoder.feed(Response(text=b"aEND"))
    assert (decoder.final, decoder.model_done) == (True, False)  # a stop: the model still runs
    decoder.feed(Response(final=True))
    assert decoder.model_done is True
    decoder.feed(Response(text=b"late"))
    assert (decoder.final, decoder.model_done) == (True, True)  # once done, always done


# ---- log-probabilities on the deltas ------------------------------------------------------------

def _with_logprobs(text: bytes | str, log_probs: Sequence[float], *, token_bytes: Sequence[bytes] | None = None,
                   top: Sequence[Sequence[tuple[bytes, float]]] = (), shape: Sequence[int] | None = None,
                   **kw: object) -> Response:
    """A real InferResult with NVIDIA's output_log_probs (and our token bytes / top outputs)."""
    from tritonclient.grpc import InferResult  # noqa: PLC0415
    from tritonclient.utils import serialize_byte_tensor  # noqa: PLC0415

    pb = infer_result(text, **kw).get_response()  # type: ignore[arg-type]

    def add(name: str, datatype: str, dims: Sequence[int], raw: bytes) -> None:
        pb.outputs.add(name=name, datatype=datatype, shape=list(dims))
        pb.raw_output_contents.append(raw)

    values = np.array(log_probs, dtype=np.float32)
    add("output_log_probs", "FP32", shape or [1, len(values)], values.tobytes())
    if token_bytes is not None:
        add("output_token_bytes", "BYTES", [1, len(token_bytes)],
            serialize_byte_tensor(np.array([list(token_bytes)], dtype=object)).item())
    if top:
        k = len(top[0])
        add("top_log_probs", "FP32", [1, len(top), k],
            np.array([[v for _b, v in row] for row in top], dtype=np.float32).tobytes())
        add("top_token_bytes", "BYTES", [1, len(top), k],
            serialize_byte_tensor(np.array([[[b for b, _v in row] for row in top]], dtype=object)).item())
    return read_response(InferResult(pb))


def _lp(deltas: Sequence[Delta]) -> list[list[tuple[bytes, float]]]:
    return [[(t.bytes, round(t.logprob, 3)) for t in (d.logprobs or [])] for d in deltas]


def test_nvidias_padded_beam_shape_is_cut_to_the_responses_tokens() -> None:
    r = _with_logprobs("ab", [-0.5, -0.25, -1.0, -1.0], shape=[1, 1, 4], output_tokens=2)
    assert r.log_probs == (-0.5, -0.25) and r.token_bytes is None


def test_each_token_goes_with_the_delta_that_completes_its_character() -> None:
    # Token bytes given; "é" is split over two tokens, its first byte held until whole.
    responses = [_with_logprobs(b"Caf\xc3", [-0.1, -0.2], token_bytes=[b"Ca", b"f\xc3"]),
                 _with_logprobs(b"\xa9!", [-0.3, -0.4], token_bytes=[b"\xa9", b"!"], final=True)]
    deltas = _run(responses)
    assert _text(deltas) == ["Caf", "é!", ""]
    assert _lp(deltas) == [[(b"Ca", -0.1)], [(b"f\xc3", -0.2), (b"\xa9", -0.3), (b"!", -0.4)], []]


def test_tokens_after_a_stop_cut_are_dropped() -> None:
    responses = [_with_logprobs("Hi", [-0.1], token_bytes=[b"Hi"]),
                 _with_logprobs(" EN", [-0.2], token_bytes=[b" EN"]),
                 _with_logprobs("D more", [-0.3, -0.4], token_bytes=[b"D", b" more"], final=True)]
    deltas = _run(responses, stops=("END",))
    assert "".join(_text(deltas)) == "Hi "
    assert [t for d in _lp(deltas) for t in d] == [(b"Hi", -0.1), (b" EN", -0.2)]


def test_top_alternatives_come_with_their_token() -> None:
    r = _with_logprobs("ab", [-0.1, -0.7], token_bytes=[b"a", b"b"],
                       top=[[(b"a", -0.1), (b"c", -2.5)], [(b"x", -0.6), (b"b", -0.7)]], final=True)
    deltas = _run([r])
    tokens = [t for d in deltas for t in (d.logprobs or [])]
    assert [(t.token, [(a.token, round(a.logprob, 2)) for a in t.top]) for t in tokens] == [
        ("a", [("a", -0.1), ("c", -2.5)]), ("b", [("x", -0.6), ("b", -0.7)])]


def test_without_token_bytes_a_tokens_text_is_its_responses_text() -> None:
    # NVIDIA's BLS in delta mode: one token per response, no bytes; cumulative the same by diff.
    delta_mode = _run([_with_logprobs("He", [-0.5]), _with_logprobs("y", [-1.5], final=True)])
    assert _lp(delta_mode) == [[(b"He", -0.5)], [(b"y", -1.5)], []]
    cumulative = _run([_with_logprobs("Caf", [-0.5]), _with_logprobs("Caf\ufffd", [-0.25]),
                       _with_logprobs("Café", [-0.75], final=True)], cumulative=True)
    assert _text(cumulative) == ["Caf", "é", ""]
    assert _lp(cumulative) == [[(b"Caf", -0.5)], [(b"", -0.25), ("é".encode(), -0.75)], []]


def test_no_logprobs_outputs_means_no_logprobs_on_deltas() -> None:
    deltas = _run([Response(text=b"a", final=True)])
    assert all(d.logprobs is None for d in deltas)
