"""``python -m build_engines trtllm --config models.toml [--out var] [--dry-run]``.

Plans every step (commands to run, files to write, NVIDIA model code to copy from the
TensorRT-LLM checkout), prints it with ``--dry-run``, else runs it with a progress display.
Run inside ``nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3`` (see docs/gpu.md).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from build_engines.cpu import triton_name
from build_engines.progress import Progress
from build_engines.trtllm import commands, repository
from build_engines.trtllm.config import BuildFile, TrtllmModel, load
from build_engines.trtllm.entry import registry_entry
from gateway.registry import upsert_entry


@dataclass(frozen=True)
class Run:
    argv: list[str]


@dataclass(frozen=True)
class Write:
    path: Path
    text: str


@dataclass(frozen=True)
class Copy:
    source: str  # a folder of the TensorRT-LLM checkout
    target: Path


Step = Run | Write | Copy


def _code_source(root: str, name: str) -> str:
    """Where NVIDIA's Python code for a Triton model lives in the TensorRT-LLM checkout."""
    models = commands.all_models(root)
    if name == "multimodal_encoders":
        return str(models / "multimodal" / "multimodal_encoders" / "1")
    return str(models / "inflight_batcher_llm" / name / "1")


def _engine_steps(m: TrtllmModel, repo: Path, build: BuildFile) -> list[Step]:
    steps: list[Step] = [Run(c) for c in commands.engine_commands(m, build.workdir, build.trtllm_root)]
    for name, text in repository.engine_configs(m, build.workdir).items():
        steps.append(Write(repo / name / "config.pbtxt", text))
        if name in ("tensorrt_llm", "ensemble"):  # C++ backend / ensemble: an empty version folder
            steps.append(Write(repo / name / "1" / ".keep", ""))
        else:
            steps.append(Copy(_code_source(build.trtllm_root, name), repo / name / "1"))
    return steps


def _llmapi_steps(m: TrtllmModel, repo: Path, build: BuildFile) -> list[Step]:
    target = repo / triton_name(m.id)
    source = str(commands.all_models(build.trtllm_root) / "llmapi" / "tensorrt_llm" / "1")
    files = repository.llmapi_files(m)
    return [Write(target / "config.pbtxt", files["config.pbtxt"]), Copy(source, target / "1"),
            Write(target / "1" / "model.yaml", files["1/model.yaml"])]  # after the copy: ours wins


def plan(build: BuildFile, out: Path) -> list[Step]:
    """Every step for every model, in order.

    Raises:
        ValueError: more than one engine-path model (their Triton names are fixed), or two
            models with one id.
    """
    if sum(m.path == "engine" for m in build.models) > 1:
        raise ValueError("one engine-path model per build file and repository: NVIDIA's BLS and "
                         "ensemble refer to fixed model names; use separate --out folders")
    if len({triton_name(m.id) for m in build.models}) != len(build.models):
        raise ValueError("model ids must be unique (after mapping to Triton names)")
    repo = out / "model_repository"
    steps: list[Step] = []
    for m in build.models:
        steps += (_engine_steps if m.path == "engine" else _llmapi_steps)(m, repo, build)
    return steps


def missing_sources(build: BuildFile, steps: list[Step]) -> list[str]:
    """Scripts and model code the plan needs from the TensorRT-LLM checkout that are not there."""
    needed = {s.source for s in steps if isinstance(s, Copy)}
    needed |= {a for s in steps if isinstance(s, Run) for a in s.argv[1:2] if a.endswith(".py")}
    return sorted(p for p in needed if not Path(p).exists())


def describe(step: Step) -> str:
    if isinstance(step, Run):
        return "run:   " + shlex.join(step.argv)
    if isinstance(step, Copy):
        return f"copy:  {step.source} -> {step.target}"
    return f"write: {step.path}"


def execute(step: Step) -> None:
    if isinstance(step, Run):
        subprocess.run(step.argv, check=True)
    elif isinstance(step, Copy):
        shutil.copytree(step.source, step.target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    else:
        step.path.parent.mkdir(parents=True, exist_ok=True)
        step.path.write_text(step.text)


def _print_plan(build: BuildFile, steps: list[Step], out: Path) -> None:
    for step in steps:
        print(describe(step))
        if isinstance(step, Write) and step.path.suffix in (".pbtxt", ".yaml"):
            print("\n".join("       | " + line for line in step.text.splitlines()))
    for m in build.models:
        kind = f"{m.path}/{m.frontend}" if m.path == "engine" else m.path
        print(f"registry: {m.id} ({kind}) -> {out / 'registry.toml'}, {out / 'models' / m.id}/")


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("trtllm", help="TensorRT-LLM engines / LLM API models (GPU container)")
    p.add_argument("--config", type=Path, required=True, help="TOML build file (see docs/gpu.md)")
    p.add_argument("--out", type=Path, default=Path("var"), help="build output folder")
    p.add_argument("--dry-run", action="store_true", help="print every command and file, run nothing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    build = load(args.config)
    steps = plan(build, args.out)
    launch = shlex.join(commands.launch_command(str(args.out / "model_repository"), build.models,
                                                build.trtllm_root))
    if args.dry_run:
        _print_plan(build, steps, args.out)
        print("launch: " + launch)
        return 0
    missing = missing_sources(build, steps)
    if missing:
        raise SystemExit("not found in trtllm_root (check out NVIDIA/TensorRT-LLM at the container's "
                         "version, see docs/gpu.md):\n  " + "\n  ".join(missing))
    progress = Progress()
    for i, step in enumerate(steps, 1):
        with progress.step(f"({i}/{len(steps)}) {describe(step)}"):
            execute(step)
    for m in build.models:
        with progress.step(f"registry entry {m.id}"):
            upsert_entry(args.out / "registry.toml", registry_entry(m, args.out))
    print("launch: " + launch)
    return 0
