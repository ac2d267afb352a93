#!/usr/bin/env python3
"""Read NVIDIA's interface facts out of a TensorRT-LLM checkout into ``tests/conformance/trtllm_facts.json``.

Usage::

    git clone --depth 1 -b v1.2.1 https://github.com/NVIDIA/TensorRT-LLM /tmp/trtllm
    python scripts/trtllm_facts.py --root /tmp/trtllm --tag v1.2.1 > tests/conformance/trtllm_facts.json

Then review ``git diff tests/conformance/trtllm_facts.json`` and run ``pytest tests/conformance``:
every generated config and build command is checked against the new facts.

What is read (nothing is imported or executed from the checkout):

* each Triton model's ``config.pbtxt``: inputs and outputs (name, data type, dims, optional,
  reshape) and the ``parameters`` keys of NVIDIA's template;
* the parameters each model reads *without a default*: in the C++ backend, every
  ``GetParameter<...>("name")`` outside a ``try`` block (a missing key throws and the instance
  fails to load); in the Python models, every ``['parameters']['name']`` subscript;
* the ``model.yaml`` keys the LLM API model reads from ``triton_config``;
* the flags each script accepts (every ``add_argument`` string starting with ``-``, with
  ``required``/``choices`` when literal): ``convert_checkpoint.py`` per model family,
  ``quantize.py``, ``trtllm-build`` (``tensorrt_llm/commands/build.py`` plus the plugin flags of
  ``tensorrt_llm/plugin/plugin.py``), ``build_multimodal_engine.py`` and the
  ``add_multimodal_arguments`` of ``tensorrt_llm/tools/multimodal_builder.py`` it parses with,
  ``launch_triton_server.py``.

Both layouts are understood: NVIDIA/TensorRT-LLM (``triton_backend/...``) and the older
triton-inference-server/tensorrtllm_backend (``all_models/...`` at the top). A file that is not in
the checkout is listed under ``missing`` rather than guessed.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

# Triton model -> config.pbtxt and Python code, relative to the Triton-backend folder.
MODELS = {
    "tensorrt_llm": ("all_models/inflight_batcher_llm/tensorrt_llm", None),
    "tensorrt_llm_bls": ("all_models/inflight_batcher_llm/tensorrt_llm_bls", "1/model.py"),
    "preprocessing": ("all_models/inflight_batcher_llm/preprocessing", "1/model.py"),
    "postprocessing": ("all_models/inflight_batcher_llm/postprocessing", "1/model.py"),
    "ensemble": ("all_models/inflight_batcher_llm/ensemble", None),
    "multimodal_encoders": ("all_models/multimodal/multimodal_encoders", "1/model.py"),
    "llmapi": ("all_models/llmapi/tensorrt_llm", "1/model.py"),
}
CPP_SOURCES = ("inflight_batcher_llm/src/model_instance_state.cc", "inflight_batcher_llm/src/model_state.cc")
CONVERT = {"llama": "examples/models/core/llama/convert_checkpoint.py",
           "qwen": "examples/models/core/qwen/convert_checkpoint.py",
           "gemma": "examples/models/core/gemma/convert_checkpoint.py"}
SCRIPTS = {"quantize.py": "examples/quantization/quantize.py",
           "trtllm-build": "tensorrt_llm/commands/build.py",
           "build_multimodal_engine.py": "examples/models/core/multimodal/build_multimodal_engine.py"}
PLUGIN = "tensorrt_llm/plugin/plugin.py"
# build_multimodal_engine.py takes its flags from this module's add_multimodal_arguments().
MULTIMODAL_BUILDER = "tensorrt_llm/tools/multimodal_builder.py"
LAUNCH = "scripts/launch_triton_server.py"

_BLOCK = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", re.S)


def _backend_root(root: Path) -> Path:
    return root / "triton_backend" if (root / "triton_backend").is_dir() else root


def _section(text: str, name: str) -> str:
    """The body of ``input [ ... ]`` / ``output [ ... ]`` (brackets balanced)."""
    m = re.search(rf"^\s*{name}\s*\[", text, re.M)
    if not m:
        return ""
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        i += 1
    return text[m.end():i - 1]


def _strip_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


def _tensor(body: str) -> dict[str, Any]:
    name = re.search(r'name\s*:\s*"([^"]+)"', body)
    dtype = re.search(r"data_type\s*:\s*([A-Z0-9_]+|\$\{\w+\})", body)
    without_reshape = re.sub(r"reshape\s*:\s*\{[^}]*\}", "", body)
    dims = re.search(r"\bdims\s*:\s*\[([^\]]*)\]", without_reshape)
    reshape = re.search(r"reshape\s*:\s*\{\s*shape\s*:\s*\[([^\]]*)\]", body)
    optional = re.search(r"optional\s*:\s*(true|false)", body)

    def ints(s: str) -> list[int]:
        return [int(x) for x in s.replace(",", " ").split()]

    out: dict[str, Any] = {"name": name.group(1) if name else "", "data_type": dtype.group(1) if dtype else "",
                           "dims": ints(dims.group(1)) if dims else [],
                           "optional": bool(optional and optional.group(1) == "true")}
    if reshape:
        out["reshape"] = ints(reshape.group(1))
    return out


def parse_config(text: str) -> dict[str, Any]:
    """Tensors and parameter keys of one ``config.pbtxt`` (template placeholders kept as text)."""
    text = _strip_comments(text)
    tensors = {kind: [_tensor(b.group(1)) for b in _BLOCK.finditer(_section(text, kind))]
               for kind in ("input", "output")}
    keys = re.findall(r'parameters\s*:?\s*\{\s*key\s*:\s*"([^"]+)"', text)
    backend = re.search(r'(backend|platform)\s*:\s*"([^"]+)"', text)
    return {"backend": backend.group(2) if backend else "", "inputs": tensors["input"],
            "outputs": tensors["output"], "template_parameters": sorted(set(keys))}


def cpp_required(text: str) -> tuple[list[str], list[str]]:
    """``GetParameter<...>("x")`` names read outside / inside a ``try`` block."""
    required, optional = [], []
    stack: list[bool] = []  # one entry per open brace: True when it opened a try block
    pending_try = False
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    for tok in re.finditer(r'\btry(?=\s*\{)|[{}]|GetParameter<[^>]*(?:<[^>]*>)?[^>]*>\(\s*"([^"]+)"\s*\)', text):
        s = tok.group(0)
        if s == "try":
            pending_try = True
        elif s == "{":
            stack.append(pending_try)
            pending_try = False
        elif s == "}":
            if stack:
                stack.pop()
        else:
            (optional if any(stack) else required).append(tok.group(1))
    return sorted(set(required)), sorted(set(optional) - set(required))


def python_parameters(text: str) -> tuple[list[str], list[str]]:
    """Parameter names a Python model reads by subscript (required) or ``.get`` (optional)."""
    required = set(re.findall(r"\[\s*['\"]parameters['\"]\s*\]\s*\[\s*['\"](\w+)['\"]\s*\]", text))
    required |= set(re.findall(r"\bparams\s*\[\s*['\"](\w+)['\"]\s*\]", text))
    optional = set(re.findall(
        r"(?:\[\s*['\"]parameters['\"]\s*\]|\bparams)\s*\.get\(\s*['\"](\w+)['\"]", text))
    return sorted(required), sorted(optional - required)


def yaml_keys(text: str) -> dict[str, list[str]]:
    """``triton_config`` keys the LLM API model reads from model.yaml."""
    required = set(re.findall(r"triton_config\s*\[\s*['\"](\w+)['\"]\s*\]", text))
    optional = set(re.findall(r"['\"](\w+)['\"]\s+in\s+triton_config", text))
    return {"triton_config_required": sorted(required - optional),
            "triton_config_optional": sorted(optional),
            "other_keys": "passed whole to tensorrt_llm.LLM(**kwargs) (update_llm_args_with_extra_dict)"
            if "update_llm_args_with_extra_dict" in text else ""}


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def argparse_flags(text: str) -> dict[str, dict[str, Any]]:
    """Every flag of every ``add_argument`` call: ``{flag: {aliases, required, choices}}``."""
    flags: dict[str, dict[str, Any]] = {}
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                 and a.value.startswith("-")]
        if not names:
            continue
        info: dict[str, Any] = {"aliases": names, "required": False}
        for kw in node.keywords:
            if kw.arg == "required":
                info["required"] = bool(_literal(kw.value))
            elif kw.arg == "choices":
                choices = _literal(kw.value)
                if isinstance(choices, list | tuple):
                    info["choices"] = [c for c in choices if c is not None]
            elif kw.arg == "action" and _literal(kw.value) in ("store_true", "store_false"):
                info["takes_value"] = False
        for name in names:
            flags[name] = info
    return flags


def plugin_flags(text: str) -> dict[str, dict[str, Any]]:
    """``trtllm-build``'s plugin flags: ``--<name>`` for each name in ``cli_plugin_args``."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "cli_plugin_args"
                                                for t in node.targets):
            names = _literal(node.value) or []
            return {f"--{n}": {"aliases": [f"--{n}"], "required": False} for n in names}
    return {}


