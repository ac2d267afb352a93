"""Run NVIDIA Triton on CPU from the ``nvidia-pytriton`` wheel: lay out backends, set env, start, stop.

The wheel ships ``tritonserver`` (2.51), the Python backend and one stub per Python version.
The stub must run with this venv's Python: its ``bin`` first on PATH (the stub finds
site-packages through it) and the owning interpreter's ``libpython`` first on
LD_LIBRARY_PATH (else Debian's older libpython loads and ``ssl`` breaks). Users never set
any of this by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class TritonStartError(RuntimeError):
    """Triton exited or did not become ready; the message carries the reason from its log."""


@dataclass(frozen=True, slots=True)
class TritonInstall:
    """Where the pieces of the wheel's Triton live."""

    binary: Path
    python_backend: Path
    stub: Path
    libs: Path

    @classmethod
    def find(cls) -> TritonInstall:
        """Locate tritonserver and the Python backend inside the installed ``nvidia-pytriton``.

        Raises:
            TritonStartError: the wheel is not installed or lacks a stub for this Python.
        """
        try:
            import pytriton
        except ImportError as exc:
            raise TritonStartError(
                "nvidia-pytriton is not installed; run `make install` (or pip install '.[cpu]')"
            ) from exc
        root = Path(pytriton.__file__).parent / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        install = cls(
            binary=root / "bin" / "tritonserver",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            libs=Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs",
        )
        for path in (install.binary, install.python_backend, install.stub):
            if not path.exists():
                raise TritonStartError(f"missing from nvidia-pytriton: {path}")
        return install

    def backend_dir(self, workdir: Path) -> Path:
        """Lay out ``<workdir>/backends/python`` with the stub for the running Python."""
        target = workdir / "backends" / "python"
        target.mkdir(parents=True, exist_ok=True)
        for src in (*self.python_backend.glob("*.so"), *self.python_backend.glob("*.py"), self.stub):
            dst = target / src.name
            if not dst.exists() or dst.stat().st_size != src.stat().st_size:
                shutil.copy2(src, dst)
        return target.parent

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment the stub needs: venv bin on PATH, this Python's libpython first."""
        env = dict(os.environ if base is None else base)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        ld = [p for p in (libdir, str(self.libs), env.get("LD_LIBRARY_PATH", "")) if p]
        env["LD_LIBRARY_PATH"] = ":".join(ld)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TritonServer:
    """One tritonserver process on a model repository, on loopback ports.

    Use as a context manager, or call ``start()`` / ``stop()``.
    """

    model_repository: Path
    workdir: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    address: str = "127.0.0.1"
    log_verbose: int = 0
    exit_timeout_s: int = 5
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "triton.log"

    @property
    def grpc_url(self) -> str:
        return f"{self.address}:{self.grpc_port}"

    def command(self, install: TritonInstall) -> list[str]:
        """The tritonserver command line."""
        return [
            str(install.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={install.backend_dir(self.workdir)}",
            f"--http-address={self.address}",
            f"--grpc-address={self.address}",
            f"--metrics-address={self.address}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            "--allow-cpu-metrics=false",
            "--allow-gpu-metrics=false",
            *self.extra_args,
        ]

    def start(self, timeout_s: float = 180.0) -> None:
        """Start Triton and wait until it reports ready.

        Raises:
            TritonStartError: it exited or was not ready in time (message: the log's errors).
        """
        install = TritonInstall.find()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(install)
        log = self.log_path.open("wb")
        # A new session: Ctrl-C on the terminal reaches us, and we stop Triton in order.
        self.process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=install.environment(),
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.address}:{self.http_port}/v2/health/ready"
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {self.process.returncode}:\n{self.log_errors()}"
                )
            with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError), \
                    urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
            time.sleep(0.25)
        raise TritonStartError(f"tritonserver not ready after {timeout_s:.0f}s:\n{self.log_errors()}")

    def log_errors(self, limit: int = 20) -> str:
        """The error lines of Triton's log (E-prefixed lines, failed models), else its tail."""
        if not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        errors = [
            ln for ln in lines if ln.startswith("E") or "UNAVAILABLE" in ln or "Error" in ln
        ]
        return "\n".join((errors or lines)[-limit:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop Triton and its stub processes; no orphans are left."""
        proc = self.process
        if proc is None:
            return
        self.process = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
        # The stubs live in the same process group; make sure nothing outlives us.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
