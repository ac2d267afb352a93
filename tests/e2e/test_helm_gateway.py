"""The Helm chart's gateway container as rendered (its args and CHUNGUS_* env) runs against the real
Triton without the CPU extras, as in the image, and the chart's `helm test` script passes on it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.triton.server import TritonServer, free_port
from tests.chart import Rendered, container, expand, helm_binary, literal_env, render
from tests.e2e.conftest import CHAT_MODEL
from tests.unit.test_container_image import CPU_ONLY_MODULES

pytestmark = pytest.mark.skipif(helm_binary() is None, reason="no helm binary (make install fetches it)")
SERVICE_URL = "http://t-chungus-gateway:80"


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    # One replica with SQLite in the pod: the render that needs no PostgreSQL or Redis.
    return render(("minimal-values.yaml",))


@pytest.fixture(scope="module")
def admin_key(rendered: Rendered) -> str:
    return base64.b64decode(rendered.get("Secret", "t-chungus-gateway")["data"]["admin-key"]).decode()


@pytest.fixture(scope="module")
def chart_gateway(rendered: Rendered, admin_key: str, triton: TritonServer, stack_dir: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The rendered container, with only what a cluster provides swapped for loopback stand-ins."""
    work = tmp_path_factory.mktemp("helm-gateway")
    gateway = container(rendered.get("Deployment", "t-chungus-gateway"), "gateway")
    port = free_port()
    env = literal_env(gateway) | {
        "CHUNGUS_HOST": "127.0.0.1", "CHUNGUS_PORT": str(port),  # the pod's 0.0.0.0:8080
        "CHUNGUS_TRITON_URLS": triton.grpc_url,  # dns:// on the headless Triton Service
        "CHUNGUS_REGISTRY_PATH": str(stack_dir / "registry.toml"),  # the registry ConfigMap
        "CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}",  # the /data emptyDir
        "CHUNGUS_ADMIN_KEY": admin_key,  # from the rendered Secret
    }
    (work / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import importlib.abc, sys
        class _NotInImage(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {CPU_ONLY_MODULES!r}:
                    raise ImportError("not in the gateway image: " + name)
        sys.meta_path.insert(0, _NotInImage())
    """))
    args = [expand(a, env) for a in gateway["args"]]
    with (work / "gateway.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env, "PYTHONPATH": str(work)}, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, work / "gateway.log")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/health/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gateway not ready in {timeout_s}s:\n{log.read_text()[-3000:]}")


def _helm_test_script(rendered: Rendered, base: str) -> str:
    pod = rendered.get("Pod", "t-chungus-test-connection")
    test = pod["spec"]["containers"][0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test" and test["command"] == ["sh", "-ec"]
    assert SERVICE_URL in test["args"][0]
    return test["args"][0].replace(SERVICE_URL, base)


def test_helm_test_pod_passes_against_the_rendered_gateway(rendered: Rendered, chart_gateway: str,
                                                           admin_key: str, tmp_path: Path) -> None:
    script = _helm_test_script(rendered, chart_gateway).replace("/tmp/", f"{tmp_path}/")
    proc = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "CHUNGUS_ADMIN_KEY": admin_key})
    assert proc.returncode == 0, proc.stderr
    assert f'"id":"{CHAT_MODEL}"' in proc.stdout


def test_helm_test_pod_fails_with_a_wrong_key(rendered: Rendered, chart_gateway: str, tmp_path: Path) -> None:
    script = _helm_test_script(rendered, chart_gateway).replace("/tmp/", f"{tmp_path}/")
    proc = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "CHUNGUS_ADMIN_KEY": "sk-chungus-wrong-0123456789"})
    assert proc.returncode != 0 and "401" in proc.stderr
