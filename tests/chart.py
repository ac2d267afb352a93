"""Render the Helm chart with the real helm binary and look up objects in the result."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "chungus"
RELEASE, NAMESPACE = "t", "ml"
KUBE_VERSION = "1.30.0"


def helm_binary() -> str | None:
    """The helm next to this Python (``make install`` puts it there), else the one on PATH."""
    local = Path(sys.executable).parent / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; raise with its stderr when it fails and ``check`` is set."""
    binary = helm_binary()
    if binary is None:
        raise FileNotFoundError("helm")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def value_args(values_files: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> list[str]:
    args: list[str] = []
    for name in values_files:
        args += ["-f", str(CHART / "ci" / name)]  # an absolute path stays as it is
    for item in sets:
        args += ["--set", item]
    return args


def render_text(values_files: tuple[str, ...] = (), sets: tuple[str, ...] = (), release: str = RELEASE) -> str:
    """``helm template`` the chart (tests included): the YAML stream."""
    return helm("template", release, str(CHART), "--namespace", NAMESPACE,
                "--kube-version", KUBE_VERSION, *value_args(values_files, sets)).stdout


def render(values_files: tuple[str, ...] = (), sets: tuple[str, ...] = (), release: str = RELEASE) -> Rendered:
    """``helm template`` the chart (tests included) and parse every object."""
    return Rendered([doc for doc in yaml.safe_load_all(render_text(values_files, sets, release)) if doc])


def render_error(sets: tuple[str, ...] = (), values_files: tuple[str, ...] = ()) -> str:
    """Render values the chart must refuse; return helm's error (fails if it renders)."""
    proc = helm("template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
                *value_args(values_files, sets), check=False)
    assert proc.returncode != 0, f"rendered, but should have failed: {sets}"
    return proc.stderr


class Rendered:
    """The objects of one render."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered; have {[o['metadata']['name'] for o in self.of_kind(kind)]}")

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]

    def pod_specs(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(name, pod metadata, pod spec) of every workload's template, of a LeaderWorkerSet's
        leader and worker templates, and of bare pods."""
        pods = [(w["metadata"]["name"], w["spec"]["template"]["metadata"], w["spec"]["template"]["spec"])
                for w in self.workloads()]
        for lws in self.of_kind("LeaderWorkerSet"):
            for role in ("leaderTemplate", "workerTemplate"):
                template = lws["spec"]["leaderWorkerTemplate"][role]
                pods.append((f"{lws['metadata']['name']}/{role}", template["metadata"], template["spec"]))
        pods += [(p["metadata"]["name"], p["metadata"], p["spec"]) for p in self.of_kind("Pod")]
        return pods

    def pod_spec(self, kind: str, name: str) -> dict[str, Any]:
        return self.get(kind, name)["spec"]["template"]["spec"]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    """A container of a workload, a pod or a pod spec, by name (init containers included)."""
    spec = workload.get("spec", workload)
    spec = spec["template"]["spec"] if "template" in spec else spec
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def literal_env(container_spec: dict[str, Any]) -> dict[str, str]:
    """The container's plain env values, with $(VAR) references expanded as the kubelet does."""
    env: dict[str, str] = {}
    for item in container_spec.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, others kept verbatim."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)
