"""The TOML file that describes TensorRT-LLM models to build.

Example::

    [[models]]
    id = "llama-3.1-8b-instruct"
    hf_model = "/models/Meta-Llama-3.1-8B-Instruct"   # a local HF checkpoint (no hub access needed)
    path = "engine"            # engine (trtllm-build) | llmapi (PyTorch backend, no engine)
    frontend = "bls"           # bls (cumulative text) | ensemble (per-token text); engine path only
    dtype = "bfloat16"
    quantization = "fp8"       # none | fp8 | int4_awq | int8_wo | int8_sq
    tp = 1
    max_batch_size = 64
    max_input_len = 4096
    max_seq_len = 8192
    max_num_tokens = 8192
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

Quantization = Literal["none", "fp8", "int4_awq", "int8_wo", "int8_sq"]


class TrtllmModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    hf_model: str
    path: Literal["engine", "llmapi"] = "engine"
    frontend: Literal["bls", "ensemble"] = "bls"
    architecture: Literal["llama", "qwen", "mistral", "gemma"] = "llama"
    vision: bool = False
    vision_model_type: str = "llava"  # build_multimodal_engine.py --model_type
    num_visual_features: int = 576  # image tokens per image (LLaVA-1.5 at 336 px: 576)
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
    kv_cache_free_gpu_memory_fraction: float = 0.9
    enable_kv_cache_reuse: bool = True
    calib_size: int = 512
    calib_dataset: str | None = None  # a local dataset dir: quantize.py downloads one otherwise
    instances: int = 1
    bls_instances: int | None = None  # default: max_batch_size, as NVIDIA's docs advise
    tokenizer_instances: int = 1
    default_max_tokens: int = 512

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError("tp and pp must be >= 1")
        if self.max_input_len >= self.max_seq_len:
            raise ValueError("max_input_len must be smaller than max_seq_len")
        if self.vision and self.path == "engine" and self.frontend != "bls":
            raise ValueError("vision models need the BLS frontend (image_input)")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def max_multimodal_len(self) -> int:
        """NVIDIA: max_multimodal_len = max_batch_size * num_visual_features."""
        return self.max_batch_size * self.num_visual_features


class BuildFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    workdir: str = "/workspace/chungus-build"
    models: list[TrtllmModel] = msgspec.field(default_factory=list)


def load(path: str | Path) -> BuildFile:
    """Parse and validate a build file.

    Raises:
        msgspec.ValidationError: a field is wrong or unknown.
    """
    return msgspec.convert(tomllib.loads(Path(path).read_text()), BuildFile)
