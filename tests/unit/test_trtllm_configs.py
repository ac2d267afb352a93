"""Every config.pbtxt build_engines writes for TensorRT-LLM parses as Triton's ModelConfig protobuf
and carries the tensors, dtypes, dims and parameters NVIDIA's models and Python code rely on."""

from __future__ import annotations

import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.trtllm import repository
from build_engines.trtllm.config import TrtllmModel

# What NVIDIA's tensorrt_llm_bls code (lib/triton_decoder.py) requests and sends, by name.
BLS_REQUESTS_FROM_PREPROCESSING = [
    "INPUT_ID", "DECODER_INPUT_ID", "REQUEST_INPUT_LEN", "REQUEST_DECODER_INPUT_LEN", "BAD_WORDS_IDS",
    "STOP_WORDS_IDS", "EMBEDDING_BIAS", "OUT_PAD_ID", "OUT_END_ID", "OUT_PROMPT_TABLE_EXTRA_IDS",
    "PIXEL_VALUES", "IMAGE_SIZES", "IS_VIDEO_INPUT", "VISION_INPUT_ID", "ATTENTION_MASK", "IMAGE_GRID_THW"]
BLS_REQUESTS_FROM_CORE = [
    "output_ids", "sequence_length", "cum_log_probs", "output_log_probs", "context_logits",
    "generation_logits", "batch_index", "sequence_index", "kv_cache_alloc_new_blocks",
    "kv_cache_reused_blocks", "kv_cache_alloc_total_blocks", "arrival_time_ns", "first_scheduled_time_ns",
    "first_token_time_ns", "last_token_time_ns", "acceptance_rate", "total_accepted_draft_tokens",
    "total_draft_tokens", "num_input_tokens", "num_output_tokens"]
BLS_SENDS_TO_CORE = [
    "input_ids", "decoder_input_ids", "input_lengths", "bad_words_list", "stop_words_list",
    "embedding_bias", "pad_id", "end_id", "prompt_table_extra_ids", "prompt_embedding_table",
    "prompt_vocab_size", "mrope_rotary_cos_sin", "mrope_position_deltas", "beam_width", "runtime_top_k",
    "runtime_top_p", "temperature", "len_penalty", "repetition_penalty", "min_tokens", "presence_penalty",
    "frequency_penalty", "seed", "return_log_probs", "streaming", "lora_task_id", "lora_weights",
    "lora_config", "exclude_input_in_output", "return_perf_metrics", "guided_decoding_guide_type",
    "guided_decoding_guide", "return_num_input_tokens", "return_num_output_tokens", "request_output_len",
    "draft_input_ids", "draft_logits", "return_context_logits", "return_generation_logits", "stop"]
BLS_READS = [  # TritonDecoder.input_names
    "text_input", "decoder_text_input", "image_input", "image_bytes_input", "image_url_input",
    "video_bytes_input", "max_tokens", "bad_words", "stop_words", "end_id", "pad_id", "top_k", "top_p",
    "temperature", "length_penalty", "repetition_penalty", "min_tokens", "presence_penalty",
    "frequency_penalty", "seed", "return_log_probs", "return_context_logits", "return_generation_logits",
    "beam_width", "stream", "prompt_embedding_table", "prompt_vocab_size", "prompt_table_extra_id",
    "embedding_bias_words", "embedding_bias_weights", "num_draft_tokens", "use_draft_logits",
    "lora_task_id", "lora_weights", "lora_config", "exclude_input_in_output", "return_perf_metrics",
    "guided_decoding_guide_type", "guided_decoding_guide", "return_num_input_tokens",
    "return_num_output_tokens"]


