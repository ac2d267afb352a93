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


@pytest.mark.slow
def test_two_worker_processes_add_up(tmp_path: Path) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")  # an old run's file: wiped at start
    env = dict(os.environ)
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    prepare_multiprocess_dir(folder)
    env["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if saved is None:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved
    assert list(folder.iterdir()) == []
    port = free_port()
    env.update({"CHUNGUS_AUTH_ENABLED": "false", "CHUNGUS_ACCESS_LOG": "false",
                "FAKE_GATEWAY_DIR": str(tmp_path)})
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory",
                             "tests.integration.fake_gateway:create", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "2", "--log-level", "warning"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        sent = 40
        assert [_post(base + CHAT_ROUTE) for _ in range(sent)] == [200] * sent
        writers = {p.name.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}
        assert len(writers) == 2, writers  # both workers served some of them
        for _ in range(4):  # whichever worker answers the scrape, the sum is the same
            with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
                scrape = samples(r.read().decode())
            assert sample(scrape, "chungus_requests_total", route=CHAT_ROUTE, model="chat-a",
                          status="200") == sent
            assert sample(scrape, "chungus_completion_tokens_total", model="chat-a") == 3 * sent
            assert sample(scrape, "chungus_requests_in_flight", route=CHAT_ROUTE) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


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

