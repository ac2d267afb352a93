"""NVIDIA's TensorRT-LLM Triton tensor interfaces, as data (one source for configs and test doubles).

Names, dtypes and dims follow TensorRT-LLM's ``triton_backend/all_models`` (inflight_batcher_llm
and llmapi) as documented in shared/reference/nvidia_stack.md sections 1.2-1.4 and 1.8.
"""

from __future__ import annotations

from typing import NamedTuple


class Tensor(NamedTuple):
    name: str
    dtype: str  # Triton config spelling without TYPE_, e.g. "STRING"
    dims: tuple[int, ...]
    optional: bool = True


def _opt(*items: tuple[str, str, tuple[int, ...]]) -> list[Tensor]:
    return [Tensor(n, d, dims) for n, d, dims in items]


# Text inputs shared by the ensemble and the BLS model (current names: seed, min_tokens).
TEXT_INPUTS: list[Tensor] = [
    Tensor("text_input", "STRING", (1,), optional=False),
    Tensor("max_tokens", "INT32", (1,), optional=False),
    *_opt(
        ("bad_words", "STRING", (-1,)), ("stop_words", "STRING", (-1,)),
        ("exclude_input_in_output", "BOOL", (1,)), ("end_id", "INT32", (1,)),
        ("pad_id", "INT32", (1,)), ("top_k", "INT32", (1,)), ("top_p", "FP32", (1,)),
        ("temperature", "FP32", (1,)), ("length_penalty", "FP32", (1,)),
        ("repetition_penalty", "FP32", (1,)), ("min_tokens", "INT32", (1,)),
        ("presence_penalty", "FP32", (1,)), ("frequency_penalty", "FP32", (1,)),
        ("seed", "UINT64", (1,)), ("return_log_probs", "BOOL", (1,)),
        ("return_context_logits", "BOOL", (1,)), ("return_generation_logits", "BOOL", (1,)),
        ("return_perf_metrics", "BOOL", (1,)), ("return_num_input_tokens", "BOOL", (1,)),
        ("return_num_output_tokens", "BOOL", (1,)), ("num_return_sequences", "INT32", (1,)),
        ("beam_width", "INT32", (1,)), ("stream", "BOOL", (1,)),
        ("prompt_embedding_table", "FP16", (-1, -1)), ("prompt_vocab_size", "INT32", (1,)),
        ("prompt_table_extra_id", "UINT64", (1,)), ("embedding_bias_words", "STRING", (-1,)),
        ("embedding_bias_weights", "FP32", (-1,)), ("lora_task_id", "UINT64", (1,)),
        ("lora_weights", "FP16", (-1, -1)), ("lora_config", "INT32", (-1, 3)),
    ),
]

BLS_EXTRA_INPUTS: list[Tensor] = _opt(
    ("image_input", "FP16", (-1, 3, -1, -1)), ("image_bytes_input", "UINT8", (-1, -1, -1, -1)),
    ("image_url_input", "STRING", (1,)), ("num_draft_tokens", "INT32", (1,)),
    ("use_draft_logits", "BOOL", (1,)),
)

TEXT_OUTPUTS: list[Tensor] = [
    Tensor("text_output", "STRING", (-1,), False), Tensor("cum_log_probs", "FP32", (-1,), False),
    Tensor("output_log_probs", "FP32", (-1, -1), False),
    Tensor("batch_index", "INT32", (1,), False), Tensor("sequence_index", "INT32", (1,), False),
    Tensor("num_input_tokens", "INT32", (1,), False), Tensor("num_output_tokens", "INT32", (1,), False),
]

