"""``chungus serve`` as a user runs it (Triton started and supervised by it) on the echo test models.

Used by the supervision, fault and soak tests: the process runs in its own session, so signals
sent to it never reach pytest, and every process it leaves behind can be found by its Triton
workdir on the command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from gateway.triton.server import free_port
from tests.models.build import build_test_models
from tests.support import ROOT

ADMIN_KEY = "sk-chungus-test-admin-key-0123456789"


def build_echo_stack(out: Path) -> Path:
    """The echo-family test models only (they load in seconds): ``out`` with registry and repo."""
    out.mkdir(parents=True, exist_ok=True)
    build_test_models(out)
    return out


def pids_matching(pattern: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``pattern``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if pattern in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_for(predicate: object, timeout_s: float, step_s: float = 0.1) -> float | None:
    """Seconds until ``predicate()`` was true, or None after ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():  # type: ignore[operator]  # any zero-argument callable
            return time.monotonic() - start
        time.sleep(step_s)
    return None


@dataclass
class ServeStack:
    """``python -m gateway.cli serve`` (embedded, supervised Triton) on loopback ports."""

    stack: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    triton_ports: tuple[int, int, int] = field(
        default_factory=lambda: (free_port(), free_port(), free_port()))
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    @property
    def triton_dir(self) -> Path:
        return self.workdir / "triton"

    def start(self, timeout_s: float = 240.0) -> ServeStack:
        """Launch and wait until every model is ready."""
        self.launch()
        if wait_for(self.models_ready, timeout_s, 0.25) is None:
            self.kill()
            raise RuntimeError(f"chungus serve not ready in {timeout_s}s:\n{self.log()[-3000:]}")
        return self

    def launch(self) -> None:
        """Start the process, in its own session; wait for nothing."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        http, grpc, metrics = self.triton_ports
        env = {**os.environ, "CHUNGUS_HOST": "127.0.0.1", "CHUNGUS_PORT": str(self.port),
               "CHUNGUS_REGISTRY_PATH": str(self.stack / "registry.toml"),
               "CHUNGUS_ADMIN_KEY": ADMIN_KEY, "CHUNGUS_ACCESS_LOG": "false",
               "CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / 'keys.db'}", **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve",
                 "--model-repository", str(self.stack / "model_repository"),
                 "--workdir", str(self.triton_dir), "--triton-http-port", str(http),
                 "--triton-grpc-port", str(grpc), "--triton-metrics-port", str(metrics)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(self.base_url + path,
                                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def models_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"chungus serve exited:\n{self.log()[-3000:]}")
        try:
            return self.get("/health/models", 2)[0] == 200
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            return False

    def triton_pid(self) -> int | None:
        """The tritonserver that this serve started (the current one)."""
        assert self.process is not None
        pids = [p for p in pids_matching(f"--backend-directory={self.triton_dir}")
                if _ppid(p) == self.process.pid]
        return pids[0] if pids else None

    def leftovers(self) -> list[int]:
        """Every live process of this stack: tritonserver and stubs (both name its backends)."""
        return pids_matching(str(self.triton_dir / "backends"))

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """Last resort for a failed test: the serve process, then anything of the stack."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1