def collect(root: Path, tag: str, sources: dict[str, str] | None = None) -> dict[str, Any]:
    """Every fact, as one JSON-ready dict."""
    backend = _backend_root(root)
    missing: list[str] = []

    def read(base: Path, rel: str) -> str | None:
        path = base / rel
        if not path.is_file():
            missing.append(str(path.relative_to(root)))
            return None
        return path.read_text(errors="replace")

    models: dict[str, Any] = {}
    for name, (folder, code) in MODELS.items():
        config = read(backend, f"{folder}/config.pbtxt")
        if config is None:
            continue
        facts = parse_config(config)
        facts["required_parameters"], facts["optional_parameters"] = [], []
        if code:
            source = read(backend, f"{folder}/{code}")
            if source is not None:
                facts["required_parameters"], facts["optional_parameters"] = python_parameters(source)
                if name == "llmapi":
                    facts["model_yaml"] = yaml_keys(source)
        models[name] = facts
    cpp_req: set[str] = set()
    cpp_opt: set[str] = set()
    for rel in CPP_SOURCES:
        text = read(backend, rel)
        if text is not None:
            req, opt = cpp_required(text)
            cpp_req |= set(req)
            cpp_opt |= set(opt)
    if "tensorrt_llm" in models:
        models["tensorrt_llm"]["required_parameters"] = sorted(cpp_req)
        models["tensorrt_llm"]["optional_parameters"] = sorted(cpp_opt - cpp_req)

    scripts: dict[str, Any] = {}
    for family, rel in CONVERT.items():
        text = read(root, rel)
        if text is not None:
            scripts[f"convert_checkpoint.py:{family}"] = argparse_flags(text)
    for name, rel in SCRIPTS.items():
        text = read(root, rel)
        if text is not None:
            scripts[name] = argparse_flags(text)
    text = read(root, MULTIMODAL_BUILDER)
    if text is not None:
        scripts["multimodal_builder:add_multimodal_arguments"] = argparse_flags(text)
    if "trtllm-build" in scripts:
        text = read(root, PLUGIN)
        if text is not None:
            scripts["trtllm-build"].update(plugin_flags(text))
    text = read(backend, LAUNCH)
    if text is not None:
        scripts["launch_triton_server.py"] = argparse_flags(text)
    return {"tensorrt_llm_tag": tag, "sources": sources or {}, "models": models, "scripts": scripts,
            "missing": sorted(missing)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="a TensorRT-LLM (or tensorrtllm_backend) checkout")
    p.add_argument("--tag", required=True, help="the tag (or commit) the checkout is at, recorded in the file")
    p.add_argument("--sources", type=Path, help="optional JSON {path: commit} recorded as provenance")
    args = p.parse_args(argv)
    sources = json.loads(args.sources.read_text()) if args.sources else None
    json.dump(collect(args.root, args.tag, sources), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
