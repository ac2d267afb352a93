"""Routing against real Tritons: two CPU servers behind one 'DNS name' (a resolver seam).

Each Triton's own statistics (``GET /v2/models/echo/stats`` on its HTTP port) say which server
served which request, so nothing here trusts the gateway's view of where requests went.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.backends.base import GenerationRequest
from gateway.registry import ModelEntry
from gateway.tokens import Tokenizers
from gateway.triton.backend import TritonBackend
from gateway.triton.routing import Router, affinity_key, rendezvous_order
from gateway.triton.server import TritonServer, free_port
from tests.models.build import build_test_models
from tests.support import GatewayProcess

ECHO = ModelEntry(id="echo", triton_model="echo", default_max_tokens=8, max_tokens_limit=64,
                  context_length=1024)


@pytest.fixture(scope="module")
def echo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("routing")
    build_test_models(out)
    for other in ("slow_echo", "failing", "hanging"):  # fewer stub processes on two cores
        shutil.rmtree(out / "model_repository" / other)
    return out


@pytest.fixture(scope="module")
def tritons(echo_repo: Path) -> Iterator[list[TritonServer]]:
    servers = [TritonServer(echo_repo / "model_repository", echo_repo / f"triton-{i}",
                            http_port=free_port(), grpc_port=free_port(),
                            metrics_port=free_port()) for i in range(2)]
    try:
        for server in servers:
            server.start(timeout_s=300)
        yield servers
    finally:
        for server in servers:
            server.stop()


def served(server: TritonServer) -> int:
    """Requests the echo model has completed on this Triton, by its own count."""
    url = f"http://127.0.0.1:{server.http_port}/v2/models/echo/stats"
    with urllib.request.urlopen(url, timeout=10) as resp:
        stats = json.load(resp)
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])


def served_since(tritons: list[TritonServer], before: list[int], total: int) -> list[int]:
    """Requests each Triton completed since ``before``; waits (10 s at most) until ``total`` are
    counted, since Triton may update its statistics just after the stream's last response."""
    deadline = time.monotonic() + 10
    while True:
        delta = [served(t) - b for t, b in zip(tritons, before, strict=True)]
        if sum(delta) >= total or time.monotonic() > deadline:
            return delta
        time.sleep(0.05)


class FakeDns:
    """The resolver seam: answers with the Tritons' loopback gRPC endpoints, as a headless
    Service answers with its pods' addresses."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    async def __call__(self, host: str, port: int) -> list[str]:
        assert (host, port) == ("triton.test.svc.cluster.local", 8001)
        return list(self.urls)


async def _backend(tritons: list[TritonServer], router: Router) -> tuple[TritonBackend, FakeDns]:
    dns = FakeDns([t.grpc_url for t in tritons])
    backend = TritonBackend(["dns://triton.test.svc.cluster.local:8001"], Tokenizers("."),
                            router=router, resolver=dns, resolve_s=3600, poll_s=0.2)
    await backend.start()
    return backend, dns


async def _chat(backend: TritonBackend, prompt: str) -> str:
    request = GenerationRequest(model=ECHO, prompt=prompt, max_tokens=4)
    out: AsyncIterator[object] = backend.generate(request)
    text = ""
    async for delta in out:
        text += getattr(delta, "text", "")
    return text


def _conversation(n: int, turns: int) -> list[str]:
    """The rendered prompts of one conversation's turns: each extends the one before."""
    prompt = f"<|system|>You are assistant number {n}. " + "Be brief. " * 30
    prompts = []
    for turn in range(turns):
        prompt += f"<|user|>question {turn}<|assistant|>"
        prompts.append(prompt)
        prompt += f"answer {turn}"
    return prompts


async def test_least_outstanding_reaches_both_servers(tritons: list[TritonServer]) -> None:
    backend, _ = await _backend(tritons, Router("least_outstanding"))
    try:
        before = [served(t) for t in tritons]
        for _ in range(6):  # one at a time: ties rotate
            await _chat(backend, "the same prompt every time")
        assert served_since(tritons, before, 6) == [3, 3]
    finally:
        await backend.close()


async def test_affinity_keeps_each_conversation_on_one_server(tritons: list[TritonServer]) -> None:
    backend, _ = await _backend(tritons, Router("affinity", prefix_chars=256))
    names = [t.grpc_url for t in tritons]
    try:
        expected = [0, 0]
        for n in range(6):
            prompts = _conversation(n, turns=3)
            assert len(prompts[0]) > 256  # the key lies inside the first turn
            home = rendezvous_order(affinity_key(prompts[0], 256), names)[0]
            before = [served(t) for t in tritons]
            for prompt in prompts:  # one request at a time: the bound never applies
                await _chat(backend, prompt)
            delta = served_since(tritons, before, len(prompts))
            assert delta == [3 if i == home else 0 for i in range(2)], f"conversation {n}"
            expected[home] += 1
        assert sum(expected) == 6
    finally:
        await backend.close()


async def test_a_server_that_leaves_dns_gets_no_more_requests(tritons: list[TritonServer]) -> None:
    backend, dns = await _backend(tritons, Router("least_outstanding"))
    try:
        assert len(backend.endpoints.all) == 2
        dns.urls = [tritons[0].grpc_url]
        await backend.endpoints.discover()
        assert [ep.url for ep in backend.endpoints.all] == [tritons[0].grpc_url]
        assert backend.endpoints.retiring == []  # idle: its client is closed already
        before = [served(t) for t in tritons]
        for _ in range(4):
            await _chat(backend, "after the scale-down")
        assert served_since(tritons, before, 4) == [4, 0]
        dns.urls = [t.grpc_url for t in tritons]  # scaled up again: the new pod takes traffic
        await backend.endpoints.discover()
        before = [served(t) for t in tritons]
        for _ in range(4):
            await _chat(backend, "after the scale-up")
        assert served_since(tritons, before, 4) == [2, 2]
    finally:
        await backend.close()


def test_chungus_serve_resolves_a_dns_entry(tritons: list[TritonServer], echo_repo: Path) -> None:
    """The CLI path: ``--external-triton dns://127.0.0.1:PORT`` resolves (to one address here)."""
    import openai

    before = served(tritons[1])
    proc = GatewayProcess(f"dns://127.0.0.1:{tritons[1].grpc_port}", echo_repo / "registry.toml",
                          echo_repo / "gateway", env={"CHUNGUS_TRITON_DNS_INTERVAL_S": "1"})
    proc.start(wait_ready=False)
    try:
        client = openai.OpenAI(base_url=proc.base_url + "/v1", api_key=proc.admin_key,
                               max_retries=2, timeout=60)
        reply = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello"}], max_tokens=4)
        assert reply.choices[0].message.content
        assert served_since(tritons[1:], [before], 1) == [1]
    finally:
        proc.stop()
