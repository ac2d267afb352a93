"""Helpers shared by the test suites: real processes on loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from gateway.triton.server import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class GatewayProcess:
    """``chungus serve --external-triton`` in its own process, on a free loopback port."""

    triton_url: str
    registry_path: Path
    workdir: Path
    admin_key: str = "sk-chungus-test-admin-key-0123456789"
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"gateway-{self.port}.log"

    def start(self, timeout_s: float = 60.0, wait_ready: bool = True) -> GatewayProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "CHUNGUS_HOST": "127.0.0.1",
            "CHUNGUS_PORT": str(self.port),
            "CHUNGUS_REGISTRY_PATH": str(self.registry_path),
            "CHUNGUS_ADMIN_KEY": self.admin_key,
            "CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / 'keys.db'}",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--external-triton", self.triton_url],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        path = "/health/models" if wait_ready else "/health/live"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gateway not ready in {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
