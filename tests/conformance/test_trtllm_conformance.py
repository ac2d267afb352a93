"""Every config and command ``build_engines trtllm`` generates, checked against NVIDIA's interfaces.

The facts (``trtllm_facts.json``) are read from NVIDIA's TensorRT-LLM sources by
``scripts/trtllm_facts.py``; regenerate them for a new version and these tests say what broke:
a parameter NVIDIA's code requires that a config lacks, a flag a script does not accept, a value
outside a flag's choices, a tensor whose name, type, dims or optional flag differ from NVIDIA's.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.trtllm import commands, repository
from build_engines.trtllm.config import TrtllmModel
from scripts.trtllm_facts import parse_config

FACTS = json.loads((Path(__file__).with_name("trtllm_facts.json")).read_text())
TRT = "/trt"
CALIB = "/data/calib"


def _model(**kw: Any) -> TrtllmModel:
    return TrtllmModel(**{"id": "m", "hf_model": "/models/m", **kw})


def _engine_matrix() -> list[TrtllmModel]:
    """Every family x quantization x KV cache x parallelism x frontend the build file allows."""
    out = []
    for arch, quant, kv, (tp, pp), frontend in itertools.product(
            ("llama", "mistral", "qwen", "gemma"), ("none", "fp8", "int4_awq", "int8_wo", "int8_sq"),
            ("auto", "fp8", "int8"), ((1, 1), (2, 1), (2, 2)), ("bls", "ensemble")):
        if arch == "gemma" and pp > 1:
            continue  # refused (see test_trtllm_build)
        out.append(_model(architecture=arch, quantization=quant, kv_cache_dtype=kv, tp=tp, pp=pp,
                          frontend=frontend, calib_dataset=CALIB))
    out.append(_model(vision=True, dtype="float16", max_images=2, calib_dataset=CALIB))
    out.append(_model(vision=True, dtype="float16", quantization="fp8", calib_dataset=CALIB))
    out.append(_model(max_tokens_in_paged_kv_cache=100000, gpu_device_ids="0,1", tp=2))
    return out


ENGINE_MODELS = _engine_matrix()
LLMAPI_MODELS = [_model(path="llmapi"), _model(path="llmapi", kv_cache_dtype="fp8", tp=2, pp=2),
                 _model(path="llmapi", instances=2, gpu_device_ids="0,1;2,3", tp=2)]


def _id(m: TrtllmModel) -> str:
    return "-".join(str(x) for x in (m.path, m.architecture, m.quantization, m.kv_cache_dtype, m.tp, m.pp,
                                     m.frontend, "vision" if m.vision else "text", m.instances))


# ---- configs -------------------------------------------------------------------------------------

def _resolve(tensor: dict[str, Any], values: dict[str, object]) -> dict[str, Any]:
    """NVIDIA's tensor with its template placeholders (``${logits_datatype}``) filled as we fill them."""
    dtype = tensor["data_type"]
    if dtype.startswith("${"):
        dtype = str(values[dtype[2:-1]])
    return {**tensor, "data_type": dtype}


def _ours(tensor: mc.ModelInput | mc.ModelOutput) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tensor.name, "data_type": mc.DataType.Name(tensor.data_type),
                           "dims": list(tensor.dims), "optional": getattr(tensor, "optional", False)}
    if tensor.HasField("reshape"):
        out["reshape"] = list(tensor.reshape.shape)
    return out


def _check_config(kind: str, config: mc.ModelConfig, values: dict[str, object]) -> list[str]:
    """Every disagreement between one of our configs and NVIDIA's facts for that model."""
    facts = FACTS["models"][kind]
    problems = []
    keys = set(config.parameters)
    for name in facts["required_parameters"]:
        if name not in keys:
            problems.append(f"{kind}: parameter {name!r} is read without a default by NVIDIA's code, and missing")
    known = set(facts["template_parameters"]) | set(facts["required_parameters"]) | set(facts["optional_parameters"])
    problems += [f"{kind}: parameter {k!r} is not one NVIDIA's model knows" for k in sorted(keys - known)]
    for direction, ours in (("inputs", config.input), ("outputs", config.output)):
        theirs = {t["name"]: _resolve(t, values) for t in facts[direction]}
        mine = {t.name: _ours(t) for t in ours}
        for name, tensor in mine.items():
            if name not in theirs:
                problems.append(f"{kind}: {direction[:-1]} {name!r} is not NVIDIA's")
            elif tensor != theirs[name]:
                problems.append(f"{kind}: {direction[:-1]} {name!r} is {tensor}, NVIDIA declares {theirs[name]}")
        for name, tensor in theirs.items():
            required = direction == "outputs" or not tensor["optional"]
            if required and name not in mine:
                problems.append(f"{kind}: {direction[:-1]} {name!r} (NVIDIA's, not optional) is missing")
    return problems


