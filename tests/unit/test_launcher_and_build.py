"""The Triton launcher's environment and command line, the CPU build step, the registry file."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from build_engines.cpu import build_chat, fetch_smollm2, read_gguf, triton_name
from build_engines.progress import Progress
from gateway.registry import ModelEntry, load_registry, upsert_entry
from gateway.settings import Settings
from gateway.triton.server import TritonInstall, TritonServer, TritonStartError, free_port
from gateway.triton.supervisor import TritonSupervisor


def test_environment_puts_this_pythons_libpython_and_venv_bin_first() -> None:
    install = TritonInstall.find()
    env = install.environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/x"})
    ld = env["LD_LIBRARY_PATH"].split(":")
    assert ld[0] == sysconfig.get_config_var("LIBDIR")
    assert ld[1] == str(install.libs) and ld[-1] == "/opt/x"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["HF_HUB_OFFLINE"] == "1"


def test_backend_dir_holds_the_stub_for_this_python(tmp_path: Path) -> None:
    install = TritonInstall.find()
    backends = install.backend_dir(tmp_path)
    files = {p.name for p in (backends / "python").iterdir()}
    assert {"libtriton_python.so", "triton_python_backend_stub",
            "triton_python_backend_utils.py"} <= files


def test_command_line_binds_loopback_and_the_ports(tmp_path: Path) -> None:
    server = TritonServer(tmp_path / "repo", tmp_path / "w", http_port=1, grpc_port=2, metrics_port=3)
    cmd = server.command(TritonInstall.find())
    assert f"--model-repository={tmp_path / 'repo'}" in cmd
    assert {"--http-port=1", "--grpc-port=2", "--metrics-port=3", "--grpc-address=127.0.0.1"} <= set(cmd)


def test_failed_start_reports_the_reason_and_leaves_no_process(tmp_path: Path) -> None:
    repo = tmp_path / "repo" / "broken"
    repo.mkdir(parents=True)
    (repo / "config.pbtxt").write_text('name: "broken"\nbackend: "python"\nthis is not pbtxt')
    server = TritonServer(tmp_path / "repo", tmp_path / "w", http_port=free_port(),
                          grpc_port=free_port(), metrics_port=free_port())
    with pytest.raises(TritonStartError) as info:
        server.start(timeout_s=60)
    assert "broken" in str(info.value)
    assert server.process is None
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "repo")], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def _triton_command(tmp_path: Path) -> subprocess.Popen[str]:
    (tmp_path / "repo").mkdir(exist_ok=True)
    # Its own session: a signal meant for it (or its group) can never reach pytest.
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "triton", "--model-repository",
                             str(tmp_path / "repo"), "--workdir", str(tmp_path / "w"),
                             "--triton-http-port", str(free_port()), "--triton-grpc-port",
                             str(free_port()), "--triton-metrics-port", str(free_port())],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline() if ready else ""


def _left(tmp_path: Path) -> str:
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "repo")], capture_output=True, text=True)
    return out.stdout.strip()


def test_triton_command_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    proc = _triton_command(tmp_path)
    try:
        assert "starting Triton" in _read_line(proc, 60)
        assert "Triton ready" in _read_line(proc, 120)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert _left(tmp_path) == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_triton_loads_stops_it_too(tmp_path: Path, sig: signal.Signals) -> None:
    # The flake: handlers were installed after "Triton ready", so a SIGINT sent as soon as that
    # line was read could find Python's default handler: KeyboardInterrupt in the command (its
    # traceback in pytest's output), exit -2 and an orphaned Triton. Now they come first.
    proc = _triton_command(tmp_path)
    try:
        assert "starting Triton" in _read_line(proc, 60)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        assert _left(tmp_path) == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class _FakeTriton:
    """Stands in for TritonServer: each run exits with the next status; some starts fail."""

    statuses: list[int]
    failing_starts: int = 0
    model_repository: Path = Path("repo")
    log_path: Path = Path("triton.log")
    grpc_url: str = "127.0.0.1:1"
    process: object | None = None
    started_at: float = 0.0
    starts: int = 0
    stops: int = 0

    def start(self, timeout_s: float = 0, cancel: threading.Event | None = None) -> None:
        self.starts += 1
        if self.failing_starts:
            self.failing_starts -= 1
            raise TritonStartError("model exploded")
        self.process, self.started_at = object(), time.monotonic()

    def exit_status(self) -> int | None:
        return self.statuses[0] if self.statuses and self.process is not None else None

    def stop(self, timeout_s: float = 0) -> int | None:
        self.stops += 1
        self.process = None
        return self.statuses.pop(0) if self.statuses else None

    def log_errors(self) -> str:
        return "E model exploded"


def test_supervisor_restarts_with_doubling_backoff_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    fake = _FakeTriton(statuses=[-signal.SIGKILL, 1], failing_starts=0)
    sup = TritonSupervisor(fake, first_backoff_s=0.01, max_backoff_s=0.03)  # type: ignore[arg-type]  # a duck-typed double
    sup.start()
    assert _until(lambda: sup.restarts == 2 and fake.exit_status() is None)
    fake.failing_starts = 2
    fake.statuses.append(-signal.SIGSEGV)
    assert _until(lambda: sup.restarts == 3)
    sup.stop(5)
    assert sup.exits == ["killed by SIGKILL", "exit code 1", "killed by SIGSEGV"]
    # 0.01, then doubled after each restart and each failed start, capped at 0.03
    assert sup.waits == [0.01, 0.02, 0.03, 0.03, 0.03]
    assert fake.starts == 6 and fake.process is None
    assert "tritonserver exited unexpectedly (killed by SIGKILL)" in caplog.text
    assert "E model exploded" in caplog.text and "restart failed" in caplog.text


def test_supervisor_stop_during_a_restart_starts_nothing() -> None:
    fake = _FakeTriton(statuses=[1])
    sup = TritonSupervisor(fake, first_backoff_s=30)  # type: ignore[arg-type]  # a duck-typed double
    sup.start()
    assert _until(lambda: sup.waits == [30])
    sup.stop(5)
    assert fake.starts == 1 and sup.restarts == 0 and fake.process is None


def _until(predicate: Callable[[], bool], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_stop_kills_the_group_before_the_reap_and_never_after(tmp_path: Path) -> None:
    # A "Triton" whose child outlives it in its process group, as the stubs do.
    server = TritonServer(tmp_path, tmp_path)
    server.process = subprocess.Popen(["sh", "-c", "sleep 60 & exit 3"], start_new_session=True)
    pgid = server.process.pid
    assert _until(lambda: server.exit_status() is not None)
    assert server.exit_status() == 3
    assert server.process.returncode is None  # seen, not reaped: the group id is still ours
    assert subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True).returncode == 0
    assert server.stop() == 3
    assert server.process is None
    assert _until(lambda: subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True).returncode == 1)


def test_cpu_build_writes_a_valid_config_and_registry_entry(tmp_path: Path) -> None:
    entry = build_chat(tmp_path, model_id="tiny/chat-1", instances=3, n_threads=2,
                       progress=Progress(quiet=True))
    name = triton_name("tiny/chat-1")
    assert name == "tiny_chat_1"
    config = text_format.Parse((tmp_path / "model_repository" / name / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    assert config.name == name and config.backend == "python"
    assert config.model_transaction_policy.decoupled
    assert config.instance_group[0].count == 3
    assert config.parameters["n_threads"].string_value == "2"
    inputs = {i.name: i for i in config.input}
    assert not inputs["text_input"].optional and not inputs["max_tokens"].optional
    assert inputs["stop_words"].optional and list(inputs["stop_words"].dims) == [-1]
    assert {o.name for o in config.output} == {"text_output", "num_input_tokens",
                                               "num_output_tokens", "finish_reason",
                                               "output_log_probs", "output_token_bytes",
                                               "top_log_probs", "top_token_bytes"}
    assert inputs["guided_decoding_guide_type"].optional and inputs["return_log_probs"].optional
    assert inputs["top_logprobs"].data_type == model_config_pb2.TYPE_INT32
    assert (tmp_path / "model_repository" / name / "model.gguf").resolve() == fetch_smollm2()
    registry = load_registry(tmp_path / "registry.toml")
    assert registry.get("tiny/chat-1") == entry
    assert "<|im_start|>" in (tmp_path / "models/tiny/chat-1/chat_template.jinja").read_text()


def test_gguf_metadata() -> None:
    info = read_gguf(fetch_smollm2())
    assert (info.bos_token, info.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert info.context_length == 8192 and "add_generation_prompt" in info.chat_template


def test_registry_upsert_replaces_by_id(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    upsert_entry(path, ModelEntry(id="a", triton_model="a"))
    upsert_entry(path, ModelEntry(id="b", triton_model="b", bos_token='"quoted"\n'))
    upsert_entry(path, ModelEntry(id="a", triton_model="a2"))
    reg = load_registry(path)
    assert [m.triton_model for m in reg.models] == ["b", "a2"]
    assert reg.get("b").bos_token == '"quoted"\n'


def test_settings_from_env() -> None:
    s = Settings.from_env({"CHUNGUS_PORT": "9000", "CHUNGUS_TRITON_URLS": "a:1, b:2",
                           "CHUNGUS_AUTH_ENABLED": "false", "REDIS_URL": "redis://x"})
    assert (s.port, s.triton_urls, s.auth_enabled, s.redis_url) == (9000, ("a:1", "b:2"), False,
                                                                     "redis://x")


def test_uvicorn_keeps_idle_connections_longer_than_clients_and_drains_for_the_deadline() -> None:
    from gateway.cli import uvicorn_config

    config = uvicorn_config(object(), Settings.from_env({"CHUNGUS_DRAIN_TIMEOUT_S": "42"}))
    # Clients' pools (httpx, OpenAI SDKs) drop idle connections after 5 s: the server must wait
    # longer, or a request sent just as the server closes the connection is reset (seen in soak).
    assert config.timeout_keep_alive == 75 > 5
    assert config.timeout_graceful_shutdown == 42
    assert Settings().drain_timeout_s == Settings().triton_timeout_s == 600


def test_a_triton_reaped_elsewhere_is_never_signalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = TritonServer(tmp_path, tmp_path)
    server.process = subprocess.Popen(["true"], start_new_session=True)
    os.waitpid(server.process.pid, 0)  # someone else reaped it: the pid is free for reuse
    sent: list[int] = []
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: sent.append(pgid))
    assert server.exit_status() is not None
    server.stop()
    assert sent == [] and server.process is None


def test_uvicorn_caps_connections_from_the_settings() -> None:
    from gateway.cli import uvicorn_config

    config = uvicorn_config(object(), Settings.from_env({"CHUNGUS_MAX_CONNECTIONS": "77"}))
    assert config.limit_concurrency == 77
    assert uvicorn_config(object(), Settings()).limit_concurrency == 2048
