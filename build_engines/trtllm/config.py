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
    # NVIDIA's BLS serves one request per instance for the whole generation (its decoupled execute
    # loops until the last token), so the instance count caps the requests in flight on the BLS
    # path. Default: max_batch_size, NVIDIA's advice, so the engine's batch can fill. Each instance
    # is one Python stub process (see docs/gpu.md for its memory cost); set fewer to trade peak
    # concurrency on the BLS path for memory (the ensemble path does not use these instances).
    bls_instances: int | None = None
    tokenizer_instances: int = 1
    default_max_tokens: int = 512

    def __post_init__(self) -> None:
        problems = refusals(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def bls_instance_count(self) -> int:
        """Instances of NVIDIA's BLS: one per request the engine can batch (see ``bls_instances``)."""
        return self.bls_instances or self.max_batch_size

    @property
    def needs_calibration(self) -> bool:
        """Whether the convert/quantize step calibrates on a dataset (NVIDIA's default: a download)."""
        if self.path != "engine":
            return False
        return self.kv_cache_dtype != "auto" or self.quantization in ("fp8", "int4_awq", "int8_sq")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def max_multimodal_len(self) -> int:
        """NVIDIA: max_multimodal_len = max_batch_size * num_visual_features (times images)."""
        return self.max_batch_size * self.num_visual_features * self.max_images


def refusals(m: TrtllmModel) -> list[str]:
    """Every reason NVIDIA's code would reject (or silently mis-build) this model; empty when fine."""
    out = []
    if m.tp < 1 or m.pp < 1:
        out.append("tp and pp must be >= 1")
    if m.max_input_len >= m.max_seq_len:
        out.append("max_input_len must be smaller than max_seq_len")
    if m.max_images < 1:
        out.append("max_images must be >= 1")
    if m.instances > 1 and not m.gpu_device_ids:
        out.append("instances > 1 needs gpu_device_ids, e.g. \"0,1;2,3\"")
    if m.bls_instances is not None and m.bls_instances < 1:
        out.append("bls_instances must be >= 1")
    if m.path == "engine":
        out += _engine_refusals(m)
    else:
        out += _llmapi_refusals(m)
    return out


def _engine_refusals(m: TrtllmModel) -> list[str]:
    out = []
    if m.vision and m.frontend != "bls":
        out.append("vision engines need frontend = \"bls\" (the ensemble takes no image_input)")
    if m.vision and m.dtype != "float16":
        out.append("vision engines need dtype = \"float16\": NVIDIA's multimodal_encoders (a Python model) "
                   "passes an FP16 prompt table and Triton's Python backend has no BF16 tensors")
    if not m.paged_kv_cache:
        out.append("paged_kv_cache = false cannot serve: NVIDIA's Triton model runs in-flight batching, "
                   "which needs the paged KV cache")
    if m.architecture == "gemma" and m.pp > 1:
        out.append("Gemma's convert_checkpoint.py has no pipeline parallelism (only --world-size = tp): "
                   "set pp = 1")
    if m.needs_calibration and not m.calib_dataset:
        out.append(f"quantization = \"{m.quantization}\" / kv_cache_dtype = \"{m.kv_cache_dtype}\" calibrates on "
                   "a dataset, and NVIDIA's scripts download one by default: set calib_dataset to a local "
                   "copy (an absolute path)")
    if m.calib_dataset and not m.calib_dataset.startswith("/"):
        out.append("calib_dataset must be an absolute path to a local dataset (a hub name would be downloaded)")
    return out


def _llmapi_refusals(m: TrtllmModel) -> list[str]:
    out = []
    if m.vision:
        out.append("vision on the LLM API path is not supported: that model takes image_url strings only, "
                   "and the gateway sends preprocessed pixels")
    if m.quantization != "none":
        out.append("the LLM API path loads pre-quantized checkpoints (ModelOpt exports such as "
                   "nvidia/Llama-3.1-8B-Instruct-FP8): set quantization = \"none\"")
    if m.kv_cache_dtype == "int8":
        out.append("the LLM API (PyTorch backend) has no int8 KV cache: use kv_cache_dtype = \"fp8\" or \"auto\"")
    return out


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
