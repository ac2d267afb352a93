"""Request -> tensors: only declared inputs, old and new names, batch dims."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.backends.base import GenerationRequest
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry
from gateway.triton.tensors import ModelSignature, TensorSpec, build_inputs, model_streams, requested_outputs

ENTRY = ModelEntry(id="m", triton_model="m")


def _sig(inputs: list[tuple[str, str, list[int]]], batched: bool = True) -> ModelSignature:
    return ModelSignature.from_config({
        "name": "m", "max_batch_size": 8 if batched else 0,
        "input": [{"name": n, "data_type": t, "dims": d} for n, t, d in inputs],
        "output": [{"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]},
                   {"name": "finish_reason", "data_type": "TYPE_STRING", "dims": [1]}],
        "model_transaction_policy": {"decoupled": True},
    })


def _by_name(tensors: list) -> dict[str, tuple[str, list[int]]]:
    return {t.name(): (t.datatype(), t.shape()) for t in tensors}


def test_only_declared_inputs_are_sent_with_batch_dims() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
                ("temperature", "TYPE_FP32", [1]), ("stop_words", "TYPE_STRING", [-1]),
                ("stream", "TYPE_BOOL", [1])])
    req = GenerationRequest(model=ENTRY, prompt="hi", max_tokens=5, temperature=0.5,
                            stop=("a", "b"))
    got = _by_name(build_inputs(sig, req))
    assert got == {"text_input": ("BYTES", [1, 1]), "max_tokens": ("INT32", [1, 1]),
                   "temperature": ("FP32", [1, 1]), "stop_words": ("BYTES", [1, 2]),
                   "stream": ("BOOL", [1, 1])}


def test_old_names_random_seed_and_min_length() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
                ("random_seed", "TYPE_UINT64", [1]), ("min_length", "TYPE_INT32", [1])])
    req = GenerationRequest(model=ENTRY, prompt="hi", max_tokens=5, seed=-1, min_tokens=2)
    got = _by_name(build_inputs(sig, req))
    assert got["random_seed"] == ("UINT64", [1, 1]) and got["min_length"] == ("INT32", [1, 1])


def test_greedy_sends_top_k_1_and_unbatched_models_have_no_batch_dim() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [1]), ("max_tokens", "TYPE_INT32", [1]),
                ("top_k", "TYPE_INT32", [1])], batched=False)
    tensors = build_inputs(sig, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1,
                                                  temperature=0.0))
    got = _by_name(tensors)
    assert got["top_k"] == ("INT32", [1]) and got["text_input"] == ("BYTES", [1])


def test_images_keep_their_shape_under_a_batch_dim() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [1]), ("max_tokens", "TYPE_INT32", [1]),
                ("image_input", "TYPE_FP16", [-1, 3, -1, -1])])
    pixels = np.zeros((2, 3, 4, 4), dtype=np.float16)
    got = _by_name(build_inputs(sig, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1,
                                                       images=pixels)))
    assert got["image_input"] == ("FP16", [1, 2, 3, 4, 4])


def test_requested_outputs_are_the_declared_ones() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [1]), ("max_tokens", "TYPE_INT32", [1])])
    assert [o._output.name for o in requested_outputs(sig)] == ["text_output", "finish_reason"]


# Values, not just dtypes: each parameter must reach its tensor unchanged. -----------------------

def _values(tensors: list) -> dict[str, object]:
    """Decode each InferInput's raw content back into Python values."""
    from tritonclient.utils import deserialize_bytes_tensor, triton_to_np_dtype

    out: dict[str, object] = {}
    for t in tensors:
        raw = t._get_content()
        if t.datatype() == "BYTES":
            items = [b.decode() for b in deserialize_bytes_tensor(raw)]
        else:
            items = np.frombuffer(raw, dtype=triton_to_np_dtype(t.datatype())).tolist()
        out[t.name()] = items[0] if len(items) == 1 else items
    return out


