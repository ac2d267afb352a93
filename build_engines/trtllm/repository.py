"""Triton model configs for TensorRT-LLM, built as ``ModelConfig`` protobufs (so they always parse).

``engine_repository`` writes the engine path (tensorrt_llm + tensorrt_llm_bls, or the ensemble
with preprocessing/postprocessing); ``llmapi_repository`` the LLM API (PyTorch backend) model.
The Python code of NVIDIA's models (BLS, pre/postprocessing, LLM API ``model.py``) ships in the
serving container under ``/app/all_models``; ``build_engines`` copies it from there at build time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.trtllm import specs
from build_engines.trtllm.config import TrtllmModel

TRITON_MAX_BATCH = 64


def _io(target: Iterable[object], tensors: Iterable[specs.Tensor], outputs: bool = False) -> None:
    for t in tensors:
        item = target.add()  # type: ignore[attr-defined]
        item.name = t.name
        item.data_type = mc.DataType.Value(f"TYPE_{t.dtype}")
        item.dims.extend(t.dims)
        if not outputs and t.optional:
            item.optional = True


def _params(config: mc.ModelConfig, values: Mapping[str, object]) -> None:
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        config.parameters[key].string_value = text


def model_config(name: str, *, backend: str | None, max_batch_size: int, inputs: list[specs.Tensor],
                 outputs: list[specs.Tensor], decoupled: bool | None = None,
                 instances: int = 1, kind: str = "KIND_CPU",
                 parameters: Mapping[str, object] | None = None) -> mc.ModelConfig:
    """One model's config."""
    config = mc.ModelConfig(name=name, max_batch_size=max_batch_size)
    if backend:
        config.backend = backend
    if decoupled is not None:
        config.model_transaction_policy.decoupled = decoupled
    _io(config.input, inputs)
    _io(config.output, outputs, outputs=True)
    if backend:
        group = config.instance_group.add()
        group.count = instances
        group.kind = mc.ModelInstanceGroup.Kind.Value(kind)
    _params(config, parameters or {})
    return config


def core_config(m: TrtllmModel, engine_dir: str) -> mc.ModelConfig:
    """``tensorrt_llm``: the C++ backend on the engine, decoupled for streaming."""
    config = model_config(
        "tensorrt_llm", backend="tensorrtllm", max_batch_size=m.max_batch_size, decoupled=True,
        inputs=specs.CORE_INPUTS, outputs=specs.CORE_OUTPUTS,
        parameters={
            "gpt_model_type": "inflight_fused_batching", "gpt_model_path": engine_dir,
            "batch_scheduler_policy": "guaranteed_no_evict",
            "kv_cache_free_gpu_mem_fraction": m.kv_cache_free_gpu_memory_fraction,
            "enable_kv_cache_reuse": m.enable_kv_cache_reuse,
            "exclude_input_in_output": True, "max_beam_width": 1,
            "enable_chunked_context": True,
        })
    config.dynamic_batching.preferred_batch_size.append(m.max_batch_size)
    config.dynamic_batching.max_queue_delay_microseconds = 0
    return config


def bls_config(m: TrtllmModel) -> mc.ModelConfig:
    """``tensorrt_llm_bls``: decoupled, cumulative text (accumulate_tokens), our contract's front."""
    return model_config(
        "tensorrt_llm_bls", backend="python", max_batch_size=m.max_batch_size, decoupled=True,
        inputs=specs.TEXT_INPUTS + specs.BLS_EXTRA_INPUTS, outputs=specs.TEXT_OUTPUTS,
        instances=m.bls_instances or m.max_batch_size,
        parameters={"accumulate_tokens": True, "tensorrt_llm_model_name": "tensorrt_llm",
                    "tensorrt_llm_draft_model_name": "",
                    "multimodal_encoders_name": "multimodal_encoders" if m.vision else ""})


def tokenizer_config(name: str, m: TrtllmModel, inputs: list[specs.Tensor],
                     outputs: list[specs.Tensor]) -> mc.ModelConfig:
    params: dict[str, object] = {"tokenizer_dir": m.hf_model}
    if name == "postprocessing":
        params["skip_special_tokens"] = True
    else:
        params["add_special_tokens"] = False
    return model_config(name, backend="python", max_batch_size=m.max_batch_size, inputs=inputs,
                        outputs=outputs, instances=m.tokenizer_instances, parameters=params)


def ensemble_config(m: TrtllmModel) -> mc.ModelConfig:
    """``ensemble``: preprocessing -> tensorrt_llm -> postprocessing (per-token deltas)."""
    config = model_config("ensemble", backend=None, max_batch_size=m.max_batch_size,
                          inputs=specs.TEXT_INPUTS, outputs=specs.TEXT_OUTPUTS)
    config.platform = "ensemble"
    for step_model, inputs, outputs in specs.ENSEMBLE_STEPS:
        step = config.ensemble_scheduling.step.add()
        step.model_name = step_model
        step.model_version = -1
        step.input_map.update(inputs)
        step.output_map.update(outputs)
    return config


def llmapi_config(m: TrtllmModel) -> mc.ModelConfig:
    """The LLM API model: Python backend, ``max_batch_size: 0`` (TRT-LLM batches inside)."""
    return model_config("tensorrt_llm", backend="python", max_batch_size=0, decoupled=True,
                        inputs=specs.LLMAPI_INPUTS, outputs=specs.LLMAPI_OUTPUTS,
                        instances=m.instances)


def llmapi_yaml(m: TrtllmModel) -> str:
    """``model.yaml``: every key but ``triton_config`` goes to ``tensorrt_llm.LLM(**args)``."""
    lines = [f"model: {m.hf_model}", 'backend: "pytorch"',
             f"tensor_parallel_size: {m.tp}", f"pipeline_parallel_size: {m.pp}",
             f"max_batch_size: {m.max_batch_size}", f"max_num_tokens: {m.max_num_tokens}",
             f"max_seq_len: {m.max_seq_len}", "kv_cache_config:",
             f"  free_gpu_memory_fraction: {m.kv_cache_free_gpu_memory_fraction}",
             f"  enable_block_reuse: {str(m.enable_kv_cache_reuse).lower()}",
             "triton_config:", "  max_batch_size: 0", "  decoupled: true"]
    if m.vision:
        lines.append("  multimodal: true")
    return "\n".join(lines) + "\n"


def dump(config: mc.ModelConfig) -> str:
    """The text form Triton reads from ``config.pbtxt``."""
    return "# Written by build_engines (TensorRT-LLM); edit the TOML and rebuild instead.\n" + \
        text_format.MessageToString(config)
