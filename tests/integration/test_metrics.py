"""GET /metrics over HTTP: the values each request leaves, refusals and auth failures, a port of
its own, metrics off, and two uvicorn worker processes whose counts add up in one scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import build_app, create_app
from gateway.backends.fake import FakeBackend
from gateway.errors import ServiceUnavailableError
from gateway.metrics.exposition import prepare_multiprocess_dir
from gateway.registry import Registry
from gateway.services import build_services
from gateway.settings import Settings
from gateway.triton.server import free_port
from tests.integration.keys_support import CHAT, ROOT, auth, new_key, security_client

CHAT_ROUTE = "/v1/chat/completions"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return scrape.get((name, frozenset(labels.items())))


@pytest.fixture()
def client(chat_registry: Registry) -> Iterator[TestClient]:
    backend = FakeBackend(ready={"chat_a", "chat_b"}, pieces=["a", "b", "c", "d"])
    app = create_app(Settings(auth_enabled=False, access_log=False), backend,
                     registry=chat_registry)
    with TestClient(app) as c:
        yield c


def test_requests_tokens_and_latencies_by_route_model_and_status(client: TestClient) -> None:
    assert client.post(CHAT_ROUTE, json=CHAT).status_code == 200
    assert client.post(CHAT_ROUTE, json={**CHAT, "stream": True}).status_code == 200
    assert client.post(CHAT_ROUTE, json={**CHAT, "model": "chat-b"}).status_code == 200
    assert client.post(CHAT_ROUTE, json={**CHAT, "model": "nope"}).status_code == 404
    assert client.get("/v1/models/chat-a").status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    scrape = samples(r.text)
    assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                  status="200") == 2
    assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-b",
                  status="200") == 1
    assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="", status="404") == 1
    # The route template, never the raw path
    assert sample(scrape, "chungus_requests_total", route="/v1/models/{model_id}", model="",
                  status="200") == 1
    assert sample(scrape, "chungus_request_duration_seconds_count", route=CHAT_ROUTE,
                  model="chat-a") == 2
    assert sample(scrape, "chungus_time_to_first_token_seconds_count", model="chat-a") == 2
    assert sample(scrape, "chungus_inter_token_latency_seconds_count", model="chat-a") == 6
    assert sample(scrape, "chungus_completion_tokens_total", model="chat-a") == 8
    assert sample(scrape, "chungus_prompt_tokens_total", model="chat-a") == 4  # "hi there" x2
    assert sample(scrape, "chungus_requests_in_flight", route=CHAT_ROUTE) == 0
    assert sample(scrape, "chungus_requests_in_flight", route="/metrics") == 1  # this scrape
    assert sample(scrape, "chungus_streams_in_flight", model="chat-a") == 0


def test_backend_errors_and_live_figures(chat_registry: Registry) -> None:
    backend = FakeBackend(ready={"chat_a"}, pieces=["a", "b"])
    services = build_services(Settings(auth_enabled=False, access_log=False), backend=backend,
                              registry=chat_registry)
    with TestClient(build_app(services)) as c:
        for _ in range(3):
            assert c.post(CHAT_ROUTE, json={**CHAT, "stream": True}).status_code == 200
        backend.fail_before = ServiceUnavailableError("down")
        assert c.post(CHAT_ROUTE, json=CHAT).status_code == 503
        assert c.get("/health/live").status_code == 200  # probes are not API traffic
        scrape = samples(c.get("/metrics").text)
        live = services.metrics.live()
    assert sample(scrape, "chungus_backend_errors_total", model="chat-a",
                  kind="service_unavailable") == 1
    assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                  status="503") == 1
    assert live.requests_per_s == 4 / 60
    assert live.errors_per_s == 1 / 60
    assert live.ttft_p50_ms is not None and 0 < live.ttft_p50_ms < 1000
    assert live.itl_p50_ms is not None
    assert (live.requests_in_flight, live.streams_in_flight, live.endpoints) == (0, 0, [])


def test_refusals_by_reason_and_auth_failures(chat_registry: Registry, sqlite_url: str) -> None:
    with security_client(chat_registry, sqlite_url) as c:
        key = auth(new_key(c, rpm=1)["key"])
        assert c.post(CHAT_ROUTE, json=CHAT, headers=key).status_code == 200
        assert c.post(CHAT_ROUTE, json=CHAT, headers=key).status_code == 429
        assert c.post(CHAT_ROUTE, json=CHAT, headers=key).status_code == 429
        assert c.post(CHAT_ROUTE, json=CHAT, headers=auth("sk-wrong")).status_code == 401
        assert c.post(CHAT_ROUTE, json=CHAT).status_code == 401
        assert c.get("/admin/keys", headers=key).status_code == 403
        r = c.get("/metrics")  # no key needed
        assert r.status_code == 200
        scrape = samples(r.text)
    assert sample(scrape, "chungus_rate_limit_refusals_total", reason="requests") == 2
    assert sample(scrape, "chungus_auth_failures_total", status="401", code="invalid_api_key") == 2
    assert sample(scrape, "chungus_auth_failures_total", status="403", code="admin_required") == 1
    assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="",
                  status="429") == 2


def test_metrics_off_means_no_route_and_no_recording(chat_registry: Registry) -> None:
    app = create_app(Settings(auth_enabled=False, access_log=False, metrics_enabled=False),
                     FakeBackend(ready={"chat_a"}), registry=chat_registry)
    with TestClient(app) as c:
        assert c.post(CHAT_ROUTE, json=CHAT).status_code == 200
        assert c.get("/metrics").status_code == 404


def test_metrics_on_a_port_of_their_own(chat_registry: Registry) -> None:
    port = free_port()
    app = create_app(Settings(auth_enabled=False, access_log=False, metrics_port=port),
                     FakeBackend(ready={"chat_a"}), registry=chat_registry)
    with TestClient(app) as c:
        assert c.post(CHAT_ROUTE, json=CHAT).status_code == 200
        assert c.get("/metrics").status_code == 404  # not on the main port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            scrape = samples(r.read().decode())
        assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                      status="200") == 1
    with pytest.raises(OSError):  # closed with the app
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def _post(url: str) -> int:
    req = urllib.request.Request(url, data=b'{"model": "chat-a", "messages": '
                                 b'[{"role": "user", "content": "hi"}]}',
                                 headers={"Content-Type": "application/json", "Connection": "close"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return int(r.status)


@pytest.fixture()
def multiprocess_env(tmp_path: Path) -> dict[str, str]:
    """The environment of gateway processes sharing one fresh multiprocess folder (a stale file
    of an earlier run in it is wiped, as a launcher must)."""
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    prepare_multiprocess_dir(folder)
    env = {**os.environ, "CHUNGUS_AUTH_ENABLED": "false", "CHUNGUS_ACCESS_LOG": "false",
           "FAKE_GATEWAY_DIR": str(tmp_path)}
    if saved is None:  # this test process keeps its own mode
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved
    assert list(folder.iterdir()) == []
    return env


def _uvicorn(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory",
                                 "tests.integration.fake_gateway:create", "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", str(workers),
                                 "--log-level", "warning"],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    _wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def _scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        return samples(r.read().decode())


@pytest.mark.slow
def test_two_worker_processes_add_up(tmp_path: Path, multiprocess_env: dict[str, str]) -> None:
    port = free_port()
    proc = _uvicorn(multiprocess_env, port, 2, tmp_path / "uvicorn.log")
    base = f"http://127.0.0.1:{port}"
    try:
        sent = 40
        assert [_post(base + CHAT_ROUTE) for _ in range(sent)] == [200] * sent
        for _ in range(4):  # whichever worker answers the scrape, the sum is the same
            scrape = _scrape(base)
            assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                          status="200") == sent
            assert sample(scrape, "chungus_completion_tokens_total", model="chat-a") == 3 * sent
            assert sample(scrape, "chungus_requests_in_flight", route=CHAT_ROUTE) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_each_process_scrape_sums_all(tmp_path: Path, multiprocess_env: dict[str, str]) -> None:
    """Two gateway processes on their own ports, so each surely serves its share."""
    ports = (free_port(), free_port())
    procs = [_uvicorn(multiprocess_env, p, 1, tmp_path / f"uvicorn-{p}.log") for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        assert [_post(bases[0] + CHAT_ROUTE) for _ in range(15)] == [200] * 15
        assert [_post(bases[1] + CHAT_ROUTE) for _ in range(25)] == [200] * 25
        writers = {p.stem.rsplit("_", 1)[1] for p in (tmp_path / "prom").glob("counter_*.db")}
        assert writers == {str(p.pid) for p in procs}
        for base in bases:
            scrape = _scrape(base)
            assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                          status="200") == 40
            assert sample(scrape, "chungus_request_duration_seconds_count", route=CHAT_ROUTE,
                          model="chat-a") == 40
        procs[0].terminate()  # a stopped process's counts stay; its live gauges go
        procs[0].wait(timeout=30)
        scrape = _scrape(bases[1])
        assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                      status="200") == 40
        assert sample(scrape, "chungus_requests_in_flight", route="/metrics") == 1  # this scrape
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "uvicorn exited"
        try:
            with urllib.request.urlopen(base + "/health/live", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("uvicorn did not come up")



@pytest.mark.e2e
def test_real_triton_latencies_and_endpoint_gauges(tmp_path: Path) -> None:
    """``chungus serve`` over Triton on CPU with the echo test models (the slow one sends a word
    every 50 ms), scraped in the middle of a stream and after it."""
    import httpx

    from gateway.triton.server import TritonServer
    from tests.models.build import build_test_models
    from tests.support import GatewayProcess

    build_test_models(tmp_path)
    server = TritonServer(tmp_path / "model_repository", tmp_path / "triton", http_port=free_port(),
                          grpc_port=free_port(), metrics_port=free_port())
    server.start(timeout_s=300)
    gateway = GatewayProcess(server.grpc_url, tmp_path / "registry.toml", tmp_path / "gw")
    try:
        gateway.start()
        key = {"Authorization": f"Bearer {gateway.admin_key}"}
        slow = {"model": "slow-echo", "stream": True, "max_tokens": 5,
                "messages": [{"role": "user", "content": "one two three four five six"}]}
        with httpx.Client(base_url=gateway.base_url, timeout=60) as c:
            with c.stream("POST", CHAT_ROUTE, json=slow, headers=key) as r:
                lines = r.iter_lines()
                assert next(lines).startswith("data: ")
                during = samples(c.get("/metrics").text)
                assert sum(1 for line in lines if line.startswith("data: ")) >= 5
            failing = {**slow, "model": "failing", "stream": False}
            assert c.post(CHAT_ROUTE, json=failing, headers=key).status_code == 502
            assert c.post(CHAT_ROUTE, json=failing, headers={"Authorization": "Bearer x"}
                          ).status_code == 401
            after = samples(c.get("/metrics").text)
    finally:
        gateway.stop()
        server.stop()
    url = server.grpc_url
    assert sample(during, "chungus_triton_endpoint_outstanding", endpoint=url) == 1
    assert sample(during, "chungus_streams_in_flight", model="slow-echo") == 1
    assert sample(during, "chungus_requests_in_flight", route=CHAT_ROUTE) == 1
    assert sample(after, "chungus_triton_endpoint_outstanding", endpoint=url) == 0
    assert sample(after, "chungus_triton_endpoint_healthy", endpoint=url) == 1
    itl = "chungus_inter_token_latency_seconds"
    assert sample(after, f"{itl}_count", model="slow-echo") == 4  # 5 words
    assert sample(after, f"{itl}_bucket", model="slow-echo", le="0.025") == 0  # >= 50 ms each
    assert sample(after, f"{itl}_bucket", model="slow-echo", le="1.0") == 4
    ttft = "chungus_time_to_first_token_seconds"
    assert sample(after, f"{ttft}_bucket", model="slow-echo", le="0.04") == 0
    assert sample(after, f"{ttft}_count", model="slow-echo") == 1
    assert sample(after, "chungus_completion_tokens_total", model="slow-echo") == 5
    assert sample(after, "chungus_backend_errors_total", model="failing", kind="bad_gateway") == 1
    assert sample(after, "chungus_requests_total", route=CHAT_ROUTE, model="failing",
                  status="502") == 1
    assert sample(after, "chungus_auth_failures_total", status="401", code="invalid_api_key") == 1