@pytest.mark.parametrize("m", ENGINE_MODELS, ids=_id)
def test_engine_configs_match_nvidias_models(m: TrtllmModel) -> None:
    values = repository.engine_values(m, "/w")
    problems = []
    for name, text in repository.engine_configs(m, "/w").items():
        problems += _check_config(name, repository.parse(text), values)
    assert problems == []


@pytest.mark.parametrize("m", LLMAPI_MODELS, ids=_id)
def test_llmapi_config_and_model_yaml_match_nvidias_model(m: TrtllmModel) -> None:
    import yaml  # noqa: PLC0415

    files = repository.llmapi_files(m)
    assert _check_config("llmapi", repository.parse(files["config.pbtxt"]), repository.llmapi_values(m)) == []
    triton = yaml.safe_load(files["1/model.yaml"])["triton_config"]
    facts = FACTS["models"]["llmapi"]["model_yaml"]
    assert set(facts["triton_config_required"]) <= set(triton)
    assert set(triton) <= set(facts["triton_config_required"]) | set(facts["triton_config_optional"])


def test_fault_1_the_cpp_model_loads_only_with_both_guided_decoding_parameters() -> None:
    """NVIDIA's C++ model throws on a missing key it reads outside a try block."""
    required = FACTS["models"]["tensorrt_llm"]["required_parameters"]
    assert {"guided_decoding_backend", "xgrammar_tokenizer_info_path", "tokenizer_dir"} <= set(required)
    config = repository.parse(repository.engine_configs(_model(), "/w")["tensorrt_llm"])
    # On: xgrammar (NVIDIA's only backend) and the tokenizer-info file the build writes by the engine.
    assert config.parameters["guided_decoding_backend"].string_value == "xgrammar"
    assert config.parameters["xgrammar_tokenizer_info_path"].string_value == \
        "/w/m/engine/xgrammar_tokenizer_info.json"
    del config.parameters["guided_decoding_backend"]
    assert _check_config("tensorrt_llm", config, repository.engine_values(_model(), "/w")) == [
        "tensorrt_llm: parameter 'guided_decoding_backend' is read without a default by NVIDIA's code, and missing"]


def test_a_tensor_that_differs_from_nvidias_is_reported() -> None:
    text = repository.engine_configs(_model(), "/w")["tensorrt_llm_bls"]
    config = repository.parse(text.replace('name: "max_tokens" data_type: TYPE_INT32',
                                           'name: "max_tokens" data_type: TYPE_INT64'))
    problems = _check_config("tensorrt_llm_bls", config, repository.engine_values(_model(), "/w"))
    assert len(problems) == 1 and "'max_tokens'" in problems[0] and "TYPE_INT64" in problems[0]


def test_the_facts_parser_reads_our_templates_like_protobuf_does() -> None:
    """scripts/trtllm_facts.py's parser and Triton's protobuf agree on every filled template."""
    m = _model(vision=True, dtype="float16")
    for name, text in repository.engine_configs(m, "/w").items():
        parsed, proto = parse_config(text), repository.parse(text)
        assert [t["name"] for t in parsed["inputs"]] == [t.name for t in proto.input]
        assert [_ours(t) for t in proto.output] == parsed["outputs"], name
        assert [_ours(t) for t in proto.input] == parsed["inputs"], name


# ---- commands ------------------------------------------------------------------------------------

def _script_key(argv: list[str], m: TrtllmModel) -> str:
    if argv[0] == "trtllm-build":
        return "trtllm-build"
    name = Path(argv[1]).name
    return f"convert_checkpoint.py:{'llama' if m.architecture == 'mistral' else m.architecture}" \
        if name == "convert_checkpoint.py" else name