FULL = [("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
        ("temperature", "TYPE_FP32", [1]), ("top_k", "TYPE_INT32", [1]),
        ("top_p", "TYPE_FP32", [1]), ("seed", "TYPE_UINT64", [1]),
        ("stop_words", "TYPE_STRING", [-1]), ("frequency_penalty", "TYPE_FP32", [1]),
        ("presence_penalty", "TYPE_FP32", [1]), ("repetition_penalty", "TYPE_FP32", [1]),
        ("min_tokens", "TYPE_INT32", [1]), ("stream", "TYPE_BOOL", [1]),
        ("exclude_input_in_output", "TYPE_BOOL", [1]),
        ("return_num_input_tokens", "TYPE_BOOL", [1]),
        ("return_num_output_tokens", "TYPE_BOOL", [1])]


def test_every_parameter_reaches_its_tensor_with_its_value() -> None:
    req = GenerationRequest(model=ENTRY, prompt="Hi there", max_tokens=33, temperature=0.25,
                            top_k=17, top_p=0.5, seed=123456789012, stop=("END", "\n\n"),
                            frequency_penalty=0.75, presence_penalty=-0.5,
                            repetition_penalty=1.125, min_tokens=3, stream=True)
    assert _values(build_inputs(_sig(FULL), req)) == {
        "text_input": "Hi there", "max_tokens": 33, "temperature": 0.25, "top_k": 17,
        "top_p": 0.5, "seed": 123456789012, "stop_words": ["END", "\n\n"],
        "frequency_penalty": 0.75, "presence_penalty": -0.5, "repetition_penalty": 1.125,
        "min_tokens": 3, "stream": True, "exclude_input_in_output": True,
        "return_num_input_tokens": True, "return_num_output_tokens": True}


def test_unset_parameters_are_not_sent_and_greedy_means_top_k_1() -> None:
    req = GenerationRequest(model=ENTRY, prompt="x", max_tokens=2, temperature=0.0, stream=False)
    got = _values(build_inputs(_sig(FULL), req))
    assert got == {"text_input": "x", "max_tokens": 2, "temperature": 0.0, "top_k": 1,
                   "stream": False, "exclude_input_in_output": True,
                   "return_num_input_tokens": True, "return_num_output_tokens": True}


def test_negative_seed_wraps_into_uint64_as_two_complement() -> None:
    req = GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, seed=-1)
    assert _values(build_inputs(_sig(FULL), req))["seed"] == 2**64 - 1


def test_a_model_that_is_not_decoupled_is_never_asked_to_stream() -> None:
    sig = ModelSignature.from_config({
        "name": "m", "max_batch_size": 0,
        "input": [{"name": n, "data_type": t, "dims": d} for n, t, d in FULL[:2]]
        + [{"name": "stream", "data_type": "TYPE_BOOL", "dims": [1]}]})
    req = GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, stream=True)
    assert _values(build_inputs(sig, req))["stream"] is False


LLMAPI = ModelEntry(id="l", triton_model="l", contract="llmapi")
LLMAPI_INPUTS = [("text_input", "TYPE_STRING", [-1]), ("streaming", "TYPE_BOOL", [1]),
                 ("sampling_param_max_tokens", "TYPE_INT32", [1]),
                 ("sampling_param_temperature", "TYPE_FP32", [1]),
                 ("sampling_param_top_k", "TYPE_INT32", [1]),
                 ("sampling_param_top_p", "TYPE_FP32", [1]),
                 ("sampling_param_seed", "TYPE_UINT64", [1]),
                 ("sampling_param_frequency_penalty", "TYPE_FP32", [1]),
                 ("sampling_param_presence_penalty", "TYPE_FP32", [1]),
                 ("sampling_param_exclude_input_from_output", "TYPE_BOOL", [1]),
                 ("return_finish_reason", "TYPE_BOOL", [1])]


def test_llmapi_contract_values_and_streaming_for_stop_sequences() -> None:
    req = GenerationRequest(model=LLMAPI, prompt="p", max_tokens=9, temperature=0.5, top_k=4,
                            top_p=0.25, seed=42, frequency_penalty=0.5, presence_penalty=0.25,
                            stop=("x",), stream=False)
    assert _values(build_inputs(_sig(LLMAPI_INPUTS), req)) == {
        "text_input": "p", "streaming": True, "sampling_param_max_tokens": 9,
        "sampling_param_temperature": 0.5, "sampling_param_top_k": 4,
        "sampling_param_top_p": 0.25, "sampling_param_seed": 42,
        "sampling_param_frequency_penalty": 0.5, "sampling_param_presence_penalty": 0.25,
        "sampling_param_exclude_input_from_output": True, "return_finish_reason": True}
    plain = GenerationRequest(model=LLMAPI, prompt="p", max_tokens=9, stream=False)
    assert _values(build_inputs(_sig(LLMAPI_INPUTS), plain))["streaming"] is False