def _model(**kw: object) -> TrtllmModel:
    return TrtllmModel(**{"id": "m", "hf_model": "/models/m", **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def configs() -> dict[str, mc.ModelConfig]:
    texts = repository.engine_configs(_model(vision=True, dtype="float16", frontend="bls", max_batch_size=16), "/w")
    texts |= {"ensemble": repository.engine_configs(_model(frontend="ensemble"), "/w")["ensemble"]}
    return {name: text_format.Parse(text, mc.ModelConfig()) for name, text in texts.items()}


def _inputs(config: mc.ModelConfig) -> dict[str, mc.ModelInput]:
    return {t.name: t for t in config.input}


def _outputs(config: mc.ModelConfig) -> dict[str, mc.ModelOutput]:
    return {t.name: t for t in config.output}


def _sig(t: mc.ModelInput | mc.ModelOutput) -> tuple[str, list[int]]:
    return mc.DataType.Name(t.data_type), list(t.dims)


def test_every_engine_config_is_named_after_its_folder(configs: dict[str, mc.ModelConfig]) -> None:
    assert set(configs) == {"preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls",
                            "multimodal_encoders", "ensemble"}
    for name, config in configs.items():
        assert config.name == name
        for t in [*config.input, *config.output]:
            assert t.data_type != mc.TYPE_INVALID and len(t.dims) > 0, (name, t.name)


def test_core_model(configs: dict[str, mc.ModelConfig]) -> None:
    core = configs["tensorrt_llm"]
    inputs = _inputs(core)
    assert core.backend == "tensorrtllm" and core.max_batch_size == 16
    assert core.model_transaction_policy.decoupled
    assert list(core.dynamic_batching.preferred_batch_size) == [16]
    assert inputs["input_ids"].allow_ragged_batch and _sig(inputs["input_ids"]) == ("TYPE_INT32", [-1])
    for name in ("input_lengths", "request_output_len", "streaming", "stop", "seed", "end_id"):
        assert inputs[name].HasField("reshape") and list(inputs[name].reshape.shape) == [], name
    assert not inputs["input_lengths"].optional and not inputs["request_output_len"].optional
    assert _sig(inputs["stop_words_list"]) == ("TYPE_INT32", [2, -1])
    assert _sig(inputs["seed"]) == ("TYPE_UINT64", [1])
    assert _sig(_outputs(core)["output_ids"]) == ("TYPE_INT32", [-1, -1])
    params = {k: v.string_value for k, v in core.parameters.items()}
    assert params["gpt_model_path"] == "/w/m/engine"
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["exclude_input_in_output"] == "true"
    assert params["enable_kv_cache_reuse"] == "false", "vision engines must not reuse fake prompt ids"
    assert params["executor_worker_path"].endswith("trtllmExecutorWorker")


def test_what_nvidias_bls_code_asks_for_is_declared(configs: dict[str, mc.ModelConfig]) -> None:
    assert set(BLS_REQUESTS_FROM_PREPROCESSING) <= set(_outputs(configs["preprocessing"]))
    assert set(BLS_REQUESTS_FROM_CORE) <= set(_outputs(configs["tensorrt_llm"]))
    assert set(BLS_SENDS_TO_CORE) <= set(_inputs(configs["tensorrt_llm"]))
    assert set(BLS_READS) <= set(_inputs(configs["tensorrt_llm_bls"]))


def test_bls_front(configs: dict[str, mc.ModelConfig]) -> None:
    bls = configs["tensorrt_llm_bls"]
    inputs, outputs = _inputs(bls), _outputs(bls)
    assert bls.backend == "python" and bls.model_transaction_policy.decoupled
    assert _sig(inputs["text_input"]) == ("TYPE_STRING", [1]) and not inputs["text_input"].optional
    assert _sig(inputs["max_tokens"]) == ("TYPE_INT32", [1]) and not inputs["max_tokens"].optional
    assert _sig(inputs["image_input"]) == ("TYPE_FP16", [-1, 3, -1, -1])
    assert "random_seed" not in inputs and "min_length" not in inputs
    assert _sig(outputs["text_output"]) == ("TYPE_STRING", [-1])
    assert _sig(outputs["num_output_tokens"]) == ("TYPE_INT32", [1])
    params = {k: v.string_value for k, v in bls.parameters.items()}
    assert params == {"accumulate_tokens": "true", "tensorrt_llm_model_name": "tensorrt_llm",
                      "tensorrt_llm_draft_model_name": "", "multimodal_encoders_name": "multimodal_encoders"}
    assert bls.instance_group[0].count == 16  # NVIDIA: BLS instances = max batch size


def test_ensemble_wiring_matches_the_step_models(configs: dict[str, mc.ModelConfig]) -> None:
    ensemble = configs["ensemble"]
    assert ensemble.platform == "ensemble" and not ensemble.backend
    tensors = {name: _sig(t)[0] for name, t in _inputs(ensemble).items()}
    for step in ensemble.ensemble_scheduling.step:
        model = configs[step.model_name]
        ins, outs = _inputs(model), _outputs(model)
        for key, value in step.input_map.items():
            assert key in ins, (step.model_name, key)
            assert tensors[value] == _sig(ins[key])[0], (step.model_name, key, value)
        for key, value in step.output_map.items():
            assert key in outs, (step.model_name, key)
            tensors[value] = _sig(outs[key])[0]
    for name, output in _outputs(ensemble).items():
        assert tensors.get(name) == _sig(output)[0], name
    required = {n for n, t in _inputs(configs["tensorrt_llm"]).items() if not t.optional}
    core_step = ensemble.ensemble_scheduling.step[1]
    assert required <= set(core_step.input_map)


def test_tokenizer_models_and_vision(configs: dict[str, mc.ModelConfig]) -> None:
    pre = {k: v.string_value for k, v in configs["preprocessing"].parameters.items()}
    assert pre["tokenizer_dir"] == "/models/m" and pre["multimodal_model_path"] == "/w/m/vision_engine"
    assert pre["gpt_model_path"] == "/w/m/engine" and pre["add_special_tokens"] == "true"
    enc = configs["multimodal_encoders"]
    assert _sig(_outputs(enc)["OUT_PROMPT_EMBEDDING_TABLE"]) == ("TYPE_FP16", [-1, -1])
    text_only = repository.engine_configs(_model(), "/w")
    assert "multimodal_encoders" not in text_only
    pre_text = text_format.Parse(text_only["preprocessing"], mc.ModelConfig())
    assert pre_text.parameters["add_special_tokens"].string_value == "false"  # the template has BOS
    assert pre_text.parameters["multimodal_model_path"].string_value == ""


def test_optional_core_parameters_only_when_set() -> None:
    plain = text_format.Parse(repository.engine_configs(_model(), "/w")["tensorrt_llm"], mc.ModelConfig())
    assert "gpu_device_ids" not in plain.parameters
    tuned = repository.engine_configs(_model(max_tokens_in_paged_kv_cache=4096, gpu_device_ids="0,1"), "/w")
    params = text_format.Parse(tuned["tensorrt_llm"], mc.ModelConfig()).parameters
    assert params["max_tokens_in_paged_kv_cache"].string_value == "4096"
    assert params["gpu_device_ids"].string_value == "0,1"


def test_llmapi_model_and_yaml() -> None:
    m = _model(id="Qwen2.5-7B", path="llmapi", tp=2, max_seq_len=16384, max_input_len=8192,
               kv_cache_dtype="fp8", instances=2, gpu_device_ids="0,1;2,3")
    files = repository.llmapi_files(m)
    config = text_format.Parse(files["config.pbtxt"], mc.ModelConfig())
    inputs, outputs = _inputs(config), _outputs(config)
    assert config.name == "qwen2_5_7b" and config.backend == "python"
    assert config.max_batch_size == 0 and config.model_transaction_policy.decoupled
    assert config.instance_group[0].count == 2
    assert config.parameters["gpu_device_ids"].string_value == "0,1;2,3"
    assert _sig(inputs["text_input"]) == ("TYPE_STRING", [-1]) and not inputs["text_input"].optional
    assert _sig(inputs["sampling_param_max_tokens"]) == ("TYPE_INT32", [1])
    assert _sig(inputs["sampling_param_seed"]) == ("TYPE_UINT64", [1])
    assert _sig(inputs["streaming"]) == ("TYPE_BOOL", [1])
    assert "num_output_tokens" not in outputs and "finish_reason" in outputs
    args = yaml.safe_load(files["1/model.yaml"])
    assert args["backend"] == "pytorch" and args["tensor_parallel_size"] == 2
    assert args["max_seq_len"] == 16384 and args["kv_cache_config"]["dtype"] == "fp8"
    assert args["triton_config"] == {"max_batch_size": 0, "decoupled": True,
                                     "cancellation_check_period_ms": 100}


def test_a_missing_value_fails_the_fill(tmp_path: object) -> None:
    with pytest.raises(KeyError):
        repository.fill(repository.TEMPLATES / "trtllm" / "ensemble" / "config.pbtxt.tmpl", {})