def _check_command(key: str, argv: list[str]) -> list[str]:
    facts = FACTS["scripts"][key]
    problems = []
    args = argv[1:] if argv[0] == "trtllm-build" else argv[2:]
    given: set[str] = set()
    for i, arg in enumerate(args):
        if not arg.startswith("-") or arg.lstrip("-").replace(".", "").isdigit():
            continue
        flag = arg.split("=", 1)[0]
        if flag not in facts:
            problems.append(f"{key}: NVIDIA's script has no flag {flag}")
            continue
        info = facts[flag]
        given |= set(info["aliases"])
        value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else None)
        if "choices" in info and str(value) not in [str(c) for c in info["choices"]]:
            problems.append(f"{key}: {flag} {value} is not one of {info['choices']}")
    for flag, info in facts.items():
        if info["required"] and flag not in given:
            problems.append(f"{key}: required flag {flag} is missing")
    return problems


@pytest.mark.parametrize("m", ENGINE_MODELS, ids=_id)
def test_engine_commands_use_only_nvidias_flags(m: TrtllmModel) -> None:
    problems = []
    for argv in commands.engine_commands(m, "/w", TRT):
        key = _script_key(argv, m)
        if key not in FACTS["scripts"] and key == "build_multimodal_engine.py":
            # The example script parses with tensorrt_llm.tools.multimodal_builder's
            # add_multimodal_arguments(); its own file is not in the facts yet (see "missing").
            assert any(p.endswith(key) for p in FACTS["missing"])
            key = "multimodal_builder:add_multimodal_arguments"
        problems += _check_command(key, argv)
    assert problems == []


def test_the_vision_encoder_command_uses_the_builders_flags() -> None:
    argv = commands.vision_command(_model(vision=True, dtype="float16"), "/w", TRT)
    assert _check_command("multimodal_builder:add_multimodal_arguments", argv) == []
    bad = [*argv[:2], "--model_type", "llava-1.5"]
    assert _check_command("multimodal_builder:add_multimodal_arguments", bad)[0].startswith(
        "multimodal_builder:add_multimodal_arguments: --model_type llava-1.5 is not one of")


def test_fault_3_gemma_takes_world_size_and_ckpt_type() -> None:
    gemma = FACTS["scripts"]["convert_checkpoint.py:gemma"]
    assert "--tp_size" not in gemma and "--pp_size" not in gemma and "--world-size" in gemma
    argv = commands.convert_command(_model(architecture="gemma", tp=2), "/w", TRT)
    assert _check_command("convert_checkpoint.py:gemma", argv) == []
    old = [*argv[:2], "--model_dir", "/m", "--output_dir", "/o", "--tp_size", "2", "--pp_size", "1"]
    assert _check_command("convert_checkpoint.py:gemma", old) == [
        "convert_checkpoint.py:gemma: NVIDIA's script has no flag --tp_size",
        "convert_checkpoint.py:gemma: NVIDIA's script has no flag --pp_size"]


def test_fault_8_calibration_always_names_a_local_dataset() -> None:
    """NVIDIA's converters and quantize.py default --calib_dataset to a hub dataset (a download)."""
    for m in ENGINE_MODELS:
        argv = commands.convert_command(m, "/w", TRT)
        if m.needs_calibration:
            assert argv[argv.index("--calib_dataset") + 1] == CALIB, _id(m)
    assert "--calib_dataset" in FACTS["scripts"]["quantize.py"]
    assert "--calib_dataset" in FACTS["scripts"]["convert_checkpoint.py:llama"]


@pytest.mark.parametrize("models", [
    [_model()], [_model(tp=4, pp=2)], [_model(vision=True, dtype="float16")],
    [_model(path="llmapi")], [_model(path="llmapi", instances=2, gpu_device_ids="0;1")],
    [_model(id="e"), _model(id="a", path="llmapi")],
], ids=lambda ms: "+".join(_id(m) for m in ms))
def test_launch_commands_use_only_nvidias_flags(models: list[TrtllmModel]) -> None:
    argv = commands.launch_command("/r", models, TRT)
    assert _check_command("launch_triton_server.py", argv) == []


def test_facts_record_their_provenance() -> None:
    from build_engines.trtllm.cli import CHECKED_VERSION  # noqa: PLC0415

    assert CHECKED_VERSION in FACTS["tensorrt_llm_tag"]  # the facts are for the version we pin
    assert isinstance(FACTS["sources"], dict)
    assert set(FACTS["models"]) == {"tensorrt_llm", "tensorrt_llm_bls", "preprocessing", "postprocessing",
                                    "ensemble", "multimodal_encoders", "llmapi"}
    assert FACTS["models"]["postprocessing"]["required_parameters"] == ["tokenizer_dir"]
    assert FACTS["models"]["llmapi"]["model_yaml"]["triton_config_required"] == ["decoupled", "max_batch_size"]


