"""``python -m build_engines trtllm --config models.toml [--out var] [--dry-run]``.

Plans every step (commands to run, files to write, NVIDIA model code to copy from the container),
prints it with ``--dry-run``, else runs it with a progress display. Run inside
``nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3`` (see docs/gpu.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from build_engines.cpu import triton_name
from build_engines.progress import Progress
from build_engines.trtllm import commands, repository, specs
from build_engines.trtllm.config import BuildFile, TrtllmModel, load
from gateway.registry import ModelEntry, upsert_entry


@dataclass(frozen=True)
class Run:
    argv: list[str]


@dataclass(frozen=True)
class Write:
    path: Path
    text: str


@dataclass(frozen=True)
class Copy:
    source: str  # inside the container
    target: Path


Step = Run | Write | Copy


def _engine_steps(m: TrtllmModel, repo: Path, workdir: str) -> list[Step]:
    steps: list[Step] = [Run(c) for c in commands.engine_commands(m, workdir)]
    configs = [
        ("preprocessing", repository.tokenizer_config("preprocessing", m, specs.PREPROCESSING_INPUTS,
                                                      specs.PREPROCESSING_OUTPUTS)),
        ("postprocessing", repository.tokenizer_config("postprocessing", m,
                                                       specs.POSTPROCESSING_INPUTS,
                                                       specs.POSTPROCESSING_OUTPUTS)),
        ("tensorrt_llm", repository.core_config(m, commands.engine_dir(m, workdir))),
        ("tensorrt_llm_bls", repository.bls_config(m)),
    ]
    if m.frontend == "ensemble":
        configs.append(("ensemble", repository.ensemble_config(m)))
    for name, config in configs:
        steps.append(Write(repo / name / "config.pbtxt", repository.dump(config)))
        if name == "ensemble":
            steps.append(Write(repo / name / "1" / ".keep", ""))
        elif name == "tensorrt_llm":
            steps.append(Write(repo / name / "1" / ".keep", ""))  # the C++ backend has no model.py
        else:
            steps.append(Copy(f"{commands.ALL_MODELS}/inflight_batcher_llm/{name}/1", repo / name / "1"))
    return steps


def _llmapi_steps(m: TrtllmModel, repo: Path) -> list[Step]:
    name = triton_name(m.id)
    return [
        Write(repo / name / "config.pbtxt", repository.dump(repository.llmapi_config(m))
              .replace('name: "tensorrt_llm"', f'name: "{name}"')),
        Copy(f"{commands.ALL_MODELS}/llmapi/tensorrt_llm/1", repo / name / "1"),
        Write(repo / name / "1" / "model.yaml", repository.llmapi_yaml(m)),
    ]


def plan(build: BuildFile, out: Path) -> list[Step]:
    """Every step for every model, in order.

    Raises:
        ValueError: more than one engine-path model (their Triton names are fixed).
    """
    if sum(m.path == "engine" for m in build.models) > 1:
        raise ValueError("one engine-path model per build file and repository: NVIDIA's BLS and "
                         "ensemble refer to fixed model names; use separate --out folders")
    repo = out / "model_repository"
    steps: list[Step] = []
    for m in build.models:
        steps += _engine_steps(m, repo, build.workdir) if m.path == "engine" else _llmapi_steps(m, repo)
    return steps


def registry_entry(m: TrtllmModel, out: Path) -> ModelEntry:
    """The gateway's entry; copies the chat template and tokenizer from the HF folder."""
    side = out / "models" / m.id
    side.mkdir(parents=True, exist_ok=True)
    hf = Path(m.hf_model)
    tok_config = json.loads((hf / "tokenizer_config.json").read_text()) \
        if (hf / "tokenizer_config.json").exists() else {}
    template = tok_config.get("chat_template")
    if (hf / "chat_template.jinja").exists():
        template = (hf / "chat_template.jinja").read_text()
    if isinstance(template, str):
        (side / "chat_template.jinja").write_text(template)
    if (hf / "tokenizer.json").exists():
        shutil.copy(hf / "tokenizer.json", side / "tokenizer.json")

    def token(key: str) -> str:
        value = tok_config.get(key) or ""
        return value.get("content", "") if isinstance(value, dict) else str(value)

    engine = m.path == "engine"
    return ModelEntry(
        id=m.id, kind="chat", vision=m.vision,
        triton_model=("tensorrt_llm_bls" if m.frontend == "bls" else "ensemble") if engine
        else triton_name(m.id),
        contract="bls" if engine else "llmapi",
        text_mode="delta" if engine and m.frontend == "ensemble" else "cumulative",
        chat_template=f"models/{m.id}/chat_template.jinja" if isinstance(template, str) else None,
        tokenizer=f"models/{m.id}/tokenizer.json" if (hf / "tokenizer.json").exists() else None,
        bos_token=token("bos_token"), eos_token=token("eos_token"),
        default_max_tokens=min(m.default_max_tokens, m.max_seq_len - m.max_input_len),
        max_tokens_limit=m.max_seq_len - 1, context_length=m.max_seq_len,
        image_token_repeat=m.num_visual_features)


def describe(step: Step) -> str:
    if isinstance(step, Run):
        return "run:   " + shlex.join(step.argv)
    if isinstance(step, Copy):
        return f"copy:  {step.source} -> {step.target}"
    return f"write: {step.path}"


def execute(step: Step, progress: Progress) -> None:
    with progress.step(describe(step)):
        if isinstance(step, Run):
            subprocess.run(step.argv, check=True)
        elif isinstance(step, Copy):
            shutil.copytree(step.source, step.target, dirs_exist_ok=True)
        else:
            step.path.parent.mkdir(parents=True, exist_ok=True)
            step.path.write_text(step.text)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("trtllm", help="TensorRT-LLM engines / LLM API models (GPU container)")
    p.add_argument("--config", type=Path, required=True, help="TOML build file (see docs/gpu.md)")
    p.add_argument("--out", type=Path, default=Path("var"), help="build output folder")
    p.add_argument("--dry-run", action="store_true", help="print every command and file, run nothing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    build = load(args.config)
    steps = plan(build, args.out)
    if args.dry_run:
        for step in steps:
            print(describe(step))
            if isinstance(step, Write) and step.path.suffix in (".pbtxt", ".yaml"):
                print("\n".join("       | " + line for line in step.text.splitlines()))
        for m in build.models:
            print(f"registry: {m.id} -> {args.out / 'registry.toml'}")
            print("launch: " + shlex.join(commands.launch_command(str(args.out / "model_repository"), m)))
        return 0
    progress = Progress()
    for step in steps:
        execute(step, progress)
    for m in build.models:
        upsert_entry(args.out / "registry.toml", registry_entry(m, args.out))
        print("launch: " + shlex.join(commands.launch_command(str(args.out / "model_repository"), m)))
    return 0
