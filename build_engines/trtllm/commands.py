"""The commands that turn an HF checkpoint into engines, inside NVIDIA's TRT-LLM container."""

from __future__ import annotations

from pathlib import PurePosixPath

from build_engines.trtllm.config import TrtllmModel

# Where the example scripts live in nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3.
EXAMPLES = PurePosixPath("/app/tensorrt_llm/examples")
ALL_MODELS = PurePosixPath("/app/all_models")

_CONVERT = {"llama": "models/core/llama", "mistral": "models/core/llama",
            "qwen": "models/core/qwen", "gemma": "models/core/gemma"}
_QFORMAT = {"fp8": "fp8", "int4_awq": "int4_awq", "int8_sq": "int8_sq"}


def checkpoint_dir(m: TrtllmModel, workdir: str) -> str:
    return f"{workdir}/{m.id}/checkpoint"


def engine_dir(m: TrtllmModel, workdir: str) -> str:
    return f"{workdir}/{m.id}/engine"


def vision_engine_dir(m: TrtllmModel, workdir: str) -> str:
    return f"{workdir}/{m.id}/vision_engine"


def convert_command(m: TrtllmModel, workdir: str) -> list[str]:
    """HF checkpoint -> TRT-LLM checkpoint: ModelOpt's quantize.py, or the model's converter."""
    out = checkpoint_dir(m, workdir)
    parallel = ["--tp_size", str(m.tp), "--pp_size", str(m.pp)]
    if m.quantization in _QFORMAT:
        cmd = ["python3", str(EXAMPLES / "quantization" / "quantize.py"), "--model_dir", m.hf_model,
               "--dtype", m.dtype, "--qformat", _QFORMAT[m.quantization], "--output_dir", out,
               "--calib_size", str(m.calib_size), *parallel]
        if m.quantization == "int4_awq":
            cmd += ["--awq_block_size", "128"]
        if m.kv_cache_dtype != "auto":
            cmd += ["--kv_cache_dtype", m.kv_cache_dtype]
        if m.calib_dataset:
            cmd += ["--calib_dataset", m.calib_dataset]
        return cmd
    cmd = ["python3", str(EXAMPLES / _CONVERT[m.architecture] / "convert_checkpoint.py"),
           "--model_dir", m.hf_model, "--output_dir", out, "--dtype", m.dtype, *parallel]
    if m.quantization == "int8_wo":
        cmd += ["--use_weight_only", "--weight_only_precision", "int8"]
    return cmd


def build_command(m: TrtllmModel, workdir: str) -> list[str]:
    """``trtllm-build`` with the settings users tune."""
    cmd = ["trtllm-build", "--checkpoint_dir", checkpoint_dir(m, workdir),
           "--output_dir", engine_dir(m, workdir), "--gemm_plugin", m.gemm_plugin,
           "--max_batch_size", str(m.max_batch_size), "--max_input_len", str(m.max_input_len),
           "--max_seq_len", str(m.max_seq_len), "--max_num_tokens", str(m.max_num_tokens),
           "--kv_cache_type", "paged" if m.paged_kv_cache else "continuous",
           "--workers", str(m.world_size)]
    if m.paged_kv_cache and m.use_paged_context_fmha:
        cmd += ["--use_paged_context_fmha", "enable"]
    if m.quantization == "fp8":
        cmd += ["--use_fp8_context_fmha", "enable"]
    if m.vision:
        cmd += ["--max_multimodal_len", str(m.max_multimodal_len)]
    return cmd


def vision_command(m: TrtllmModel, workdir: str) -> list[str]:
    """The vision encoder engine of a LLaVA-style model."""
    return ["python3", str(EXAMPLES / "models" / "core" / "multimodal" / "build_multimodal_engine.py"),
            "--model_path", m.hf_model, "--model_type", m.vision_model_type,
            "--max_batch_size", str(m.max_batch_size), "--output_dir", vision_engine_dir(m, workdir)]


def engine_commands(m: TrtllmModel, workdir: str) -> list[list[str]]:
    """Every command of the engine path, in order (none for the LLM API path)."""
    if m.path == "llmapi":
        return []
    cmds = [convert_command(m, workdir), build_command(m, workdir)]
    if m.vision:
        cmds.append(vision_command(m, workdir))
    return cmds


def launch_command(repository: str, m: TrtllmModel) -> list[str]:
    """How to start Triton on the repository: MPI world size = tp * pp for the engine path."""
    if m.path == "llmapi" or m.world_size == 1:
        return ["tritonserver", f"--model-repository={repository}", "--grpc-port=8001",
                "--http-port=8000", "--metrics-port=8002"]
    return ["python3", "/app/scripts/launch_triton_server.py", f"--world_size={m.world_size}",
            f"--model_repo={repository}"]
