"""Run NVIDIA Triton on CPU from the ``nvidia-pytriton`` wheel: lay out backends, set env, start,
stop, and keep it running (``TritonSupervisor``).

The wheel ships ``tritonserver`` (2.51), the Python backend and one stub per Python version.
The stub must run with this venv's Python: its ``bin`` first on PATH (the stub finds
site-packages through it) and the owning interpreter's ``libpython`` first on
LD_LIBRARY_PATH (else Debian's older libpython loads and ``ssl`` breaks). Users never set
any of this by hand.

Processes: Triton runs in its own process group with its Python-backend stubs (one per model
instance). The stubs notice Triton's death only once it is reaped (until then ``kill(ppid, 0)``
still succeeds on the zombie), so a Triton that dies must be reaped, and its group killed, by
whoever started it. The group is killed while the dead Triton is still an unreaped zombie
(``waitid(WNOWAIT)``): its pid, and so the group id, cannot have been reused yet. Triton gets a
parent-death signal (SIGTERM), so even a SIGKILLed ``chungus`` takes Triton (which stops its
stubs) with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("chungus.triton")


class TritonStartError(RuntimeError):
    """Triton exited or did not become ready; the message carries the reason from its log."""


class TritonStartCancelled(TritonStartError):
    """A stop was requested while Triton was starting (nothing is left running)."""


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


PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when the thread that forked it dies.

    Resolved here, in the parent, so the child only makes one system call between fork and exec.
    None off Linux (there the group is still stopped by ``stop``, but not after a SIGKILL).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would send the signal
            os.kill(os.getpid(), int(sig))

    return set_signal


def describe_exit(status: int) -> str:
    """``Popen.returncode`` in words: ``exit code 1`` or ``killed by SIGKILL``."""
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
        return f"killed by signal {-status}"
    return f"exit code {status}"


@dataclass
class TritonServer:
    """One tritonserver process (and its stubs) on a model repository, on loopback ports.

    Use as a context manager, or call ``start()`` / ``stop()``. One thread owns a started server:
    ``exit_status`` never reaps, only ``stop`` does (after killing the whole process group).
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
    started_at: float = field(default=0.0, init=False)
    _log_offset: int = field(default=0, init=False)

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

    def start(self, timeout_s: float = 180.0, cancel: threading.Event | None = None) -> None:
        """Start Triton and wait until it reports ready.

        Args:
            timeout_s: how long Triton may take to load its models.
            cancel: when set during the wait, Triton is stopped and ``TritonStartCancelled`` raised.

        Raises:
            TritonStartError: it exited or was not ready in time (message: the log's errors).
        """
        install = TritonInstall.find()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(install)
        # Appended, not truncated: a restart keeps the log of the run that died.
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            # A new session: a terminal's Ctrl-C reaches us, and we stop Triton in order.
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=install.environment(),
                cwd=self.workdir, start_new_session=True,
                preexec_fn=_parent_death_signal(signal.SIGTERM),  # noqa: PLW1509 (one prctl call)
            )
        self.started_at = time.monotonic()
        try:
            self._wait_ready(timeout_s, cancel)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float, cancel: threading.Event | None) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.address}:{self.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            status = self.exit_status()
            if status is not None:
                raise TritonStartError(f"tritonserver exited ({describe_exit(status)}):\n{self.log_errors()}")
            if cancel is not None and cancel.is_set():
                raise TritonStartCancelled("stop requested while Triton was starting")
            if self.is_ready(url):
                return
            time.sleep(0.25)
        raise TritonStartError(f"tritonserver not ready after {timeout_s:.0f}s:\n{self.log_errors()}")

    def is_ready(self, url: str | None = None) -> bool:
        """Whether Triton answers its HTTP readiness probe (every model loaded)."""
        url = url or f"http://{self.address}:{self.http_port}/v2/health/ready"
        with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError), \
                urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
            return bool(resp.status == 200)
        return False

    def exit_status(self) -> int | None:
        """Triton's exit status (``Popen.returncode`` style) if it has exited, else None; never reaps.

        Raises:
            TritonStartError: no process was started.
        """
        proc = self.process
        if proc is None:
            raise TritonStartError("tritonserver is not running")
        if proc.returncode is not None:
            return proc.returncode
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped behind our back: its pid may be reused, never signal it
            proc.returncode = -signal.SIGKILL if proc.returncode is None else proc.returncode
            return proc.returncode
        if info is None or info.si_pid == 0:
            return None
        exited = info.si_code == os.CLD_EXITED
        return info.si_status if exited else -info.si_status

    def log_errors(self, limit: int = 20) -> str:
        """The error lines of this run's log (E-prefixed lines, failed models), else its tail."""
        if not self.log_path.exists():
            return "(no log)"
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            lines = fh.read().decode(errors="replace").splitlines()
        errors = [
            ln for ln in lines if (ln.startswith("E") or "UNAVAILABLE" in ln or "Error" in ln)
            and "CudaDriverHelper" not in ln  # every CPU-only start logs it
        ]
        return "\n".join((errors or lines)[-limit:])

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop Triton and its stubs: SIGTERM to the group, SIGKILL after ``timeout_s``, reap.

        Returns:
            Triton's exit status (None when nothing was running).
        """
        proc = self.process
        if proc is None:
            return None
        if proc.returncode is None:  # not reaped: the group id is still ours
            if self.exit_status() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout_s
                while self.exit_status() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
            # The stubs live in the group and outlive Triton until it is reaped: kill them first.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.process = None
        return proc.returncode

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