def test_signature_from_config_reads_every_field_and_its_defaults() -> None:
    sig = ModelSignature.from_config({
        "name": "bls", "max_batch_size": 1,
        "input": [{"name": "a", "dims": ["-1", "3"], "optional": True},
                  {"name": "b", "data_type": "TYPE_INT64"}],
        "output": [{"name": "text_output"}, {"name": "finish_reason"}],
        "platform": "ensemble",
    })
    assert sig == ModelSignature(
        name="bls", inputs={"a": TensorSpec("a", "TYPE_FP32", (-1, 3), True),
                            "b": TensorSpec("b", "TYPE_INT64", (), False)},
        outputs=("text_output", "finish_reason"), batched=True, decoupled=True)
    assert ModelSignature.from_config({}) == ModelSignature(name="", inputs={}, outputs=(),
                                                            batched=False, decoupled=False)
    plain = ModelSignature.from_config({"max_batch_size": 0, "platform": "python",
                                        "model_transaction_policy": {"decoupled": False}})
    assert (plain.batched, plain.decoupled) == (False, False)


def test_find_takes_the_first_declared_spelling() -> None:
    sig = _sig([("seed", "TYPE_UINT64", [1]), ("random_seed", "TYPE_INT64", [1])])
    assert sig.find("random_seed", "seed") == TensorSpec("random_seed", "TYPE_INT64", (1,), False)
    assert sig.find("seed", "random_seed") == TensorSpec("seed", "TYPE_UINT64", (1,), False)
    assert sig.find("nope", "also_nope") is None


def test_requested_outputs_in_a_fixed_order() -> None:
    sig = ModelSignature.from_config({"output": [
        {"name": n} for n in ("finish_reason", "extra", "num_output_tokens", "num_input_tokens",
                              "text_output")]})
    assert [o._output.name for o in requested_outputs(sig)] == [
        "text_output", "num_input_tokens", "num_output_tokens", "finish_reason"]


def test_models_that_are_not_chat_models_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^model 'm' does not declare text_input and max_tokens$"):
        build_inputs(_sig([("text_input", "TYPE_STRING", [-1])]),
                     GenerationRequest(model=ENTRY, prompt="x", max_tokens=1))
    with pytest.raises(ValueError, match=r"^model 'm' does not declare text_input and max_tokens$"):
        build_inputs(_sig([("max_tokens", "TYPE_INT32", [1])]),
                     GenerationRequest(model=ENTRY, prompt="x", max_tokens=1))
    for inputs in ([("text_input", "TYPE_STRING", [-1])], [("sampling_param_max_tokens", "TYPE_INT32", [1])]):
        with pytest.raises(ValueError, match=r"^model 'm' is not an LLM API model$"):
            build_inputs(_sig(inputs), GenerationRequest(model=LLMAPI, prompt="x", max_tokens=1))


def test_old_max_tokens_name_and_unknown_dtypes_as_bytes() -> None:
    sig = _sig([("text_input", "TYPE_WEIRD", [-1]), ("request_output_len", "TYPE_UINT32", [1])],
               batched=False)
    tensors = build_inputs(sig, GenerationRequest(model=ENTRY, prompt="h\u00e9", max_tokens=7))
    assert _by_name(tensors) == {"text_input": ("BYTES", [1]), "request_output_len": ("UINT32", [1])}
    assert _values(tensors) == {"text_input": "h\u00e9", "request_output_len": 7}


def test_unbatched_lists_keep_their_length() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
                ("stop_words", "TYPE_STRING", [-1])], batched=False)
    tensors = build_inputs(sig, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, stop=("a", "bc")))
    assert _by_name(tensors)["stop_words"] == ("BYTES", [2])
    assert _values(tensors)["stop_words"] == ["a", "bc"]


