"""Reading optional request tensors in our Python-backend models (shared: build_engines copies it)."""

import triton_python_backend_utils as pb_utils


class BadRequest(ValueError):
    """A request the model refuses; becomes a Triton error response."""


def optional(request, name, default=None):
    """The first element of an optional input tensor, or ``default``."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    array = tensor.as_numpy()
    if array.size == 0:
        return default
    return array.reshape(-1)[0]


def strings(request, name):
    """The non-empty strings of an optional STRING tensor."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return []
    out = []
    for item in tensor.as_numpy().reshape(-1):
        text = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        if text:
            out.append(text)
    return out


def read_generation(request, seed_bits=32):
    """The chat contract's inputs, validated; ``seed_bits`` is the width the sampler takes.

    Raises:
        BadRequest: missing text_input, a bad max_tokens or sampling value.
    """
    import os

    raw = optional(request, "text_input")
    if raw is None:
        raise BadRequest("invalid request: text_input is required")
    prompt = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else str(raw)
    max_tokens = optional(request, "max_tokens")
    if max_tokens is None or int(max_tokens) < 1:
        raise BadRequest("invalid request: max_tokens must be a positive integer")
    temperature = float(optional(request, "temperature", 1.0))
    top_p = float(optional(request, "top_p", 1.0))
    top_k = int(optional(request, "top_k", 0))
    if not temperature >= 0 or not 0 < top_p <= 1 or top_k < 0:  # NaN fails too
        raise BadRequest("invalid request: temperature must be >= 0, top_p in (0, 1], top_k >= 0")
    min_tokens = int(optional(request, "min_tokens", optional(request, "min_length", 0)))
    if min_tokens < 0:
        raise BadRequest("invalid request: min_tokens must be >= 0")
    min_p = float(optional(request, "min_p", 0.0))
    if not 0 <= min_p <= 1:
        raise BadRequest("invalid request: min_p must be in [0, 1]")
    seed = optional(request, "seed", optional(request, "random_seed"))
    mask = (1 << seed_bits) - 1
    return {
        "prompt": prompt,
        "max_tokens": int(max_tokens),
        # End of generation is suppressed until this many tokens (TensorRT-LLM's min_tokens).
        "min_tokens": min(min_tokens, int(max_tokens)),
        "min_p": min_p,
        "stream": bool(optional(request, "stream", False)),
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "seed": int(seed) & mask if seed is not None else int.from_bytes(os.urandom(seed_bits // 8), "little"),
        "seed_given": seed is not None,
        "stop": strings(request, "stop_words"),
        "exclude_input": bool(optional(request, "exclude_input_in_output", True)),
        "frequency_penalty": float(optional(request, "frequency_penalty", 0.0)),
        "presence_penalty": float(optional(request, "presence_penalty", 0.0)),
        "repetition_penalty": float(optional(request, "repetition_penalty", 1.0)),
        # Constrained decoding (NVIDIA's guided_decoding_* inputs) and log-probabilities.
        "guide": _guide(request),
        "logprobs": bool(optional(request, "return_log_probs", False)),
        "top_logprobs": _top_logprobs(request),
        # Counts come back unless the caller turns them off (TensorRT-LLM's flags).
        "return_counts": bool(optional(request, "return_num_input_tokens", True))
        and bool(optional(request, "return_num_output_tokens", True)),
    }


def _text(request, name):
    raw = optional(request, name)
    if raw is None:
        return None
    return raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else str(raw)


def _guide(request):
    """(guide type, guide text) or None; the text is checked where it is compiled."""
    kind = _text(request, "guided_decoding_guide_type")
    if not kind:
        return None
    return kind, _text(request, "guided_decoding_guide") or ""


def _top_logprobs(request):
    top = int(optional(request, "top_logprobs", 0))
    if not 0 <= top <= 20:
        raise BadRequest("invalid request: top_logprobs must be in [0, 20]")
    return top
