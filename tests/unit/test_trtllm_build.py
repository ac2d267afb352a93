"""TensorRT-LLM build commands for each model type and option set, the build plan, the registry
entries, and the CLI's --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from build_engines.__main__ import main
from build_engines.trtllm import commands
from build_engines.trtllm.cli import Copy, Run, Write, missing_sources, plan
from build_engines.trtllm.config import BuildFile, TrtllmModel, load
from build_engines.trtllm.entry import LLAVA_ENGINE_TEMPLATE, registry_entry

ROOT = Path(__file__).resolve().parents[2]
TRT = "/trt"


def _model(**kw: object) -> TrtllmModel:
    return TrtllmModel(**{"id": "m", "hf_model": "/models/m", **kw})  # type: ignore[arg-type]


def _opts(cmd: list[str]) -> dict[str, str]:
    return {a: b for a, b in zip(cmd, cmd[1:], strict=False) if a.startswith("--")}


@pytest.mark.parametrize(("kw", "script", "expect", "absent"), [
    ({}, "examples/models/core/llama/convert_checkpoint.py", {"--dtype": "bfloat16", "--tp_size": "1"},
     ["--qformat"]),
    ({"architecture": "mistral"}, "examples/models/core/llama/convert_checkpoint.py", {}, []),
    ({"architecture": "qwen", "dtype": "float16"}, "examples/models/core/qwen/convert_checkpoint.py",
     {"--dtype": "float16"}, []),
    ({"architecture": "gemma", "tp": 2}, "examples/models/core/gemma/convert_checkpoint.py",
     {"--ckpt-type": "hf", "--world-size": "2", "--dtype": "bfloat16"}, ["--tp_size", "--pp_size"]),
    ({"tp": 2, "pp": 2}, "examples/models/core/llama/convert_checkpoint.py",
     {"--tp_size": "2", "--pp_size": "2"}, []),
    ({"kv_cache_dtype": "int8", "calib_dataset": "/data/cnn"}, "examples/models/core/llama/convert_checkpoint.py",
     {"--calib_dataset": "/data/cnn"}, ["--qformat"]),
    ({"architecture": "gemma", "kv_cache_dtype": "int8", "calib_dataset": "/data/cnn"},
     "examples/models/core/gemma/convert_checkpoint.py", {"--calib_dataset": "/data/cnn"}, []),
    ({"quantization": "fp8", "kv_cache_dtype": "fp8", "calib_dataset": "/d"}, "examples/quantization/quantize.py",
     {"--qformat": "fp8", "--kv_cache_dtype": "fp8", "--calib_size": "512"}, ["--awq_block_size"]),
    ({"quantization": "int4_awq", "calib_size": 32, "calib_dataset": "/d"}, "examples/quantization/quantize.py",
     {"--qformat": "int4_awq", "--awq_block_size": "128", "--calib_size": "32"}, ["--kv_cache_dtype"]),
    ({"quantization": "int8_sq", "calib_dataset": "/data/cnn"}, "examples/quantization/quantize.py",
     {"--qformat": "int8_sq", "--calib_dataset": "/data/cnn"}, []),
    ({"quantization": "int8_wo"}, "examples/quantization/quantize.py", {"--qformat": "int8_wo"},
     ["--calib_dataset"]),
    ({"kv_cache_dtype": "fp8", "calib_dataset": "/d"}, "examples/quantization/quantize.py",
     {"--qformat": "full_prec", "--calib_dataset": "/d"}, []),
])
def test_checkpoint_commands(kw: dict, script: str, expect: dict[str, str], absent: list[str]) -> None:
    cmd = commands.convert_command(_model(**kw), "/w", TRT)
    assert cmd[:2] == ["python3", f"{TRT}/{script}"]
    opts = _opts(cmd)
    assert opts["--model_dir"] == "/models/m" and opts["--output_dir"] == "/w/m/checkpoint"
    assert expect.items() <= opts.items()
    assert not set(absent) & set(cmd)
    assert ("--int8_kv_cache" in cmd) == (kw.get("kv_cache_dtype") == "int8")


def test_trtllm_build_carries_the_tuned_settings() -> None:
    m = _model(max_batch_size=8, max_input_len=2048, max_seq_len=2560, max_num_tokens=4096,
               quantization="fp8", calib_dataset="/d", tp=2, pp=2, gemm_plugin="fp8")
    cmd = commands.build_command(m, "/w")
    opts = _opts(cmd)
    assert cmd[0] == "trtllm-build"
    assert (opts["--max_batch_size"], opts["--max_input_len"], opts["--max_seq_len"],
            opts["--max_num_tokens"]) == ("8", "2048", "2560", "4096")
    assert opts["--checkpoint_dir"] == "/w/m/checkpoint" and opts["--output_dir"] == "/w/m/engine"
    assert opts["--gemm_plugin"] == "fp8" and opts["--gpt_attention_plugin"] == "auto"
    assert opts["--kv_cache_type"] == "paged" and opts["--use_paged_context_fmha"] == "enable"
    assert opts["--use_fp8_context_fmha"] == "enable" and opts["--workers"] == "4"
    assert "--max_multimodal_len" not in opts
    plain = _opts(commands.build_command(_model(use_paged_context_fmha=False), "/w"))
    assert plain["--kv_cache_type"] == "paged" and "--use_paged_context_fmha" not in plain
    assert "--use_fp8_context_fmha" not in plain


@pytest.mark.parametrize(("images", "table"), [(1, "4608"), (2, "9216")])
def test_llava_builds_a_vision_engine_and_sizes_the_prompt_table(images: int, table: str) -> None:
    m = _model(vision=True, dtype="float16", max_batch_size=8, num_visual_features=576, max_images=images)
    convert, build, vision = commands.engine_commands(m, "/w", TRT)
    assert "convert_checkpoint.py" in convert[1]
    assert _opts(build)["--max_multimodal_len"] == table  # max_batch_size * 576 * images
    assert vision[1] == f"{TRT}/examples/models/core/multimodal/build_multimodal_engine.py"
    opts = _opts(vision)
    assert opts["--model_type"] == "llava" and opts["--output_dir"] == "/w/m/vision_engine"
    assert opts["--max_batch_size"] == str(8 * images)


def test_launch_commands() -> None:
    script = f"{TRT}/triton_backend/scripts/launch_triton_server.py"
    engine = commands.launch_command("/r", [_model(tp=4, pp=2)], TRT)
    assert engine == ["python3", script, "--model_repo=/r", "--world_size=8"]
    vision = commands.launch_command("/r", [_model(vision=True, dtype="float16")], TRT)
    assert "--multimodal_gpu0_cuda_mem_pool_bytes=300000000" in vision
    assert "--tensorrt_llm_model_name=tensorrt_llm,multimodal_encoders" in vision
    api = [_model(path="llmapi", tp=4)]
    assert commands.launch_command("/r", api, TRT) == ["python3", script, "--model_repo=/r"]
    multi = [_model(path="llmapi", instances=2, gpu_device_ids="0,1;2,3")]
    assert commands.launch_command("/r", multi, TRT)[-1] == "--no-mpi"
    assert commands.engine_commands(_model(path="llmapi"), "/w", TRT) == []


@pytest.mark.parametrize(("kw", "message"), [
    ({"max_input_len": 9000, "max_seq_len": 8192}, "max_input_len"),
    ({"vision": True, "frontend": "ensemble"}, "frontend"),
    ({"vision": True, "path": "llmapi"}, "image_url"),
    ({"path": "llmapi", "quantization": "fp8"}, "pre-quantized"),
    ({"instances": 2}, "gpu_device_ids"),
    ({"tp": 0}, "tp and pp"),
    # Fault 3: Gemma's converter has no pipeline parallelism.
    ({"architecture": "gemma", "pp": 2}, "Gemma's convert_checkpoint.py has no pipeline"),
    # Fault 8: calibration without a local dataset would download ccdv/cnn_dailymail.
    ({"kv_cache_dtype": "int8"}, "calib_dataset to a local copy"),
    ({"quantization": "fp8"}, "calib_dataset to a local copy"),
    ({"quantization": "int8_sq", "calib_dataset": "ccdv/cnn_dailymail"}, "absolute path"),
    # Fault 10: combinations NVIDIA does not support.
    ({"paged_kv_cache": False}, "in-flight batching"),
    ({"vision": True, "dtype": "bfloat16"}, "no BF16 tensors"),
    ({"path": "llmapi", "kv_cache_dtype": "int8"}, "no int8 KV cache"),
    ({"bls_instances": 0}, "bls_instances"),
])
def test_invalid_models_are_refused(kw: dict, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({"models": [{"id": "x", "hf_model": "/m", **kw}]}, BuildFile)


def test_unknown_keys_and_engine_model_limits() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"models": [{"id": "x", "hf_model": "/m", "bogus": 1}]}, BuildFile)
    with pytest.raises(ValueError, match="one engine-path model"):
        plan(BuildFile(models=[_model(id="a"), _model(id="b")]), Path("/o"))
    with pytest.raises(ValueError, match="unique"):
        plan(BuildFile(models=[_model(id="a.b", path="llmapi"), _model(id="a_b", path="llmapi")]), Path("/o"))


def test_mixed_launches_are_refused_before_building() -> None:
    """Fault 9: --no-mpi (multi-instance LLM API) allows world_size 1 only; engines run under MPI."""
    multi = _model(id="api", path="llmapi", instances=2, gpu_device_ids="0;1")
    with pytest.raises(ValueError, match="--no-mpi, which allows world_size 1 only"):
        plan(BuildFile(models=[_model(id="eng"), multi]), Path("/o"))
    with pytest.raises(ValueError, match="COMM_WORLD"):
        plan(BuildFile(models=[_model(id="eng", tp=2), _model(id="api", path="llmapi")]), Path("/o"))
    with pytest.raises(ValueError, match="--no-mpi"):
        commands.launch_command("/r", [_model(id="eng"), multi], TRT)
    ok = [_model(id="eng"), _model(id="api", path="llmapi")]  # one rank each: launchable together
    assert commands.launch_refusal(ok) is None
    assert commands.launch_command("/r", ok, TRT)[-1] == "--world_size=1"


def test_bls_instances_default_to_the_engine_batch() -> None:
    """Fault 11: one BLS instance serves one request for its whole generation (NVIDIA's advice)."""
    assert _model(max_batch_size=24).bls_instance_count == 24
    assert _model(max_batch_size=24, bls_instances=4).bls_instance_count == 4


def test_preflight_says_what_the_installed_tensorrt_llm_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault 12: a clear message when TensorRT-LLM (or its engine workflow) is missing."""
    from build_engines.trtllm import cli  # noqa: PLC0415

    both = BuildFile(models=[_model(id="e"), _model(id="a", path="llmapi")])
    monkeypatch.setattr(cli, "installed_trtllm", lambda: None)
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    problems = cli.preflight(both)
    assert any("TensorRT-LLM is not installed" in p for p in problems)
    assert any("path = \"engine\" needs trtllm-build" in p for p in problems)
    monkeypatch.setattr(cli, "installed_trtllm", lambda: "2.0.0")
    assert cli.preflight(BuildFile(models=[_model(id="a", path="llmapi")])) == []
    assert len(cli.preflight(both)) == 1 and "use path = \"llmapi\"" in cli.preflight(both)[0]
    monkeypatch.setattr(cli.shutil, "which", lambda name: "/usr/bin/trtllm-build")
    assert cli.preflight(both) == []
    assert cli.CHECKED_VERSION == "1.2.1"


def test_engine_plan_orders_commands_configs_and_nvidia_code(tmp_path: Path) -> None:
    steps = plan(BuildFile(trtllm_root=TRT, models=[_model(frontend="ensemble")]), tmp_path)
    assert [s.argv[0] for s in steps if isinstance(s, Run)] == ["python3", "trtllm-build"]
    writes = {s.path.relative_to(tmp_path / "model_repository").as_posix() for s in steps if isinstance(s, Write)}
    assert writes == {"preprocessing/config.pbtxt", "postprocessing/config.pbtxt", "tensorrt_llm/config.pbtxt",
                      "tensorrt_llm/1/.keep", "tensorrt_llm_bls/config.pbtxt", "ensemble/config.pbtxt",
                      "ensemble/1/.keep"}
    copies = {s.source for s in steps if isinstance(s, Copy)}
    assert copies == {f"{TRT}/triton_backend/all_models/inflight_batcher_llm/{n}/1"
                      for n in ("preprocessing", "postprocessing", "tensorrt_llm_bls")}
    assert isinstance(steps[0], Run) and isinstance(steps[1], Run)  # engines before configs
    assert len(missing_sources(BuildFile(trtllm_root=TRT), steps)) == 4  # 3 code folders + converter


def test_llmapi_plan_writes_our_model_yaml_after_nvidias_code(tmp_path: Path) -> None:
    steps = plan(BuildFile(trtllm_root=TRT, models=[_model(id="q", path="llmapi")]), tmp_path)
    assert [type(s).__name__ for s in steps] == ["Write", "Copy", "Write"]
    assert steps[1].source == f"{TRT}/triton_backend/all_models/llmapi/tensorrt_llm/1"  # type: ignore[union-attr]
    assert steps[2].path == tmp_path / "model_repository/q/1/model.yaml"  # type: ignore[union-attr]


def _hf(tmp_path: Path) -> Path:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": "{{ messages }}", "bos_token": {"content": "<s>"}, "eos_token": "</s>"}))
    (hf / "tokenizer.json").write_text("{}")
    return hf


def test_registry_entries_per_contract(tmp_path: Path) -> None:
    hf = str(_hf(tmp_path))
    bls = registry_entry(_model(hf_model=hf), tmp_path / "out")
    assert (bls.triton_model, bls.contract, bls.text_mode) == ("tensorrt_llm_bls", "bls", "cumulative")
    assert (bls.bos_token, bls.eos_token) == ("<s>", "</s>")
    assert (tmp_path / "out/models/m/chat_template.jinja").read_text() == "{{ messages }}"
    assert (bls.default_max_tokens, bls.max_tokens_limit, bls.context_length) == (512, 8191, 8192)
    assert bls.max_input_tokens == 4096  # fault 7: the engine's max_input_len
    api = registry_entry(_model(hf_model=hf, path="llmapi", id="Q.1", max_num_tokens=6000), tmp_path / "out")
    assert (api.triton_model, api.contract, api.text_mode, api.tokenizer) == \
        ("q_1", "llmapi", "cumulative", "models/Q.1/tokenizer.json")
    # Fault 5: the LLM API adds BOS itself (add_special_tokens defaults true): the template must not.
    assert (api.bos_token, api.eos_token) == ("", "</s>")
    # Fault 7: max_seq_len total; prompts also capped by max_num_tokens (no chunked prefill).
    assert (api.context_length, api.max_input_tokens) == (8192, 6000)
    ens = registry_entry(_model(hf_model=hf, frontend="ensemble"), tmp_path / "out")
    assert (ens.triton_model, ens.text_mode) == ("ensemble", "delta")


def test_llava_engine_entry_sends_user_text_and_pixels(tmp_path: Path) -> None:
    hf = _hf(tmp_path)
    (hf / "config.json").write_text(json.dumps({
        "model_type": "llava", "vision_feature_select_strategy": "default",
        "vision_config": {"model_type": "clip_vision_model", "image_size": 336, "patch_size": 14},
        "text_config": {"max_position_embeddings": 4096}}))
    (hf / "preprocessor_config.json").write_text(json.dumps({
        "size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336},
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    one = registry_entry(_model(hf_model=str(hf), vision=True, dtype="float16"), tmp_path / "out")
    assert one.vision and one.image_token_repeat == 0 and one.image_processor is not None
    assert one.image_processor.crop_height == 336
    assert (tmp_path / "out/models/m/chat_template.jinja").read_text() == LLAVA_ENGINE_TEMPLATE
    two = registry_entry(_model(hf_model=str(hf), vision=True, dtype="float16", max_images=2), tmp_path / "out")
    assert (two.image_token, two.image_token_repeat, two.max_images) == ("<image>", 1, 2)


def test_dry_run_prints_every_step_and_writes_nothing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["trtllm", "--config", str(ROOT / "docs/examples/trtllm-models.toml"), "--out", str(out),
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "run:   python3 /workspace/TensorRT-LLM/examples/quantization/quantize.py" in printed
    assert "run:   trtllm-build --checkpoint_dir" in printed
    assert f"write: {out}/model_repository/tensorrt_llm_bls/config.pbtxt" in printed
    assert f"write: {out}/model_repository/qwen2_5_7b_instruct/1/model.yaml" in printed
    assert '       | backend: "pytorch"' in printed  # file contents are shown
    assert "launch: python3 /workspace/TensorRT-LLM/triton_backend/scripts/launch_triton_server.py" in printed
    assert "registry: llama-3.1-8b-instruct (engine/bls)" in printed
    assert not out.exists()


def test_example_files_load() -> None:
    for name in ("trtllm-models.toml", "trtllm-llava.toml"):
        build = load(ROOT / "docs/examples" / name)
        assert build.models and plan(build, Path("/o"))
