"""The TOML file that describes TensorRT-LLM models to build (see docs/examples/trtllm-models.toml).

Example::

    trtllm_root = "/workspace/TensorRT-LLM"   # NVIDIA/TensorRT-LLM at the container's version
    workdir = "/workspace/chungus-build"      # checkpoints and engines

    [[models]]
    id = "llama-3.1-8b-instruct"
    hf_model = "/models/Meta-Llama-3.1-8B-Instruct"   # a local HF checkpoint (no hub access needed)
    path = "engine"            # engine (trtllm-build) | llmapi (PyTorch backend, no engine)
    frontend = "bls"           # bls (cumulative text) | ensemble (per-token text); engine path only
    quantization = "fp8"       # none | fp8 | int4_awq | int8_wo | int8_sq
    max_batch_size = 64
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

Quantization = Literal["none", "fp8", "int4_awq", "int8_wo", "int8_sq"]


class TrtllmModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One model: how to build it and how to serve it."""

    id: str
    hf_model: str
    path: Literal["engine", "llmapi"] = "engine"
    frontend: Literal["bls", "ensemble"] = "bls"
    architecture: Literal["llama", "mistral", "qwen", "gemma"] = "llama"
    # LLaVA-style vision (engine path): a vision encoder engine + the LLM engine with a prompt table.
    vision: bool = False
    vision_model_type: str = "llava"  # build_multimodal_engine.py --model_type
    num_visual_features: int = 576  # image tokens per image (LLaVA-1.5 at 336 px: 576)
    max_images: int = 1  # images per request; >1 makes the gateway send one <image> per image
    dtype: Literal["float16", "bfloat16"] = "bfloat16"
    quantization: Quantization = "none"
    kv_cache_dtype: Literal["auto", "fp8", "int8"] = "auto"
    tp: int = 1
    pp: int = 1
    max_batch_size: int = 64
    max_input_len: int = 4096
    max_seq_len: int = 8192
    max_num_tokens: int = 8192
    paged_kv_cache: bool = True
    use_paged_context_fmha: bool = True
    gemm_plugin: str = "auto"
    gpt_attention_plugin: str = "auto"
    kv_cache_free_gpu_memory_fraction: float = 0.9
    enable_kv_cache_reuse: bool = True
    enable_chunked_context: bool = True
    batch_scheduler_policy: Literal["guaranteed_no_evict", "max_utilization"] = "guaranteed_no_evict"
    max_tokens_in_paged_kv_cache: int | None = None
    calib_size: int = 512
    calib_dataset: str | None = None  # a local dataset dir: quantize.py downloads one otherwise
    instances: int = 1  # LLM API model instances on one node (each gets gpu_device_ids[i])
    gpu_device_ids: str | None = None  # e.g. "0,1;2,3": per instance (llmapi) / per engine rank
    bls_instances: int | None = None  # default: max_batch_size, as NVIDIA's docs advise
    tokenizer_instances: int = 1
    default_max_tokens: int = 512

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError("tp and pp must be >= 1")
        if self.max_input_len >= self.max_seq_len:
            raise ValueError("max_input_len must be smaller than max_seq_len")
        if self.vision and self.path == "engine" and self.frontend != "bls":
            raise ValueError("vision engines need frontend = \"bls\" (the ensemble takes no image_input)")
        if self.vision and self.path == "llmapi":
            raise ValueError("vision on the LLM API path is not supported: that model takes image_url "
                             "strings only, and the gateway sends preprocessed pixels")
        if self.path == "llmapi" and self.quantization != "none":
            raise ValueError("the LLM API path loads pre-quantized checkpoints (ModelOpt exports such as "
                             "nvidia/Llama-3.1-8B-Instruct-FP8): set quantization = \"none\"")
        if self.instances > 1 and not self.gpu_device_ids:
            raise ValueError("instances > 1 needs gpu_device_ids, e.g. \"0,1;2,3\"")
        if self.max_images < 1:
            raise ValueError("max_images must be >= 1")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def max_multimodal_len(self) -> int:
        """NVIDIA: max_multimodal_len = max_batch_size * num_visual_features (times images)."""
        return self.max_batch_size * self.num_visual_features * self.max_images


class BuildFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole TOML file."""

    # NVIDIA/TensorRT-LLM checked out at the tag of the container's TensorRT-LLM: its examples/
    # convert and quantize checkpoints, its triton_backend/ holds the Triton models' Python code.
    trtllm_root: str = "/workspace/TensorRT-LLM"
    workdir: str = "/workspace/chungus-build"
    models: list[TrtllmModel] = msgspec.field(default_factory=list)


def load(path: str | Path) -> BuildFile:
    """Parse and validate a build file.

    Raises:
        msgspec.ValidationError: a field is wrong or unknown.
    """
    return msgspec.convert(tomllib.loads(Path(path).read_text()), BuildFile)
