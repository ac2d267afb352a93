"""Fill our TensorRT-LLM model templates (``model_repository/trtllm*/``) for one model.

Every placeholder must get a value (``string.Template.substitute``), and every filled
``config.pbtxt`` is parsed as Triton's ``ModelConfig`` protobuf before it is returned, so a
template or value error fails the build, not Triton's start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from string import Template

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.cpu import triton_name
from build_engines.trtllm import commands
from build_engines.trtllm.config import TrtllmModel
from build_engines.trtllm.tokenizer_info import FILE_NAME

TEMPLATES = Path(__file__).resolve().parents[2] / "model_repository"
ENGINE_MODELS = ("preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls",
                 "multimodal_encoders", "ensemble")


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def fill(template: Path, values: Mapping[str, object]) -> str:
    """Substitute every ``${name}`` of a template.

    Raises:
        KeyError: a placeholder has no value.
        ValueError: a ``${`` is left after filling.
    """
    text = Template(template.read_text()).substitute({k: _text(v) for k, v in values.items()})
    if "${" in text:
        raise ValueError(f"{template}: unfilled placeholder left")
    return text


def parse(text: str) -> mc.ModelConfig:
    """Parse ``config.pbtxt`` text as Triton does.

    Raises:
        google.protobuf.text_format.ParseError: not a valid ModelConfig.
    """
    return text_format.Parse(text, mc.ModelConfig())


def parameters_block(values: Mapping[str, object | None]) -> str:
    """``parameters`` entries for the values that are set."""
    return "".join(f'parameters: {{ key: "{key}" value: {{ string_value: {json.dumps(_text(v))} }} }}\n'
                   for key, v in values.items() if v is not None)


def _common(m: TrtllmModel) -> dict[str, object]:
    return {"triton_max_batch_size": m.max_batch_size, "decoupled_mode": True,
            "max_queue_delay_microseconds": 0, "max_queue_size": 0,
            "logits_datatype": "TYPE_FP32", "prompt_embedding_table_data_type": "TYPE_FP16",
            "encoder_input_features_data_type": "TYPE_FP16"}


def tokenizer_info_path(m: TrtllmModel, workdir: str) -> str:
    """Where the build writes the xgrammar tokenizer-info file (next to the engine)."""
    return f"{commands.engine_dir(m, workdir)}/{FILE_NAME}"


def engine_values(m: TrtllmModel, workdir: str) -> dict[str, object]:
    """Every placeholder of the engine-path templates, for one model."""
    vision_dir = commands.vision_engine_dir(m, workdir) if m.vision else ""
    return {
        **_common(m), "triton_backend": "tensorrtllm", "engine_dir": commands.engine_dir(m, workdir),
        "batching_strategy": "inflight_fused_batching", "max_beam_width": 1,
        "batch_scheduler_policy": m.batch_scheduler_policy,
        "kv_cache_free_gpu_mem_fraction": m.kv_cache_free_gpu_memory_fraction,
        # Image prompts share fake token ids: block reuse would mix images up unless every request
        # carried prompt_table_extra_id, which the gateway does not send.
        "enable_kv_cache_reuse": m.enable_kv_cache_reuse and not m.vision,
        "enable_chunked_context": m.enable_chunked_context, "exclude_input_in_output": True,
        "cancellation_check_period_ms": 100, "stats_check_period_ms": 100,
        "tokenizer_dir": m.hf_model, "hf_model_path": m.hf_model,
        # NVIDIA's C++ model reads both with GetParameter<std::string> outside any try: a missing
        # key fails the load. xgrammar is its only backend; the tokenizer-info file is written
        # next to the engine at build time (tokenizer_info.py). The Python backend reads
        # tokenizer_dir instead.
        "guided_decoding_backend": "xgrammar",
        "xgrammar_tokenizer_info_path": tokenizer_info_path(m, workdir),
        "extra_parameters": parameters_block({
            "max_tokens_in_paged_kv_cache": m.max_tokens_in_paged_kv_cache,
            "gpu_device_ids": m.gpu_device_ids}),
        "bls_instance_count": m.bls_instance_count, "accumulate_tokens": True,
        "tensorrt_llm_model_name": "tensorrt_llm", "tensorrt_llm_draft_model_name": "",
        "multimodal_encoders_name": "multimodal_encoders" if m.vision else "",
        "preprocessing_instance_count": m.tokenizer_instances,
        "postprocessing_instance_count": m.tokenizer_instances,
        # LLaVA engines: NVIDIA's preprocessing builds the prompt ("USER:\n" ... " ASSISTANT:")
        # with the tokenizer's BOS; text models get BOS from the gateway's chat template.
        "add_special_tokens": m.vision, "skip_special_tokens": True,
        "multimodal_model_path": vision_dir, "max_num_images": m.max_images,
    }


def engine_models(m: TrtllmModel) -> list[str]:
    """The Triton models of the engine path for this model."""
    names = ["preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls"]
    if m.vision:
        names.append("multimodal_encoders")
    if m.frontend == "ensemble":
        names.append("ensemble")
    return names


def engine_configs(m: TrtllmModel, workdir: str) -> dict[str, str]:
    """``{triton model name: config.pbtxt text}`` for the engine path, each one parsed."""
    values = engine_values(m, workdir)
    out = {}
    for name in engine_models(m):
        text = fill(TEMPLATES / "trtllm" / name / "config.pbtxt.tmpl", values)
        parse(text)
        out[name] = text
    return out


def llmapi_values(m: TrtllmModel) -> dict[str, object]:
    """Every placeholder of the LLM API templates, for one model."""
    kv_extra = f"  dtype: {m.kv_cache_dtype}\n" if m.kv_cache_dtype != "auto" else ""
    return {
        "model_name": triton_name(m.id), "instance_count": m.instances,
        "extra_parameters": parameters_block({"gpu_device_ids": m.gpu_device_ids}),
        "hf_model": json.dumps(m.hf_model), "tp": m.tp, "pp": m.pp,
        "max_batch_size": m.max_batch_size, "max_num_tokens": m.max_num_tokens,
        "max_seq_len": m.max_seq_len,
        "kv_cache_free_gpu_memory_fraction": m.kv_cache_free_gpu_memory_fraction,
        "enable_kv_cache_reuse": m.enable_kv_cache_reuse, "kv_cache_extra": kv_extra,
        "extra_llm_args": "", "cancellation_check_period_ms": 100,
    }


def llmapi_files(m: TrtllmModel) -> dict[str, str]:
    """``{path in the model folder: text}``: ``config.pbtxt`` (parsed) and ``1/model.yaml``."""
    values = llmapi_values(m)
    config = fill(TEMPLATES / "trtllm_llmapi" / "config.pbtxt.tmpl", values)
    parse(config)
    return {"config.pbtxt": config,
            "1/model.yaml": fill(TEMPLATES / "trtllm_llmapi" / "model.yaml.tmpl", values)}
