"""Request -> tensors: only declared inputs, old and new names, batch dims."""

from __future__ import annotations

import numpy as np

from gateway.backends.base import GenerationRequest
from gateway.backends.triton.tensors import ModelSignature, build_inputs, requested_outputs
from gateway.registry import ModelEntry

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
    req = GenerationRequest(model=ENTRY, prompt="hi", max_tokens=5, temperature=0.5, top_p=0.9,
                            stop=("a", "b"), seed=3)
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
