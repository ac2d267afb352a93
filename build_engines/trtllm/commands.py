"""The commands that turn an HF checkpoint into engines and start Triton, inside NVIDIA's container.

Scripts come from a checkout of NVIDIA/TensorRT-LLM at the tag of the container's TensorRT-LLM
(``trtllm_root``): ``examples/`` converts and quantizes checkpoints, ``triton_backend/`` holds the
Triton models' Python code and ``launch_triton_server.py``. ``trtllm-build`` is on the PATH.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from build_engines.trtllm.config import TrtllmModel

_CONVERT = {"llama": "models/core/llama", "mistral": "models/core/llama",
            "qwen": "models/core/qwen", "gemma": "models/core/gemma"}
_QUANTIZE = ("fp8", "int4_awq", "int8_sq", "int8_wo")  # via ModelOpt's quantize.py
# Triton's CUDA memory pool on GPU 0 for the vision encoder's GPU tensors (NVIDIA's multimodal docs).
MULTIMODAL_POOL_BYTES = 300_000_000


def examples(root: str) -> PurePosixPath:
    return PurePosixPath(root) / "examples"


def all_models(root: str) -> PurePosixPath:
    return PurePosixPath(root) / "triton_backend" / "all_models"


def checkpoint_dir(m: TrtllmModel, workdir: str) -> str:
    return f"{workdir}/{m.id}/checkpoint"


def engine_dir(m: TrtllmModel, workdir: str) -> str:
    return f"{workdir}/{m.id}/engine"


def vision_engine_dir(m: TrtllmModel, workdir: str) -> str:
    return f"{workdir}/{m.id}/vision_engine"


def _quantize_command(m: TrtllmModel, out: str, root: str) -> list[str]:
    """ModelOpt's quantize.py: weight quantization and/or an FP8 KV cache (any family)."""
    qformat = m.quantization if m.quantization in _QUANTIZE else "full_prec"
    cmd = ["python3", str(examples(root) / "quantization" / "quantize.py"),
           "--model_dir", m.hf_model, "--dtype", m.dtype, "--qformat", qformat,
           "--output_dir", out, "--calib_size", str(m.calib_size),
           "--tp_size", str(m.tp), "--pp_size", str(m.pp)]
    if m.quantization == "int4_awq":
        cmd += ["--awq_block_size", "128"]
    if m.kv_cache_dtype != "auto":
        cmd += ["--kv_cache_dtype", m.kv_cache_dtype]
    if m.calib_dataset:
        cmd += ["--calib_dataset", m.calib_dataset]
    return cmd


def convert_command(m: TrtllmModel, workdir: str, root: str) -> list[str]:
    """HF checkpoint -> TensorRT-LLM checkpoint: ModelOpt's quantize.py, or the model's converter.

    Gemma's converter has its own flags: ``--ckpt-type hf`` (no default) and ``--world-size``
    (tensor parallelism only; ``TrtllmModel`` refuses pp > 1 for Gemma).
    """
    out = checkpoint_dir(m, workdir)
    if m.quantization in _QUANTIZE or m.kv_cache_dtype == "fp8":
        return _quantize_command(m, out, root)
    script = str(examples(root) / _CONVERT[m.architecture] / "convert_checkpoint.py")
    if m.architecture == "gemma":
        cmd = ["python3", script, "--ckpt-type", "hf", "--model_dir", m.hf_model, "--output_dir", out,
               "--dtype", m.dtype, "--world-size", str(m.tp)]
    else:
        cmd = ["python3", script, "--model_dir", m.hf_model, "--output_dir", out, "--dtype", m.dtype,
               "--tp_size", str(m.tp), "--pp_size", str(m.pp)]
    if m.kv_cache_dtype == "int8":  # calibrates: TrtllmModel insists on a local calib_dataset
        cmd += ["--int8_kv_cache", "--calib_dataset", str(m.calib_dataset)]
    return cmd


