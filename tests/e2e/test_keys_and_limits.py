"""Keys and limits across real gateway processes: two replicas share one Redis budget; a client that
leaves mid-stream gives its concurrency slot back."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.triton.server import TritonServer
from tests.support import ROOT, GatewayProcess

REDIS = "redis://127.0.0.1:6379/0"
ECHO = {"model": "echo", "messages": [{"role": "user", "content": "a b c"}]}


@pytest.fixture(scope="module")
def replicas(triton: TritonServer, stack_dir: Path) -> Iterator[list[GatewayProcess]]:
    shared = stack_dir / f"replicas-{uuid.uuid4().hex[:6]}"
    env = {"CHUNGUS_REDIS_URL": REDIS, "CHUNGUS_REDIS_PREFIX": f"chungus-e2e:{shared.name}:",
           "CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{shared / 'keys.db'}"}
    procs = [GatewayProcess(triton.grpc_url, stack_dir / "registry.toml", shared / f"gw{i}", env=env)
             for i in range(2)]
    for p in procs:
        p.start()
    yield procs
    for p in procs:
        p.stop()


def _key(gw: GatewayProcess, **limits: int) -> str:
    r = httpx.post(gw.base_url + "/admin/keys", json={"name": "e2e", **limits},
                   headers={"Authorization": f"Bearer {gw.admin_key}"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def test_two_replicas_share_one_budget(replicas: list[GatewayProcess]) -> None:
    key = _key(replicas[0], rpm=6)
    codes = []
    for i in range(12):
        gw = replicas[i % 2]
        r = httpx.post(gw.base_url + "/v1/chat/completions", json=ECHO,
                       headers={"Authorization": f"Bearer {key}"})
        codes.append(r.status_code)
    assert codes.count(200) == 6, codes
    assert codes.count(429) == 6
    assert codes[:6] == [200] * 6


def test_disconnect_mid_stream_releases_the_slot(replicas: list[GatewayProcess]) -> None:
    gw = replicas[1]
    key = _key(gw, max_concurrent=1)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "slow-echo", "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": " ".join(["w"] * 200)}]}
    with httpx.stream("POST", gw.base_url + "/v1/chat/completions", json=body,
                      headers=headers) as r:
        assert r.status_code == 200
        lines = r.iter_lines()  # keep a reference: a dropped iterator closes the connection
        next(lines)
        busy = httpx.post(gw.base_url + "/v1/chat/completions", json=ECHO, headers=headers)
        assert busy.status_code == 429
        assert busy.json()["error"]["code"] == "rate_limit_exceeded"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = httpx.post(gw.base_url + "/v1/chat/completions", json=ECHO, headers=headers)
        if r.status_code == 200:
            return
        time.sleep(0.2)
    pytest.fail("the slot was not released after the client left")


def test_cli_creates_a_key_the_gateway_accepts(replicas: list[GatewayProcess]) -> None:
    gw = replicas[0]
    env = {"CHUNGUS_DATABASE_URL": gw.env["CHUNGUS_DATABASE_URL"], "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "keys", "create", "--name", "cli"],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    key = next(line.split('"')[3] for line in out.splitlines() if '"key"' in line)
    r = httpx.get(gw.base_url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    listed = subprocess.run([sys.executable, "-m", "gateway.cli", "keys", "list"],
                            capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    assert key not in listed and key[:15] in listed