# The core C++ model (tensorrt_llm): token ids in, token ids out.
CORE_INPUTS: list[Tensor] = [
    Tensor("input_ids", "INT32", (-1,), False), Tensor("input_lengths", "INT32", (1,), False),
    Tensor("request_output_len", "INT32", (1,), False),
    *_opt(
        ("end_id", "INT32", (1,)), ("pad_id", "INT32", (1,)),
        ("stop_words_list", "INT32", (2, -1)), ("bad_words_list", "INT32", (2, -1)),
        ("embedding_bias", "FP32", (-1,)), ("beam_width", "INT32", (1,)),
        ("temperature", "FP32", (1,)), ("runtime_top_k", "INT32", (1,)),
        ("runtime_top_p", "FP32", (1,)), ("len_penalty", "FP32", (1,)),
        ("repetition_penalty", "FP32", (1,)), ("min_tokens", "INT32", (1,)),
        ("presence_penalty", "FP32", (1,)), ("frequency_penalty", "FP32", (1,)),
        ("seed", "UINT64", (1,)), ("return_log_probs", "BOOL", (1,)),
        ("return_context_logits", "BOOL", (1,)), ("return_generation_logits", "BOOL", (1,)),
        ("return_num_input_tokens", "BOOL", (1,)), ("return_num_output_tokens", "BOOL", (1,)),
        ("exclude_input_in_output", "BOOL", (1,)), ("stop", "BOOL", (1,)),
        ("streaming", "BOOL", (1,)), ("prompt_embedding_table", "FP16", (-1, -1)),
        ("prompt_vocab_size", "INT32", (1,)), ("num_return_sequences", "INT32", (1,)),
    ),
]
CORE_OUTPUTS: list[Tensor] = [
    Tensor("output_ids", "INT32", (-1, -1), False), Tensor("sequence_length", "INT32", (-1,), False),
    Tensor("cum_log_probs", "FP32", (-1,), False), Tensor("output_log_probs", "FP32", (-1, -1), False),
    Tensor("batch_index", "INT32", (1,), False), Tensor("sequence_index", "INT32", (1,), False),
    Tensor("num_input_tokens", "INT32", (1,), False), Tensor("num_output_tokens", "INT32", (1,), False),
]

PREPROCESSING_INPUTS: list[Tensor] = [
    Tensor("QUERY", "STRING", (1,), False), Tensor("REQUEST_OUTPUT_LEN", "INT32", (1,), False),
    *_opt(("BAD_WORDS_DICT", "STRING", (-1,)), ("STOP_WORDS_DICT", "STRING", (-1,)),
          ("EMBEDDING_BIAS_WORDS", "STRING", (-1,)), ("EMBEDDING_BIAS_WEIGHTS", "FP32", (-1,)),
          ("END_ID", "INT32", (1,)), ("PAD_ID", "INT32", (1,))),
]
PREPROCESSING_OUTPUTS: list[Tensor] = [
    Tensor("INPUT_ID", "INT32", (-1,), False), Tensor("REQUEST_INPUT_LEN", "INT32", (1,), False),
    Tensor("BAD_WORDS_IDS", "INT32", (2, -1), False), Tensor("STOP_WORDS_IDS", "INT32", (2, -1), False),
    Tensor("EMBEDDING_BIAS", "FP32", (-1,), False), Tensor("REQUEST_OUTPUT_LEN", "INT32", (-1,), False),
    Tensor("OUT_END_ID", "INT32", (-1,), False), Tensor("OUT_PAD_ID", "INT32", (-1,), False),
]
POSTPROCESSING_INPUTS: list[Tensor] = [
    Tensor("TOKENS_BATCH", "INT32", (-1, -1), False), Tensor("SEQUENCE_LENGTH", "INT32", (-1,), False),
]
POSTPROCESSING_OUTPUTS: list[Tensor] = [Tensor("OUTPUT", "STRING", (-1,), False)]