def test_protobuf_round_trip_of_a_config_keeps_every_field() -> None:
    text = repository.engine_configs(_model(), "/w")["tensorrt_llm"]
    config = repository.parse(text)
    assert repository.parse(text_format.MessageToString(config)) == config


def test_the_gpu_extra_pins_the_facts_release_and_install_never_takes_it() -> None:
    """Fault 15: one pinned TensorRT-LLM for builds outside NVIDIA's container, never in the CPU install."""
    import tomllib  # noqa: PLC0415

    from build_engines.trtllm.cli import CHECKED_VERSION  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["gpu"] == [f"tensorrt-llm=={CHECKED_VERSION}"]
    assert not any("tensorrt" in dep for name, deps in extras.items() if name != "gpu" for dep in deps)
    install = (root / "scripts" / "install.sh").read_text()
    assert '-e ".[cpu,test]"' in install and "gpu" not in install


def test_project_docs_stand_alone() -> None:
    """Fault 13: docs cite nothing outside the project."""
    root = Path(__file__).resolve().parents[2]
    for doc in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        text = doc.read_text()
        assert "shared/" not in text and "../shared" not in text, doc


def test_gpu_doc_reads_the_version_without_the_import_banner() -> None:
    """Fault 4: `import tensorrt_llm` prints a banner, so VERSION would hold two lines."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "gpu.md").read_text()
    assert "VERSION=$(pip show tensorrt_llm | sed -n 's/^Version: //p')" in doc
    assert "import tensorrt_llm; print" not in doc


def test_gpu_check_installs_into_its_own_venv() -> None:
    """Fault 14: never into the node's Python environment."""
    script = (Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh").read_text()
    assert "python3 -m venv --without-pip --system-site-packages" in script
    assert '"$PY" -m pip install' in script and "python3 -m pip install" not in script
    assert 'exec "$PY" -m bench.gpu_check' in script


# ---- guided decoding and log-probabilities: our interfaces against NVIDIA's ----------------------

GUIDED = ("guided_decoding_guide_type", "guided_decoding_guide")


@pytest.mark.parametrize("kind", ["tensorrt_llm", "tensorrt_llm_bls", "ensemble"])
def test_guided_decoding_and_log_prob_tensors_are_declared_as_nvidia_declares_them(kind: str) -> None:
    """The gateway sends a guide and return_log_probs to these models and reads output_log_probs:
    each must be present in our template with NVIDIA's exact type, dims and optional flag."""
    m = _model(frontend="ensemble")
    config = repository.parse(repository.engine_configs(m, "/w")[kind])
    facts = FACTS["models"][kind]
    for direction, names in (("inputs", (*GUIDED, "return_log_probs")), ("outputs", ("output_log_probs",))):
        theirs = {t["name"]: t for t in facts[direction]}
        ours = {t.name: _ours(t) for t in (config.input if direction == "inputs" else config.output)}
        for name in names:
            assert name in theirs, f"NVIDIA's {kind} no longer declares {name}"
            assert ours.get(name) == theirs[name], f"{kind}.{name}: ours {ours.get(name)}, NVIDIA's {theirs[name]}"


def test_the_llm_api_model_has_no_guided_decoding_or_log_prob_inputs() -> None:
    """The gateway refuses guides and logprobs for it: that holds while NVIDIA's model lacks them."""
    names = {t["name"] for t in FACTS["models"]["llmapi"]["inputs"]}
    assert not names & {*GUIDED, "return_log_probs", "top_logprobs"}


def test_the_mimics_declare_what_nvidias_models_declare(tmp_path: Path) -> None:
    """The e2e doubles are built from our templates; their guided and log-prob tensors stay NVIDIA's."""
    from tests.models.trtllm import build_trtllm_mimics  # noqa: PLC0415

    build_trtllm_mimics(tmp_path)
    for model, kind in (("tensorrt_llm_bls", "tensorrt_llm_bls"), ("ensemble", "ensemble"),
                        ("tensorrt_llm", "tensorrt_llm")):
        text = (tmp_path / "model_repository" / model / "config.pbtxt").read_text()
        config = text_format.Parse(text, mc.ModelConfig())
        theirs = {t["name"]: t for t in FACTS["models"][kind]["inputs"] + FACTS["models"][kind]["outputs"]}
        ours = {t.name: _ours(t) for t in [*config.input, *config.output]}
        for name in (*GUIDED, "return_log_probs", "output_log_probs"):
            assert ours[name] == theirs[name], (model, name)
