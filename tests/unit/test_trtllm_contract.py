"""The gateway on NVIDIA's contracts, as pure functions: stop sequences cut from streamed text, and
request tensors for the BLS/ensemble and LLM API models as Triton reports their configs."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from build_engines.trtllm import repository
from build_engines.trtllm.config import TrtllmModel
from gateway.backends.base import GenerationRequest
from gateway.registry import ModelEntry
from gateway.triton.stops import StopTrimmer
from gateway.triton.tensors import ModelSignature, build_inputs


@pytest.mark.parametrize(("stops", "pieces", "sent", "hit"), [
    ((), ["ab", "cd"], ["ab", "cd"], False),
    (("delta",), ["alpha de", "lta x"], ["alpha ", ""], True),       # split across pieces
    (("delta",), ["a", "d", "e", "x"], ["a", "", "", "dex"], False),  # a false start is released
    (("xy", "b"), ["aaxb", "y"], ["aax"], True),                      # the earliest stop wins
    (("</s>",), ["ok</", "s>tail"], ["ok", ""], True),
])
def test_stop_trimmer(stops: tuple[str, ...], pieces: list[str], sent: list[str], hit: bool) -> None:
    trimmer = StopTrimmer(stops)
    got = [trimmer.push(p) for p in pieces][:len(sent)]
    assert got == sent and trimmer.hit == hit
    assert trimmer.push("more") == ("" if hit else "more")


def test_stop_trimmer_flushes_a_held_tail_at_the_end() -> None:
    trimmer = StopTrimmer(["delta"])
    assert trimmer.push("so del") == "so "
    assert trimmer.flush() == "del" and not trimmer.hit


def _triton_view(text: str) -> ModelSignature:
    """What ``get_model_config(as_json=True)`` returns for one of our filled configs."""
    config = json_format.MessageToJson(repository.parse(text), preserving_proto_field_name=True)
    return ModelSignature.from_config(json.loads(config))


def _req(contract: str = "bls", **kw: object) -> GenerationRequest:
    entry = ModelEntry(id="m", triton_model="m", contract=contract)  # type: ignore[arg-type]
    return GenerationRequest(**{"model": entry, "prompt": "hi", "max_tokens": 9, **kw})  # type: ignore[arg-type]


def _by_name(tensors: list) -> dict[str, tuple[str, list[int]]]:  # type: ignore[type-arg]
    return {t.name(): (t.datatype(), t.shape()) for t in tensors}


@pytest.fixture(scope="module")
def engine() -> dict[str, ModelSignature]:
    texts = repository.engine_configs(TrtllmModel(id="m", hf_model="/m", frontend="ensemble"), "/w")
    return {name: _triton_view(text) for name, text in texts.items()}


def test_bls_gets_current_names_and_asks_for_counts(engine: dict[str, ModelSignature]) -> None:
    got = _by_name(build_inputs(engine["tensorrt_llm_bls"], _req(seed=5, min_tokens=2, stop=("x",),
                                                                 temperature=0.0)))
    assert got["text_input"] == ("BYTES", [1, 1]) and got["max_tokens"] == ("INT32", [1, 1])
    assert got["seed"] == ("UINT64", [1, 1]) and got["min_tokens"] == ("INT32", [1, 1])
    assert got["stop_words"] == ("BYTES", [1, 1]) and got["top_k"] == ("INT32", [1, 1])
    assert {"return_num_input_tokens", "return_num_output_tokens", "exclude_input_in_output",
            "stream"} <= set(got)


def test_ensemble_streams_though_it_declares_no_decoupled_policy(engine: dict[str, ModelSignature]) -> None:
    sig = engine["ensemble"]
    assert sig.decoupled
    tensors = {t.name(): t for t in build_inputs(sig, _req(stream=True))}
    assert tensors["stream"]._raw_content == b"\x01"


def test_a_model_that_cannot_stream_is_asked_not_to() -> None:
    view = json.loads(json_format.MessageToJson(repository.parse(
        repository.engine_configs(TrtllmModel(id="m", hf_model="/m"), "/w")["tensorrt_llm_bls"]),
        preserving_proto_field_name=True))
    view["model_transaction_policy"] = {"decoupled": False}
    sig = ModelSignature.from_config(view)
    tensors = {t.name(): t for t in build_inputs(sig, _req(stream=True))}
    assert tensors["stream"]._raw_content == b"\x00"


def test_llmapi_names_and_stop_handling() -> None:
    m = TrtllmModel(id="q", hf_model="/m", path="llmapi")
    sig = _triton_view(repository.llmapi_files(m)["config.pbtxt"])
    assert not sig.batched and sig.decoupled
    tensors = {t.name(): t for t in build_inputs(sig, _req("llmapi", stream=False, stop=("END",), seed=3,
                                                           temperature=0.7))}
    got = _by_name(list(tensors.values()))
    assert got["text_input"] == ("BYTES", [1]) and got["sampling_param_max_tokens"] == ("INT32", [1])
    assert got["sampling_param_seed"] == ("UINT64", [1])
    assert "sampling_param_stop" not in got, "the gateway cuts stop strings itself"
    assert tensors["streaming"]._raw_content == b"\x01", "stop strings are watched on a stream"
    plain = {t.name(): t for t in build_inputs(sig, _req("llmapi", stream=False))}
    assert plain["streaming"]._raw_content == b"\x00"
    assert "max_tokens" not in got and "stream" not in got


def test_the_doubles_tokenizer_reproduces_nvidias_cumulative_decoding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Fault 2's cause, as the doubles reproduce it: decoding all tokens so far (NVIDIA's BLS with
    accumulate_tokens, the LLM API) shows U+FFFD for a character split across byte-fallback tokens,
    so the next cumulative text is not an extension of the previous one."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    from tests.models.trtllm import byte_fallback_tokenizer, byte_fallback_tokens  # noqa: PLC0415

    tok = Tokenizer.from_file(str(byte_fallback_tokenizer(tmp_path)))
    ids = tok.encode("Café ☃", add_special_tokens=False).ids
    assert byte_fallback_tokens("Café ☃") == ["C", "a", "f", "<0xC3>", "<0xA9>", "\u2581",
                                              "<0xE2>", "<0x98>", "<0x83>"]
    cumulative = [tok.decode(ids[:n]) for n in range(1, len(ids) + 1)]
    assert cumulative == ["C", "Ca", "Caf", "Caf\ufffd", "Café", "Café ", "Café \ufffd", "Café \ufffd\ufffd",
                          "Café ☃"]
    assert not cumulative[4].startswith(cumulative[3])
    # The ensemble decodes each streamed response alone: a split character never recovers.
    assert "".join(tok.decode([i]) for i in ids) == "Caf\ufffd\ufffd \ufffd\ufffd\ufffd"
