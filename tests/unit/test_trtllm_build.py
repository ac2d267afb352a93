"""TensorRT-LLM path, validated statically: configs parse as Triton ModelConfig protobufs with the
right tensors and parameters; build commands per model type and option set."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.trtllm import commands, repository, specs
from build_engines.trtllm.cli import Copy, Run, Write, plan, registry_entry
from build_engines.trtllm.config import BuildFile, TrtllmModel, load

ROOT = Path(__file__).resolve().parents[2]


def _parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def _model(**kw: object) -> TrtllmModel:
    return TrtllmModel(**{"id": "m", "hf_model": "/models/m", **kw})  # type: ignore[arg-type]


def _io(config: mc.ModelConfig) -> tuple[dict, dict]:
    return ({i.name: (mc.DataType.Name(i.data_type), list(i.dims), i.optional) for i in config.input},
            {o.name: (mc.DataType.Name(o.data_type), list(o.dims)) for o in config.output})


def test_every_planned_config_parses(tmp_path: Path) -> None:
    build = load(ROOT / "docs/examples/trtllm-models.toml")
    writes = [s for s in plan(build, tmp_path) if isinstance(s, Write) and s.path.name == "config.pbtxt"]
    names = {s.path.parent.name for s in writes}
    assert names == {"preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls",
                     "qwen2_5_7b_instruct"}
    for step in writes:
        config = _parse(step.text)
        assert config.name == step.path.parent.name


def test_bls_contract() -> None:
    config = _parse(repository.dump(repository.bls_config(_model(max_batch_size=32))))
    inputs, outputs = _io(config)
    assert config.backend == "python" and config.model_transaction_policy.decoupled
    assert inputs["text_input"] == ("TYPE_STRING", [1], False)
    assert inputs["max_tokens"] == ("TYPE_INT32", [1], False)
    assert inputs["seed"] == ("TYPE_UINT64", [1], True)
    assert inputs["stop_words"] == ("TYPE_STRING", [-1], True)
    assert inputs["image_input"] == ("TYPE_FP16", [-1, 3, -1, -1], True)
    assert "random_seed" not in inputs and "min_length" not in inputs
    assert outputs["text_output"] == ("TYPE_STRING", [-1])
    assert outputs["num_output_tokens"] == ("TYPE_INT32", [1])
    assert config.parameters["accumulate_tokens"].string_value == "true"
    assert config.instance_group[0].count == 32  # NVIDIA: BLS instances = max batch size


def test_core_model_config() -> None:
    m = _model(kv_cache_free_gpu_memory_fraction=0.8, max_batch_size=16)
    config = _parse(repository.dump(repository.core_config(m, "/e")))
    inputs, outputs = _io(config)
    assert config.backend == "tensorrtllm" and config.model_transaction_policy.decoupled
    assert inputs["input_ids"] == ("TYPE_INT32", [-1], False)
    assert inputs["stop_words_list"] == ("TYPE_INT32", [2, -1], True)
    assert outputs["output_ids"] == ("TYPE_INT32", [-1, -1])
    assert config.parameters["gpt_model_path"].string_value == "/e"
    assert config.parameters["kv_cache_free_gpu_mem_fraction"].string_value == "0.8"
    assert list(config.dynamic_batching.preferred_batch_size) == [16]


def test_ensemble_wiring_is_complete() -> None:
    config = _parse(repository.dump(repository.ensemble_config(_model())))
    assert config.platform == "ensemble"
    steps = config.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["preprocessing", "tensorrt_llm", "postprocessing"]
    produced = {"text_input", "max_tokens"} | {t.name for t in specs.TEXT_INPUTS}
    for step in steps:  # every step input comes from the ensemble or an earlier step
        assert set(step.input_map.values()) <= produced, step.model_name
        produced |= set(step.output_map.values())
    assert "text_output" in produced


def test_llmapi_config_and_yaml() -> None:
    m = _model(path="llmapi", tp=2, max_seq_len=16384, max_input_len=8192)
    config = _parse(repository.dump(repository.llmapi_config(m)))
    inputs, outputs = _io(config)
    assert config.max_batch_size == 0 and config.model_transaction_policy.decoupled
    assert inputs["sampling_param_max_tokens"] == ("TYPE_INT32", [1], True)
    assert inputs["streaming"] == ("TYPE_BOOL", [1], True)
    assert "num_output_tokens" not in outputs and "finish_reason" in outputs
    yaml = repository.llmapi_yaml(m)
    assert 'backend: "pytorch"' in yaml and "tensor_parallel_size: 2" in yaml
    assert "triton_config:\n  max_batch_size: 0\n  decoupled: true" in yaml


@pytest.mark.parametrize(("kw", "expect", "absent"), [
    ({}, ["models/core/llama/convert_checkpoint.py", "--dtype", "bfloat16", "--tp_size"], ["quantize.py"]),
    ({"quantization": "fp8", "kv_cache_dtype": "fp8"}, ["quantize.py", "--qformat", "fp8",
                                                        "--kv_cache_dtype"], []),
    ({"quantization": "int4_awq"}, ["--qformat", "int4_awq", "--awq_block_size", "128"], []),
    ({"quantization": "int8_wo"}, ["--use_weight_only", "--weight_only_precision", "int8"], []),
    ({"architecture": "qwen"}, ["models/core/qwen/convert_checkpoint.py"], []),
    ({"tp": 2, "pp": 2}, ["--tp_size", "2", "--pp_size"], []),
])
def test_convert_commands(kw: dict, expect: list[str], absent: list[str]) -> None:
    cmd = " ".join(commands.convert_command(_model(**kw), "/w"))
    for piece in expect:
        assert piece in cmd
    for piece in absent:
        assert piece not in cmd


def test_build_command_options() -> None:
    m = _model(max_batch_size=8, max_input_len=2048, max_seq_len=2560, max_num_tokens=4096,
               quantization="fp8", tp=2)
    cmd = commands.build_command(m, "/w")
    pairs = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert cmd[0] == "trtllm-build"
    assert (pairs["--max_batch_size"], pairs["--max_input_len"], pairs["--max_seq_len"],
            pairs["--max_num_tokens"]) == ("8", "2048", "2560", "4096")
    assert "--use_fp8_context_fmha" in cmd and "--workers" in cmd
    assert commands.build_command(_model(paged_kv_cache=False), "/w")[
        commands.build_command(_model(paged_kv_cache=False), "/w").index("--kv_cache_type") + 1
    ] == "continuous"


def test_llava_builds_a_vision_engine_with_the_prompt_table_size() -> None:
    m = _model(vision=True, max_batch_size=8, num_visual_features=576)
    cmds = commands.engine_commands(m, "/w")
    assert len(cmds) == 3
    build = cmds[1]
    assert build[build.index("--max_multimodal_len") + 1] == "4608"  # 8 * 576, as NVIDIA's docs
    assert "build_multimodal_engine.py" in cmds[2][1] and "llava" in cmds[2]


def test_multi_gpu_launch_uses_mpi_world_size() -> None:
    assert commands.launch_command("/r", _model(tp=4, pp=2))[2] == "--world_size=8"
    assert commands.launch_command("/r", _model())[0] == "tritonserver"
    assert commands.engine_commands(_model(path="llmapi"), "/w") == []


def test_config_validation() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"models": [{"id": "x", "hf_model": "/m", "bogus": 1}]}, BuildFile)
    with pytest.raises(ValueError):
        _model(max_input_len=9000, max_seq_len=8192)
    with pytest.raises(ValueError):
        plan(BuildFile(models=[_model(id="a"), _model(id="b")]), Path("/o"))


def test_plan_copies_nvidia_model_code_from_the_container(tmp_path: Path) -> None:
    steps = plan(BuildFile(models=[_model(frontend="ensemble")]), tmp_path)
    copies = {s.source for s in steps if isinstance(s, Copy)}
    assert "/app/all_models/inflight_batcher_llm/tensorrt_llm_bls/1" in copies
    assert any(isinstance(s, Run) and s.argv[0] == "trtllm-build" for s in steps)
    assert any(isinstance(s, Write) and s.path.parent.name == "ensemble" for s in steps)


def test_registry_entry_from_an_hf_folder(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "tokenizer_config.json").write_text(
        '{"chat_template": "{{ messages }}", "bos_token": {"content": "<s>"}, "eos_token": "</s>"}')
    (hf / "tokenizer.json").write_text("{}")
    bls = registry_entry(_model(hf_model=str(hf)), tmp_path / "out")
    assert (bls.triton_model, bls.contract, bls.text_mode) == ("tensorrt_llm_bls", "bls", "cumulative")
    assert (bls.bos_token, bls.eos_token) == ("<s>", "</s>")
    assert (tmp_path / "out/models/m/chat_template.jinja").read_text() == "{{ messages }}"
    api = registry_entry(_model(hf_model=str(hf), path="llmapi"), tmp_path / "out")
    assert (api.contract, api.text_mode, api.tokenizer) == ("llmapi", "cumulative",
                                                            "models/m/tokenizer.json")
    ens = registry_entry(_model(hf_model=str(hf), frontend="ensemble"), tmp_path / "out")
    assert (ens.triton_model, ens.text_mode) == ("ensemble", "delta")
