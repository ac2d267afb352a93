"""``chungus serve`` and ``chungus triton`` supervise Triton: a killed Triton is reaped, its stubs
killed and a new one started (the gateway serves again without a restart); any stop signal, or a
SIGKILL of ``chungus`` itself, leaves no process and no port behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.triton.server import free_port
from tests.e2e.serve import ADMIN_KEY, ServeStack, build_echo_stack, pids_matching, wait_for
from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STUBS = 6  # echo 2 + slow_echo 2 + failing 1 + hanging 1 instances


@pytest.fixture(scope="module")
def echo_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_echo_stack(tmp_path_factory.mktemp("echo-stack"))


@pytest.fixture
def serve(echo_stack: Path, tmp_path: Path) -> Iterator[ServeStack]:
    stack = ServeStack(echo_stack, tmp_path / "serve", env={"CHUNGUS_DRAIN_TIMEOUT_S": "30"}).start()
    yield stack
    stack.kill()


def _echo(stack: ServeStack, text: str = "one two three") -> str:
    client = openai.OpenAI(base_url=stack.base_url + "/v1", api_key=ADMIN_KEY, max_retries=0, timeout=30)
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def _echo_ok(stack: ServeStack) -> bool:
    try:
        return _echo(stack) == "one two three"
    except openai.APIError:
        return False


def _gone(pid: int) -> bool:
    """Not running and not a zombie: reaped."""
    return not Path(f"/proc/{pid}").exists()


def _port_free(port: int) -> bool:
    """Nobody listens there (SO_REUSEADDR, as servers bind: TIME_WAIT left by clients is fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_killed_triton_is_reaped_its_stubs_killed_and_the_gateway_serves_again(serve: ServeStack) -> None:
    assert _echo(serve) == "one two three"
    gateway_pid = serve.process.pid if serve.process else 0
    old = serve.triton_pid()
    assert old is not None
    stubs = [p for p in serve.leftovers() if p != old]
    assert len(stubs) == STUBS

    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    # Reaped (no zombie) and the whole group killed: without supervision the stubs lived on.
    assert wait_for(lambda: _gone(old) and all(_gone(p) for p in stubs), 30) is not None
    recovered = wait_for(lambda: _echo_ok(serve), 180, 0.25)
    assert recovered is not None, serve.log()[-3000:]
    new = serve.triton_pid()
    assert new is not None and new != old
    assert serve.process is not None and serve.process.pid == gateway_pid
    assert serve.process.poll() is None
    assert len(serve.leftovers()) == STUBS + 1  # one Triton, its stubs, nothing of the old one
    log = serve.log()
    assert "tritonserver exited unexpectedly (killed by SIGKILL)" in log
    # The supervisor logs the restart once its own readiness check passes, which may come a
    # moment after the gateway (polling every second) already served again.
    assert wait_for(lambda: "tritonserver restarted" in serve.log(), 30, 0.25) is not None, log[-3000:]
    print(f"\nrecovery: kill -9 of Triton -> first 200 from the gateway in "
          f"{time.monotonic() - killed:.1f}s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_every_stop_signal_stops_gateway_triton_and_stubs(
        echo_stack: Path, tmp_path: Path, sig: signal.Signals) -> None:
    stack = ServeStack(echo_stack, tmp_path / "serve", env={"CHUNGUS_DRAIN_TIMEOUT_S": "30"}).start()
    try:
        assert len(stack.leftovers()) == STUBS + 1
        sent = time.monotonic()
        stack.signal(sig)
        assert stack.wait(60) == 0
        took = time.monotonic() - sent
        assert stack.leftovers() == []
        assert all(_port_free(p) for p in (stack.port, *stack.triton_ports))
        assert took < 45, took
        print(f"\n{sig.name}: everything stopped in {took:.1f}s")
    finally:
        stack.kill()


def test_sigkill_of_serve_takes_triton_and_its_stubs_down(serve: ServeStack) -> None:
    assert serve.process is not None and len(serve.leftovers()) == STUBS + 1
    # The hard case: a Triton restarted from the supervisor's thread (the parent-death signal
    # follows the thread that forked; that thread must live as long as its Triton).
    first = serve.triton_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: _echo_ok(serve), 180, 0.25) is not None
    assert serve.triton_pid() not in (None, first)
    serve.process.kill()  # no handler runs: Triton's parent-death signal must do it
    serve.process.wait()
    took = wait_for(lambda: serve.leftovers() == [], 60)
    assert took is not None, serve.leftovers()
    print(f"\nSIGKILL of chungus serve: Triton and stubs gone {took:.1f}s later")


def test_triton_command_restarts_a_killed_triton_and_stops_on_sigterm(echo_stack: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "triton"
    http = free_port()
    log = tmp_path / "triton-cmd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "triton", "--model-repository",
             str(echo_stack / "model_repository"), "--workdir", str(workdir),
             "--triton-http-port", str(http), "--triton-grpc-port", str(free_port()),
             "--triton-metrics-port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    try:
        assert wait_for(lambda: "Triton ready" in log.read_text(), 240, 0.25) is not None, log.read_text()
        first = pids_matching(f"--backend-directory={workdir}")
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)
        restarted = wait_for(lambda: "tritonserver restarted" in log.read_text(), 180, 0.25)
        assert restarted is not None, log.read_text()[-3000:]
        second = pids_matching(f"--backend-directory={workdir}")
        assert len(second) == 1 and second != first
        assert len(pids_matching(str(workdir / "backends"))) == STUBS + 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert pids_matching(str(workdir / "backends")) == []
        assert _port_free(http)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids_matching(str(workdir / "backends")):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("after", ["starting Triton", "CHUNGUS gateway on"])
def test_a_signal_while_serve_starts_stops_everything(echo_stack: Path, tmp_path: Path, after: str) -> None:
    # While Triton loads (the start is cancelled) or just before uvicorn takes the handlers over
    # (the signal is remembered): either way exit 0 and nothing left.
    stack = ServeStack(echo_stack, tmp_path / "serve")
    stack.launch()
    try:
        assert stack.process is not None
        assert wait_for(lambda: after in stack.log(), 120, 0.01) is not None, stack.log()
        stack.signal(signal.SIGTERM)
        assert stack.wait(60) == 0, stack.log()[-2000:]
        assert wait_for(lambda: stack.leftovers() == [], 10) is not None
    finally:
        stack.kill()