def test_image_arrays_are_converted_and_keep_a_batch_dim_they_already_have() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [1]), ("max_tokens", "TYPE_INT32", [1]),
                ("image_input", "TYPE_FP16", [3, 2])])
    pixels = np.array([[[0.5, 1.0], [2.0, 3.0], [4.0, 5.0]]], dtype=np.float32)  # already [1, 3, 2]
    tensors = build_inputs(sig, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, images=pixels))
    assert _by_name(tensors)["image_input"] == ("FP16", [1, 3, 2])
    assert _values(tensors)["image_input"] == [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]
    unbatched = _sig([("text_input", "TYPE_STRING", [1]), ("max_tokens", "TYPE_INT32", [1]),
                      ("image_input", "TYPE_FP16", [3, 2])], batched=False)
    got = build_inputs(unbatched, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, images=pixels[0]))
    assert _by_name(got)["image_input"] == ("FP16", [3, 2])


def test_top_k_given_with_greedy_and_no_empty_stop_words() -> None:
    req = GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, temperature=0.0, top_k=5, stop=())
    got = _values(build_inputs(_sig(FULL), req))
    assert got["top_k"] == 5 and "stop_words" not in got
    warm = _values(build_inputs(_sig(FULL), GenerationRequest(model=ENTRY, prompt="x", max_tokens=1,
                                                               temperature=0.5)))
    assert "top_k" not in warm and "seed" not in warm


@pytest.mark.parametrize(("model", "stream", "stop", "decoupled", "expected"), [
    (LLMAPI, False, ("x",), True, True), (LLMAPI, False, (), True, False),
    (LLMAPI, False, ("x",), False, False), (ENTRY, False, ("x",), True, False),
    (ENTRY, True, (), True, True), (ENTRY, True, (), False, False),
])
def test_model_streams(model: ModelEntry, stream: bool, stop: tuple[str, ...], decoupled: bool,
                       expected: bool) -> None:
    sig = ModelSignature("m", {}, (), True, decoupled)
    req = GenerationRequest(model=model, prompt="x", max_tokens=1, stream=stream, stop=stop)
    assert model_streams(sig, req) is expected


def test_llmapi_greedy_seed_wrap_and_no_streaming_input() -> None:
    inputs = [i for i in LLMAPI_INPUTS if i[0] != "streaming"]
    req = GenerationRequest(model=LLMAPI, prompt="p", max_tokens=3, temperature=0.0, seed=-2, stream=True)
    got = _values(build_inputs(_sig(inputs), req))
    assert got == {"text_input": "p", "sampling_param_max_tokens": 3, "sampling_param_temperature": 0.0,
                   "sampling_param_top_k": 1, "sampling_param_seed": 2**64 - 2,
                   "sampling_param_exclude_input_from_output": True, "return_finish_reason": True}
    chosen = GenerationRequest(model=LLMAPI, prompt="p", max_tokens=3, temperature=0.0, top_k=7)
    assert _values(build_inputs(_sig(LLMAPI_INPUTS), chosen))["sampling_param_top_k"] == 7


@pytest.mark.parametrize(("field", "value"), [
    ("top_p", 0.9), ("seed", 3), ("top_k", 5), ("frequency_penalty", 0.5),
    ("presence_penalty", 0.5), ("repetition_penalty", 1.1), ("min_tokens", 2)])
def test_a_parameter_the_model_has_no_input_for_is_refused_naming_it(field: str, value: object) -> None:
    sig = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
                ("temperature", "TYPE_FP32", [1])])
    req = GenerationRequest(model=ENTRY, prompt="x", max_tokens=5, **{field: value})  # type: ignore[arg-type]  # one field at a time
    with pytest.raises(InvalidRequestError) as info:
        build_inputs(sig, req)
    assert (info.value.status, info.value.param, info.value.code) == (400, field, "unsupported_parameter")
    assert info.value.message == f"Model 'm' does not support '{field}' on its backend"


def test_the_llm_api_model_refuses_repetition_penalty_and_min_tokens() -> None:
    for field, value in (("repetition_penalty", 1.2), ("min_tokens", 3)):
        req = GenerationRequest(model=LLMAPI, prompt="p", max_tokens=9, **{field: value})  # type: ignore[arg-type]  # one field at a time
        with pytest.raises(InvalidRequestError) as info:
            build_inputs(_sig(LLMAPI_INPUTS), req)
        assert info.value.param == field


