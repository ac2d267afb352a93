"""``python -m build_engines trtllm --config models.toml [--out var] [--dry-run]``.

Plans every step (commands to run, files to write, NVIDIA model code to copy from the
TensorRT-LLM checkout), prints it with ``--dry-run``, else runs it with a progress display.
Run inside ``nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3`` (see docs/gpu.md).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
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
from build_engines.trtllm.tokenizer_info import write_tokenizer_info
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


@dataclass(frozen=True)
class TokenizerInfo:
    """Write xgrammar's tokenizer-info file for guided decoding from the HF model folder."""

    hf_model: str
    target: Path


Step = Run | Write | Copy | TokenizerInfo


def _code_source(root: str, name: str) -> str:
    """Where NVIDIA's Python code for a Triton model lives in the TensorRT-LLM checkout."""
    models = commands.all_models(root)
    if name == "multimodal_encoders":
        return str(models / "multimodal" / "multimodal_encoders" / "1")
    return str(models / "inflight_batcher_llm" / name / "1")


def _engine_steps(m: TrtllmModel, repo: Path, build: BuildFile) -> list[Step]:
    steps: list[Step] = [Run(c) for c in commands.engine_commands(m, build.workdir, build.trtllm_root)]
    steps.append(TokenizerInfo(m.hf_model, Path(repository.tokenizer_info_path(m, build.workdir))))
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
        ValueError: more than one engine-path model (their Triton names are fixed), two models
            with one id, or models NVIDIA's launcher cannot start together.
    """
    if sum(m.path == "engine" for m in build.models) > 1:
        raise ValueError("one engine-path model per build file and repository: NVIDIA's BLS and "
                         "ensemble refer to fixed model names; use separate --out folders")
    if len({triton_name(m.id) for m in build.models}) != len(build.models):
        raise ValueError("model ids must be unique (after mapping to Triton names)")
    refusal = commands.launch_refusal(build.models)
    if refusal:
        raise ValueError(refusal)
    repo = out / "model_repository"
    steps: list[Step] = []
    for m in build.models:
        steps += (_engine_steps if m.path == "engine" else _llmapi_steps)(m, repo, build)
    return steps


def missing_sources(build: BuildFile, steps: list[Step]) -> list[str]:
    """Scripts and model code the plan needs from the TensorRT-LLM checkout that are not there."""
    needed = {s.source for s in steps if isinstance(s, Copy)}
    needed |= {a for s in steps if isinstance(s, Run) for a in s.argv[1:2] if a.endswith(".py")}
    needed |= {m.calib_dataset for m in build.models if m.calib_dataset and m.needs_calibration}
    return sorted(p for p in needed if not Path(p).exists())


# Facts in tests/conformance/trtllm_facts.json were read for this release line; the `gpu` extra
# of pyproject.toml pins the same version.
CHECKED_VERSION = "1.2.1"


def installed_trtllm() -> str | None:
    """The installed TensorRT-LLM's version, read without importing it (the import prints a banner)."""
    if importlib.util.find_spec("tensorrt_llm") is None:
        return None
    try:
        return importlib.metadata.version("tensorrt_llm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def preflight(build: BuildFile) -> list[str]:
    """What the installed TensorRT-LLM lacks for the paths this build file asks for."""
    version = installed_trtllm()
    problems = []
    if version is None:
        problems.append("TensorRT-LLM is not installed in this Python: run inside NVIDIA's "
                        "tritonserver:<yy.mm>-trtllm-python-py3 container, or `pip install .[gpu]` "
                        "(see docs/gpu.md)")
    if any(m.path == "engine" for m in build.models) and shutil.which("trtllm-build") is None:
        problems.append("path = \"engine\" needs trtllm-build, which this TensorRT-LLM does not provide "
                        f"(installed: {version}); NVIDIA is removing the engine workflow: use "
                        "path = \"llmapi\" with this version, or a release that still ships trtllm-build")
    return problems


def describe(step: Step) -> str:
    if isinstance(step, Run):
        return "run:   " + shlex.join(step.argv)
    if isinstance(step, Copy):
        return f"copy:  {step.source} -> {step.target}"
    if isinstance(step, TokenizerInfo):
        return f"write: {step.target} (xgrammar tokenizer info from {step.hf_model}/tokenizer.json)"
    return f"write: {step.path}"


def execute(step: Step) -> None:
    if isinstance(step, Run):
        subprocess.run(step.argv, check=True)
    elif isinstance(step, Copy):
        shutil.copytree(step.source, step.target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    elif isinstance(step, TokenizerInfo):
        write_tokenizer_info(step.hf_model, step.target)
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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    problems = preflight(build)
    if problems:
        raise SystemExit("cannot build here:\n  " + "\n  ".join(problems))
    version = installed_trtllm()
    if version != CHECKED_VERSION:
        print(f"note: TensorRT-LLM {version} is installed; CHUNGUS's templates were checked against "
              f"{CHECKED_VERSION} (tests/conformance). Regenerate the facts for this version, see docs/gpu.md.")
    missing = missing_sources(build, steps)
    if missing:
        raise SystemExit("not found (trtllm_root must be NVIDIA/TensorRT-LLM at the container's version, "
                         "calib_dataset a local copy; see docs/gpu.md):\n  " + "\n  ".join(missing))
    progress = Progress()
    for i, step in enumerate(steps, 1):
        with progress.step(f"({i}/{len(steps)}) {describe(step)}"):
            execute(step)
    for m in build.models:
        with progress.step(f"registry entry {m.id}"):
            upsert_entry(args.out / "registry.toml", registry_entry(m, args.out))
    print("launch: " + launch)
    return 0