# The LLM API (PyTorch backend) Python model: max_batch_size 0, so dims are the full shapes.
LLMAPI_INPUTS: list[Tensor] = [
    Tensor("text_input", "STRING", (-1,), False),
    *_opt(
        ("image_url", "STRING", (-1,)), ("streaming", "BOOL", (1,)),
        ("sampling_param_best_of", "INT32", (1,)), ("sampling_param_temperature", "FP32", (1,)),
        ("sampling_param_top_k", "INT32", (1,)), ("sampling_param_top_p", "FP32", (1,)),
        ("sampling_param_frequency_penalty", "FP32", (1,)),
        ("sampling_param_presence_penalty", "FP32", (1,)),
        ("sampling_param_max_tokens", "INT32", (1,)), ("sampling_param_stop", "STRING", (-1,)),
        ("sampling_param_seed", "UINT64", (1,)),
        ("sampling_param_exclude_input_from_output", "BOOL", (1,)),
        ("sampling_param_return_perf_metrics", "BOOL", (1,)), ("return_finish_reason", "BOOL", (1,)),
        ("return_stop_reason", "BOOL", (1,)), ("return_cumulative_logprob", "BOOL", (1,)),
        ("stop", "BOOL", (1,)), ("lora_id", "UINT64", (1,)), ("lora_name", "STRING", (1,)),
        ("lora_path", "STRING", (1,)),
    ),
]
LLMAPI_OUTPUTS: list[Tensor] = [
    Tensor("text_output", "STRING", (-1,), False), Tensor("finish_reason", "STRING", (-1,), False),
    Tensor("stop_reason", "STRING", (-1,), False), Tensor("cumulative_logprob", "FP32", (-1,), False),
]

# Ensemble wiring: (step model, {step input: ensemble tensor}, {step output: ensemble tensor}).
ENSEMBLE_STEPS: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("preprocessing",
     {"QUERY": "text_input", "REQUEST_OUTPUT_LEN": "max_tokens", "BAD_WORDS_DICT": "bad_words",
      "STOP_WORDS_DICT": "stop_words", "EMBEDDING_BIAS_WORDS": "embedding_bias_words",
      "EMBEDDING_BIAS_WEIGHTS": "embedding_bias_weights", "END_ID": "end_id", "PAD_ID": "pad_id"},
     {"INPUT_ID": "_INPUT_ID", "REQUEST_INPUT_LEN": "_REQUEST_INPUT_LEN",
      "STOP_WORDS_IDS": "_STOP_WORDS_IDS", "BAD_WORDS_IDS": "_BAD_WORDS_IDS",
      "EMBEDDING_BIAS": "_EMBEDDING_BIAS", "REQUEST_OUTPUT_LEN": "_REQUEST_OUTPUT_LEN",
      "OUT_END_ID": "_PREPROCESSOR_END_ID", "OUT_PAD_ID": "_PREPROCESSOR_PAD_ID"}),
    ("tensorrt_llm",
     {"input_ids": "_INPUT_ID", "input_lengths": "_REQUEST_INPUT_LEN",
      "request_output_len": "_REQUEST_OUTPUT_LEN", "end_id": "_PREPROCESSOR_END_ID",
      "pad_id": "_PREPROCESSOR_PAD_ID", "stop_words_list": "_STOP_WORDS_IDS",
      "bad_words_list": "_BAD_WORDS_IDS", "embedding_bias": "_EMBEDDING_BIAS",
      "runtime_top_k": "top_k", "runtime_top_p": "top_p", "temperature": "temperature",
      "len_penalty": "length_penalty", "repetition_penalty": "repetition_penalty",
      "min_tokens": "min_tokens", "presence_penalty": "presence_penalty",
      "frequency_penalty": "frequency_penalty", "seed": "seed", "streaming": "stream",
      "exclude_input_in_output": "exclude_input_in_output",
      "return_num_input_tokens": "return_num_input_tokens",
      "return_num_output_tokens": "return_num_output_tokens", "beam_width": "beam_width"},
     {"output_ids": "_TOKENS_BATCH", "sequence_length": "_SEQUENCE_LENGTH",
      "cum_log_probs": "cum_log_probs", "output_log_probs": "output_log_probs",
      "batch_index": "batch_index", "sequence_index": "sequence_index",
      "num_input_tokens": "num_input_tokens", "num_output_tokens": "num_output_tokens"}),
    ("postprocessing", {"TOKENS_BATCH": "_TOKENS_BATCH", "SEQUENCE_LENGTH": "_SEQUENCE_LENGTH"},
     {"OUTPUT": "text_output"}),
]
