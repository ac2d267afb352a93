"""GenerationRequest -> Triton input tensors, sending only the inputs a model's config declares.

Names follow NVIDIA's ``tensorrt_llm_bls`` / ``ensemble`` contract; older templates spell some
inputs differently (``random_seed`` for ``seed``, ``min_length`` for ``min_tokens``), and the
first declared spelling wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput

from gateway.backends.base import GenerationRequest
from gateway.errors import InvalidRequestError

# NVIDIA's guided_decoding_guide_type strings; TensorRT-LLM silently ignores any other value
# (no constraint, no error), so nothing else is ever sent.
GUIDE_TYPES = ("json", "json_schema", "regex", "ebnf_grammar")
# Per-token log-probabilities: NVIDIA's output, and our CPU models' extension (token bytes and
# the top alternatives), requested only when the client asked for logprobs.
LOGPROB_OUTPUTS = ("output_log_probs", "output_token_bytes", "top_log_probs", "top_token_bytes")

# Triton config dtype -> (tritonclient dtype, numpy dtype)
_DTYPES: dict[str, tuple[str, Any]] = {
    "TYPE_STRING": ("BYTES", np.object_),
    "TYPE_BOOL": ("BOOL", np.bool_),
    "TYPE_INT32": ("INT32", np.int32),
    "TYPE_INT64": ("INT64", np.int64),
    "TYPE_UINT32": ("UINT32", np.uint32),
    "TYPE_UINT64": ("UINT64", np.uint64),
    "TYPE_FP16": ("FP16", np.float16),
    "TYPE_FP32": ("FP32", np.float32),
}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    dtype: str  # Triton config spelling, e.g. "TYPE_INT32"
    dims: tuple[int, ...]
    optional: bool


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """What a model declares: its inputs and outputs, and whether tensors carry a batch dim."""

    name: str
    inputs: Mapping[str, TensorSpec]
    outputs: tuple[str, ...]
    batched: bool
    decoupled: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelSignature:
        """Parse ``get_model_config(..., as_json=True)["config"]``."""

        def spec(t: Mapping[str, Any]) -> TensorSpec:
            return TensorSpec(t["name"], t.get("data_type", "TYPE_FP32"),
                              tuple(int(d) for d in t.get("dims", [])), bool(t.get("optional")))

        inputs = {t["name"]: spec(t) for t in config.get("input", [])}
        outputs = tuple(t["name"] for t in config.get("output", []))
        policy = config.get("model_transaction_policy", {})
        # An ensemble streams when a step is decoupled (NVIDIA's tensorrt_llm step is).
        streams = bool(policy.get("decoupled")) or config.get("platform") == "ensemble"
        return cls(config.get("name", ""), inputs, outputs,
                   int(config.get("max_batch_size", 0)) > 0, streams)

    def find(self, *names: str) -> TensorSpec | None:
        for name in names:
            if name in self.inputs:
                return self.inputs[name]
        return None


def _tensor(sig: ModelSignature, spec: TensorSpec, value: Any) -> InferInput:
    wire, np_dtype = _DTYPES.get(spec.dtype, ("BYTES", np.object_))
    if np_dtype is np.object_:
        items = value if isinstance(value, list | tuple) else [value]
        array = np.array([s.encode("utf-8") if isinstance(s, str) else s for s in items],
                         dtype=np.object_)
    elif isinstance(value, np.ndarray):
        array = value.astype(np_dtype, copy=False)
    else:
        array = np.array([value], dtype=np_dtype)
    if sig.batched and not isinstance(value, np.ndarray):
        array = array.reshape(1, -1)
    elif sig.batched and isinstance(value, np.ndarray) and array.ndim == len(spec.dims):
        array = array[np.newaxis, ...]
    tensor = InferInput(spec.name, list(array.shape), wire)
    tensor.set_data_from_numpy(array)
    return tensor


Read = Callable[[GenerationRequest], Any]
# (names in order of preference, how to read the tensor's value, the client's parameter it
# carries, or None when the gateway can do without it: a model without a stop_words input still
# stops, since the gateway cuts at stop sequences itself).
_OPTIONAL: tuple[tuple[tuple[str, ...], Read, str | None], ...] = (
    (("stream", "streaming"), lambda r: r.stream, None),
    (("temperature",), lambda r: r.temperature, "temperature"),
    (("top_k", "runtime_top_k"), lambda r: 1 if r.temperature == 0 and r.top_k is None else r.top_k,
     "top_k"),
    (("top_p", "runtime_top_p"), lambda r: r.top_p, "top_p"),
    (("seed", "random_seed"), lambda r: None if r.seed is None else r.seed & 0xFFFFFFFFFFFFFFFF,
     "seed"),
    (("stop_words",), lambda r: list(r.stop) or None, None),
    (("exclude_input_in_output",), lambda r: True, None),
    (("frequency_penalty",), lambda r: r.frequency_penalty, "frequency_penalty"),
    (("presence_penalty",), lambda r: r.presence_penalty, "presence_penalty"),
    (("repetition_penalty",), lambda r: r.repetition_penalty, "repetition_penalty"),
    (("min_tokens", "min_length"), lambda r: r.min_tokens, "min_tokens"),
    (("return_num_input_tokens",), lambda r: True, None),
    (("return_num_output_tokens",), lambda r: True, None),
    (("image_input",), lambda r: r.images, "messages"),
)


# The LLM API (PyTorch backend) model: other names, no counts, cumulative text. Stop sequences
# are not sent as sampling_param_stop (NVIDIA's model hands the raw bytes array to SamplingParams,
# which expects str): the gateway cuts at them and cancels, streaming from the model to see them.
# It has no repetition_penalty or min_tokens input: those are refused for it.
_LLMAPI: tuple[tuple[tuple[str, ...], Read, str | None], ...] = (
    (("sampling_param_max_tokens",), lambda r: r.max_tokens, None),
    (("sampling_param_temperature",), lambda r: r.temperature, "temperature"),
    (("sampling_param_top_k",), lambda r: 1 if r.temperature == 0 and r.top_k is None else r.top_k,
     "top_k"),
    (("sampling_param_top_p",), lambda r: r.top_p, "top_p"),
    (("sampling_param_seed",), lambda r: None if r.seed is None else r.seed & 0xFFFFFFFFFFFFFFFF,
     "seed"),
    (("sampling_param_frequency_penalty",), lambda r: r.frequency_penalty, "frequency_penalty"),
    (("sampling_param_presence_penalty",), lambda r: r.presence_penalty, "presence_penalty"),
    ((), lambda r: r.repetition_penalty, "repetition_penalty"),
    ((), lambda r: r.min_tokens, "min_tokens"),
    ((), lambda r: r.images, "messages"),
    (("sampling_param_exclude_input_from_output",), lambda r: True, None),
    (("return_finish_reason",), lambda r: True, None),
)

# What the client set, for each parameter name above (greedy's top_k=1 is the gateway's own).
_CLIENT_VALUE: dict[str, Read] = {
    "temperature": lambda r: r.temperature, "top_k": lambda r: r.top_k,
    "top_p": lambda r: r.top_p, "seed": lambda r: r.seed,
    "frequency_penalty": lambda r: r.frequency_penalty,
    "presence_penalty": lambda r: r.presence_penalty,
    "repetition_penalty": lambda r: r.repetition_penalty, "min_tokens": lambda r: r.min_tokens,
    "messages": lambda r: r.images,
}


def _greedy_by_top_k(sig: ModelSignature, request: GenerationRequest, param: str) -> bool:
    """Temperature 0 needs no temperature input where a top_k input gives greedy decoding."""
    return (param == "temperature" and request.temperature == 0
            and sig.find("top_k", "runtime_top_k", "sampling_param_top_k") is not None)


def _optional(sig: ModelSignature, request: GenerationRequest,
              table: tuple[tuple[tuple[str, ...], Read, str | None], ...]) -> list[InferInput]:
    """The optional tensors the model declares; a parameter the client set that the model has no
    input for is refused (never silently dropped).

    Raises:
        InvalidRequestError: ``unsupported_parameter`` naming the parameter.
    """
    tensors = []
    for names, read, param in table:
        spec = sig.find(*names) if names else None
        if spec is None:
            if param is not None and _CLIENT_VALUE[param](request) is not None \
                    and not _greedy_by_top_k(sig, request, param):
                what = "image input" if param == "messages" else f"'{param}'"
                raise InvalidRequestError(
                    f"Model '{request.model.id}' does not support {what} on its backend",
                    param=param, code="unsupported_parameter")
            continue
        value = read(request)
        if value is not None:
            tensors.append(_tensor(sig, spec, value))
    return tensors


def model_streams(sig: ModelSignature, request: GenerationRequest) -> bool:
    """Whether to ask the model for incremental responses (the one place that decides).

    A streaming client needs them; so does the LLM API model when stop sequences are given
    (the gateway cuts at them as text arrives). NVIDIA's models refuse to stream unless decoupled.
    """
    wanted = request.stream or (request.model.contract == "llmapi" and bool(request.stop))
    return wanted and sig.decoupled


def build_inputs(sig: ModelSignature, request: GenerationRequest) -> list[InferInput]:
    """The input tensors for one generation, on the model's contract (``bls`` or ``llmapi``).

    Raises:
        ValueError: the model lacks ``text_input`` or ``max_tokens`` (not a chat model).
    """
    request = replace(request, stream=model_streams(sig, request))
    if request.model.contract == "llmapi":
        return _build_llmapi(sig, request)
    text = sig.find("text_input")
    max_tokens = sig.find("max_tokens", "request_output_len")
    if text is None or max_tokens is None:
        raise ValueError(f"model {sig.name!r} does not declare text_input and max_tokens")
    tensors = [_tensor(sig, text, request.prompt), _tensor(sig, max_tokens, request.max_tokens)]
    return tensors + _optional(sig, request, _OPTIONAL) + _constraints(sig, request)


def _refuse(request: GenerationRequest, param: str, what: str) -> InvalidRequestError:
    return InvalidRequestError(f"Model '{request.model.id}' does not support {what} on its backend",
                               param=param, code="unsupported_parameter")


def _constraints(sig: ModelSignature, request: GenerationRequest) -> list[InferInput]:
    """Guided decoding and log-probability inputs, where the model declares them.

    Raises:
        InvalidRequestError: ``unsupported_parameter`` naming the guide's parameter,
            ``logprobs`` or ``top_logprobs``, when the model cannot honor it.
    """
    tensors = []
    guide = request.guide
    if guide is not None:
        kind, text = sig.find("guided_decoding_guide_type"), sig.find("guided_decoding_guide")
        if kind is None or text is None or guide.type not in GUIDE_TYPES:
            raise _refuse(request, guide.param, f"constrained decoding ({guide.type})")
        tensors += [_tensor(sig, kind, guide.type), _tensor(sig, text, guide.text)]
    if request.logprobs or request.top_logprobs > 0:
        flag = sig.find("return_log_probs")
        if flag is None or "output_log_probs" not in sig.outputs:
            raise _refuse(request, "logprobs", "'logprobs'")
        tensors.append(_tensor(sig, flag, True))
        # NVIDIA: log-probs need at least one sampling parameter set; top_p 1.0 changes nothing.
        top_p = sig.find("top_p", "runtime_top_p")
        if request.temperature is None and request.top_k is None and request.top_p is None \
                and top_p is not None:
            tensors.append(_tensor(sig, top_p, 1.0))
    if request.top_logprobs > 0:
        top = sig.find("top_logprobs")
        if top is None or "top_log_probs" not in sig.outputs:
            raise _refuse(request, "top_logprobs", "'top_logprobs'")
        tensors.append(_tensor(sig, top, request.top_logprobs))
    return tensors


def _build_llmapi(sig: ModelSignature, request: GenerationRequest) -> list[InferInput]:
    text = sig.find("text_input")
    if text is None or sig.find("sampling_param_max_tokens") is None:
        raise ValueError(f"model {sig.name!r} is not an LLM API model")
    tensors = [_tensor(sig, text, request.prompt)]
    streaming = sig.find("streaming")
    if streaming is not None:
        tensors.append(_tensor(sig, streaming, request.stream))
    # NVIDIA's LLM API model has no guided-decoding, per-token or top log-probability inputs.
    if request.guide is not None:
        raise _refuse(request, request.guide.param, f"constrained decoding ({request.guide.type})")
    if request.top_logprobs > 0:
        raise _refuse(request, "top_logprobs", "'top_logprobs'")
    if request.logprobs:
        raise _refuse(request, "logprobs", "'logprobs'")
    return tensors + _optional(sig, request, _LLMAPI)


def requested_outputs(sig: ModelSignature,
                      request: GenerationRequest | None = None) -> list[InferRequestedOutput]:
    """The outputs to ask for; log-probability outputs only for a request that wants them."""
    wanted: tuple[str, ...] = ("text_output", "num_input_tokens", "num_output_tokens",
                               "finish_reason")
    if request is not None and (request.logprobs or request.top_logprobs > 0):
        wanted += LOGPROB_OUTPUTS
    return [InferRequestedOutput(name) for name in wanted if name in sig.outputs]
