"""Helpers for the security tests: app clients, keys, a private redis-server, gateway processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from gateway.app import create_app
from gateway.backends.fake import FakeBackend
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.triton.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "sk-chungus-admin-key-for-tests-000000"
CHAT = {"model": "chat-a", "messages": [{"role": "user", "content": "hi there"}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(client: Any, **fields: object) -> dict[str, Any]:
    """Create a key through the admin API; returns the creation response (with the key)."""
    r = client.post("/admin/keys", json=fields, headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    return dict(r.json())


def security_client(registry: Registry, database_url: str, *, backend: FakeBackend | None = None,
                    **settings: Any) -> TestClient:
    """The app with keys on (bootstrap admin ``ADMIN``) over the fake backend."""
    values: dict[str, Any] = {"admin_key": ADMIN, "database_url": database_url,
                              "access_log": False, "key_cache_ttl_s": 30.0, **settings}
    backend = backend or FakeBackend(ready={"chat_a", "chat_b"})
    return TestClient(create_app(Settings(**values), backend, registry=registry))


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"not up in {timeout_s}s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class PrivateRedis:
    """A redis-server of our own (no persistence) on a free loopback port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


@dataclass
class GatewayServer:
    """The app over the fake backend (``tests.integration.fake_gateway``) in its own uvicorn
    process, on a free loopback port."""

    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"gateway-{self.port}.log"
        env = {**os.environ, "CHUNGUS_ADMIN_KEY": ADMIN, "CHUNGUS_ACCESS_LOG": "false",
               "FAKE_GATEWAY_DIR": str(self.workdir), **self.env}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory",
                 "tests.integration.fake_gateway:create", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _wait_http(self.base_url + "/health/live", self.process, log, 60)
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None
