"""scripts/trtllm_facts.py's readers, on small inputs written for these tests."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.trtllm_facts import (
    argparse_flags,
    collect,
    cpp_required,
    parse_config,
    plugin_flags,
    python_parameters,
    yaml_keys,
)

CPP = """
// a comment that says try { GetParameter<int>("commented") }
void a() { auto x = model_state_->GetParameter<std::string>("needed"); }
void b() {
  try { y = model_state_->GetParameter<std::vector<int32_t>>("optional_one"); } catch (e) { }
  if (z) { try {
      w = model_state_->GetParameter<uint32_t>("nested_optional");
  } catch (e) { } }
  v = model_state_->GetParameter<bool>("needed_too");
}
"""


def test_cpp_reads_outside_a_try_block_are_required() -> None:
    assert cpp_required(CPP) == (["needed", "needed_too"], ["nested_optional", "optional_one"])


def test_python_subscripts_are_required_and_gets_optional() -> None:
    text = ("a = model_config['parameters']['tokenizer_dir']['string_value']\n"
            "b = model_config['parameters'].get('skip')\n"
            "c = params.get(\"name\", {})\nd = params['other']\n")
    assert python_parameters(text) == (["other", "tokenizer_dir"], ["name", "skip"])


def test_model_yaml_keys() -> None:
    text = ('x = triton_config["decoupled"]\ny = int(triton_config["period"]) if "period" in triton_config else 1\n'
            "update_llm_args_with_extra_dict({}, cfg)\n")
    keys = yaml_keys(text)
    assert keys["triton_config_required"] == ["decoupled"] and keys["triton_config_optional"] == ["period"]
    assert keys["other_keys"].startswith("passed whole to tensorrt_llm.LLM")


def test_argparse_flags_with_aliases_required_and_choices() -> None:
    text = ("p.add_argument('--model-dir', '--model_dir', required=True)\n"
            "p.add_argument('--dtype', choices=['auto', 'float16'])\n"
            "p.add_argument('--fast', action='store_true')\np.add_argument('positional')\n")
    flags = argparse_flags(text)
    assert set(flags) == {"--model-dir", "--model_dir", "--dtype", "--fast"}
    assert flags["--model_dir"] == {"aliases": ["--model-dir", "--model_dir"], "required": True}
    assert flags["--dtype"]["choices"] == ["auto", "float16"] and flags["--fast"]["takes_value"] is False
    assert plugin_flags('cli_plugin_args = ["gemm_plugin", "use_fp8_context_fmha"]\n') == {
        "--gemm_plugin": {"aliases": ["--gemm_plugin"], "required": False},
        "--use_fp8_context_fmha": {"aliases": ["--use_fp8_context_fmha"], "required": False}}


def test_config_tensors_keep_placeholders_reshape_and_optional() -> None:
    text = """name: "m"
backend: "python"
input [
  { name: "a" data_type: TYPE_INT32 dims: [ 1 ] reshape: { shape: [ ] } optional: true },
  # a comment with { braces }
  { name: "b", data_type: ${logits_datatype}, dims: [ -1, 3 ] }
]
output [ { name: "c" data_type: TYPE_STRING dims: [ -1 ] } ]
parameters: { key: "k1" value: { string_value: "${k1}" } }
parameters { key: "k2" value: { string_value: "x" } }
"""
    facts = parse_config(text)
    assert facts["inputs"] == [
        {"name": "a", "data_type": "TYPE_INT32", "dims": [1], "optional": True, "reshape": []},
        {"name": "b", "data_type": "${logits_datatype}", "dims": [-1, 3], "optional": False}]
    assert facts["outputs"] == [{"name": "c", "data_type": "TYPE_STRING", "dims": [-1], "optional": False}]
    assert facts["template_parameters"] == ["k1", "k2"] and facts["backend"] == "python"


def test_collect_lists_what_the_checkout_lacks(tmp_path: Path) -> None:
    folder = tmp_path / "triton_backend" / "all_models" / "inflight_batcher_llm" / "postprocessing"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text('name: "postprocessing"\nbackend: "python"\n'
                                         'input [ { name: "T" data_type: TYPE_INT32 dims: [ -1 ] } ]\n')
    (folder / "1" / "model.py").write_text("t = model_config['parameters']['tokenizer_dir']\n")
    facts = collect(tmp_path, "vX", {"p": "c"})
    assert facts["tensorrt_llm_tag"] == "vX" and facts["sources"] == {"p": "c"}
    assert facts["models"]["postprocessing"]["required_parameters"] == ["tokenizer_dir"]
    assert "tensorrt_llm/commands/build.py" in facts["missing"]
    assert json.loads(json.dumps(facts)) == facts