def build_command(m: TrtllmModel, workdir: str) -> list[str]:
    """``trtllm-build`` with the settings users tune."""
    cmd = ["trtllm-build", "--checkpoint_dir", checkpoint_dir(m, workdir),
           "--output_dir", engine_dir(m, workdir),
           "--gemm_plugin", m.gemm_plugin, "--gpt_attention_plugin", m.gpt_attention_plugin,
           "--max_batch_size", str(m.max_batch_size), "--max_input_len", str(m.max_input_len),
           "--max_seq_len", str(m.max_seq_len), "--max_num_tokens", str(m.max_num_tokens),
           "--max_beam_width", "1",
           "--kv_cache_type", "paged" if m.paged_kv_cache else "continuous",
           "--workers", str(m.world_size)]
    if m.paged_kv_cache and m.use_paged_context_fmha:
        cmd += ["--use_paged_context_fmha", "enable"]
    if m.quantization == "fp8":
        cmd += ["--use_fp8_context_fmha", "enable"]
    if m.vision:
        cmd += ["--max_multimodal_len", str(m.max_multimodal_len)]
    return cmd


def vision_command(m: TrtllmModel, workdir: str, root: str) -> list[str]:
    """The vision encoder engine of a LLaVA-style model."""
    script = examples(root) / "models" / "core" / "multimodal" / "build_multimodal_engine.py"
    return ["python3", str(script), "--model_path", m.hf_model, "--model_type", m.vision_model_type,
            "--max_batch_size", str(m.max_batch_size * m.max_images),
            "--output_dir", vision_engine_dir(m, workdir)]


def engine_commands(m: TrtllmModel, workdir: str, root: str) -> list[list[str]]:
    """Every command of the engine path, in order (none for the LLM API path)."""
    if m.path == "llmapi":
        return []
    cmds = [convert_command(m, workdir, root), build_command(m, workdir)]
    if m.vision:
        cmds.append(vision_command(m, workdir, root))
    return cmds


def launch_refusal(models: list[TrtllmModel]) -> str | None:
    """Why NVIDIA's launcher cannot start these models in one Triton, or None.

    ``launch_triton_server.py --no-mpi`` (needed by multi-instance LLM API models) asserts
    world_size == 1, while engines need one MPI rank per GPU; and an LLM API model started inside
    an MPI world of several ranks takes that world (COMM_WORLD) for its own workers.
    """
    engines = [m for m in models if m.path == "engine"]
    llmapi = [m for m in models if m.path == "llmapi"]
    if not engines or not llmapi:
        return None
    multi = [m.id for m in llmapi if m.instances > 1]
    if multi:
        return (f"cannot launch engine models together with multi-instance LLM API models ({', '.join(multi)}): "
                "those need launch_triton_server.py --no-mpi, which allows world_size 1 only, while engines "
                "run under MPI. Build them into separate --out folders and start two Tritons.")
    if engines[0].world_size > 1:
        return (f"cannot launch LLM API models ({', '.join(m.id for m in llmapi)}) beside an engine with "
                f"world size {engines[0].world_size}: under mpirun the LLM API model would take MPI's "
                "COMM_WORLD for its own workers. Build them into separate --out folders.")
    return None


def launch_command(repository: str, models: list[TrtllmModel], root: str) -> list[str]:
    """NVIDIA's launcher: one MPI rank per GPU of the engine (world size = tp * pp).

    LLM API models start their own TensorRT-LLM workers, so they run as one rank; several
    instances of them on one node (``gpu_device_ids``) run without MPI.

    Raises:
        ValueError: the models cannot share one launch (see ``launch_refusal``).
    """
    refusal = launch_refusal(models)
    if refusal:
        raise ValueError(refusal)
    script = str(PurePosixPath(root) / "triton_backend" / "scripts" / "launch_triton_server.py")
    cmd = ["python3", script, f"--model_repo={repository}"]
    engines = [m for m in models if m.path == "engine"]
    if engines:
        cmd.append(f"--world_size={engines[0].world_size}")
        if engines[0].vision:
            cmd += [f"--multimodal_gpu0_cuda_mem_pool_bytes={MULTIMODAL_POOL_BYTES}",
                    "--tensorrt_llm_model_name=tensorrt_llm,multimodal_encoders"]
    elif any(m.instances > 1 for m in models):
        cmd.append("--no-mpi")
    return cmd