def test_greedy_needs_no_temperature_input_where_top_k_exists_but_stops_need_no_input() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
                ("top_k", "TYPE_INT32", [1])])
    got = _values(build_inputs(sig, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1,
                                                      temperature=0.0, stop=("END",))))
    assert got == {"text_input": "x", "max_tokens": 1, "top_k": 1}
    with pytest.raises(InvalidRequestError):
        build_inputs(sig, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, temperature=0.7))


def test_greedy_needs_no_temperature_input_under_any_top_k_spelling() -> None:
    old = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1]),
                ("runtime_top_k", "TYPE_INT32", [1])])
    got = _values(build_inputs(old, GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, temperature=0.0)))
    assert got == {"text_input": "x", "max_tokens": 1, "runtime_top_k": 1}
    llmapi = _sig([i for i in LLMAPI_INPUTS if i[0] != "sampling_param_temperature"])
    req = GenerationRequest(model=LLMAPI, prompt="p", max_tokens=2, temperature=0.0)
    assert _values(build_inputs(llmapi, req))["sampling_param_top_k"] == 1


def test_images_for_a_model_without_an_image_input_are_refused() -> None:
    sig = _sig([("text_input", "TYPE_STRING", [-1]), ("max_tokens", "TYPE_INT32", [1])])
    req = GenerationRequest(model=ENTRY, prompt="x", max_tokens=1, images=np.zeros((1, 3, 2, 2), np.float16))
    with pytest.raises(InvalidRequestError) as info:
        build_inputs(sig, req)
    assert (info.value.message, info.value.param, info.value.code) == (
        "Model 'm' does not support image input on its backend", "messages", "unsupported_parameter")


# ---- constrained decoding and log-probabilities ------------------------------------------------

def _guided_sig(*extra: tuple[str, str, list[int]], outputs: tuple[str, ...] = ()) -> ModelSignature:
    inputs = [("text_input", "TYPE_STRING", [1]), ("max_tokens", "TYPE_INT32", [1]), *extra]
    return ModelSignature.from_config({
        "name": "m", "max_batch_size": 1,
        "input": [{"name": n, "data_type": t, "dims": d, "optional": True} for n, t, d in inputs],
        "output": [{"name": n, "data_type": "TYPE_FP32", "dims": [-1]}
                   for n in ("text_output", *outputs)],
        "model_transaction_policy": {"decoupled": True}})


GUIDED = (("guided_decoding_guide_type", "TYPE_STRING", [1]), ("guided_decoding_guide", "TYPE_STRING", [1]))
LOGPROBS = (("return_log_probs", "TYPE_BOOL", [1]), ("top_logprobs", "TYPE_INT32", [1]))


def _wire(tensors: list) -> dict[str, object]:
    out: dict[str, object] = {}
    for t in tensors:
        raw = t._raw_content  # noqa: SLF001 - the bytes that go on the wire
        if t.datatype() == "BYTES":
            from tritonclient.utils import deserialize_bytes_tensor  # noqa: PLC0415
            out[t.name()] = [x.decode() for x in deserialize_bytes_tensor(raw)]
        else:
            dtype = {"BOOL": np.bool_, "INT32": np.int32, "FP32": np.float32}[t.datatype()]
            out[t.name()] = np.frombuffer(raw, dtype=dtype).tolist()
    return out


@pytest.mark.parametrize("kind", ["json", "json_schema", "regex", "ebnf_grammar"])
def test_a_guide_is_sent_as_nvidias_two_strings(kind: str) -> None:
    from gateway.backends.base import Guide  # noqa: PLC0415

    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    req = GenerationRequest(model=ENTRY, prompt="p", max_tokens=4, guide=Guide(kind, schema))
    got = _wire(build_inputs(_guided_sig(*GUIDED), req))
    assert got["guided_decoding_guide_type"] == [kind]
    assert got["guided_decoding_guide"] == [schema]


def test_a_guide_to_a_model_without_guided_inputs_is_refused_naming_its_parameter() -> None:
    from gateway.backends.base import Guide  # noqa: PLC0415

    req = GenerationRequest(model=ENTRY, prompt="p", max_tokens=4,
                            guide=Guide("json_schema", "{}", param="tool_choice"))
    with pytest.raises(InvalidRequestError) as err:
        build_inputs(_guided_sig(), req)
    assert err.value.param == "tool_choice" and err.value.code == "unsupported_parameter"


def test_an_unknown_guide_type_is_never_sent() -> None:
    from gateway.backends.base import Guide  # noqa: PLC0415

    req = GenerationRequest(model=ENTRY, prompt="p", max_tokens=4,
                            guide=Guide("lark", "start: 'a'"))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as err:
        build_inputs(_guided_sig(*GUIDED), req)
    assert err.value.param == "response_format"


def test_logprobs_send_return_log_probs_and_top_logprobs_where_declared() -> None:
    sig = _guided_sig(*LOGPROBS, outputs=("output_log_probs", "top_log_probs"))
    req = GenerationRequest(model=ENTRY, prompt="p", max_tokens=4, logprobs=True, top_logprobs=3)
    got = _wire(build_inputs(sig, req))
    assert got["return_log_probs"] == [True] and got["top_logprobs"] == [3]
    names = [o.name() for o in requested_outputs(sig, req)]
    assert names == ["text_output", "output_log_probs", "top_log_probs"]
    assert [o.name() for o in requested_outputs(sig, GenerationRequest(model=ENTRY, prompt="p", max_tokens=4))] \
        == ["text_output"]
    plain = _wire(build_inputs(sig, GenerationRequest(model=ENTRY, prompt="p", max_tokens=4)))
    assert "return_log_probs" not in plain and "top_logprobs" not in plain


def test_top_logprobs_to_nvidias_models_are_refused_and_logprobs_are_not() -> None:
    sig = _guided_sig(("return_log_probs", "TYPE_BOOL", [1]), outputs=("output_log_probs",))
    ok = GenerationRequest(model=ENTRY, prompt="p", max_tokens=4, logprobs=True)
    assert _wire(build_inputs(sig, ok))["return_log_probs"] == [True]
    with pytest.raises(InvalidRequestError) as err:
        build_inputs(sig, GenerationRequest(model=ENTRY, prompt="p", max_tokens=4, logprobs=True,
                                            top_logprobs=2))
    assert err.value.param == "top_logprobs"
    with pytest.raises(InvalidRequestError) as err:
        build_inputs(_guided_sig(), ok)
    assert err.value.param == "logprobs"


@pytest.mark.parametrize(("field", "param"), [("guide", "response_format"), ("logprobs", "logprobs"),
                                              ("top_logprobs", "top_logprobs")])
def test_the_llm_api_model_refuses_guides_and_logprobs(field: str, param: str) -> None:
    from gateway.backends.base import Guide  # noqa: PLC0415

    entry = ModelEntry(id="api", triton_model="api", contract="llmapi")
    sig = ModelSignature.from_config({
        "name": "api", "max_batch_size": 0,
        "input": [{"name": "text_input", "data_type": "TYPE_STRING", "dims": [-1]},
                  {"name": "sampling_param_max_tokens", "data_type": "TYPE_INT32", "dims": [1]}],
        "output": [{"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]}]})
    value = {"guide": Guide("json"), "logprobs": True, "top_logprobs": 2}[field]
    with pytest.raises(InvalidRequestError) as err:
        build_inputs(sig, GenerationRequest(model=entry, prompt="p", max_tokens=4, **{field: value}))  # type: ignore[arg-type]
    assert err.value.param == param and err.value.code == "unsupported_parameter"


def test_logprobs_without_any_sampling_parameter_send_a_neutral_top_p() -> None:
    sig = _guided_sig(("return_log_probs", "TYPE_BOOL", [1]), ("top_p", "TYPE_FP32", [1]),
                      outputs=("output_log_probs",))
    got = _wire(build_inputs(sig, GenerationRequest(model=ENTRY, prompt="p", max_tokens=4, logprobs=True)))
    assert got["top_p"] == [1.0]
    set_by_client = GenerationRequest(model=ENTRY, prompt="p", max_tokens=4, logprobs=True, top_p=0.5)
    assert _wire(build_inputs(sig, set_by_client))["top_p"] == [0.5]
