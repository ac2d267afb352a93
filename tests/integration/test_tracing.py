"""Tracing end to end: a real OTLP/HTTP receiver gets the gateway's span, the client's W3C trace
context is its parent, and a real gRPC server in Triton's protocol receives the span's
``traceparent`` as metadata; with tracing off nothing of OpenTelemetry is loaded or sent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from litestar.testing import TestClient
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from gateway.app import create_app
from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings
from tests.fake_triton import infer_result
from tests.integration.keys_support import ROOT

CLIENT_TRACE = "0af7651916cd43dd8448eb211c12666c"
CLIENT_SPAN = "b7ad6b7169242424"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
CHAT = {"model": "chat-a", "messages": [{"role": "user", "content": "hi"}]}


@dataclass(frozen=True)
class Span:
    """A received span, the same from OTLP protobuf (Python SDK) and OTLP JSON (Triton's C++)."""

    service: str
    name: str
    kind: int
    trace_id: str  # hex
    span_id: str
    parent_id: str  # "" for a root
    status: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    attributes: dict[str, Any]


def _value(v: dict[str, Any]) -> Any:
    if "intValue" in v:
        return int(v["intValue"])
    return next(iter(v.values()), None)


def _from_json(doc: dict[str, Any]) -> list[Span]:
    spans = []
    for rs in doc.get("resourceSpans", []):
        resource = {a["key"]: _value(a["value"]) for a in rs["resource"]["attributes"]}
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                spans.append(Span(resource.get("service.name", ""), sp["name"], sp.get("kind", 0),
                                  sp["traceId"], sp["spanId"], sp.get("parentSpanId", ""),
                                  sp.get("status", {}).get("code", 0),
                                  int(sp["startTimeUnixNano"]),
                                  {a["key"]: _value(a["value"]) for a in sp.get("attributes", [])}))
    return spans


def _from_protobuf(body: bytes) -> list[Span]:
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    spans = []
    for rs in request.resource_spans:
        resource = {a.key: a.value.string_value for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                attrs = {a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                         for a in sp.attributes}
                spans.append(Span(resource.get("service.name", ""), sp.name, sp.kind,
                                  sp.trace_id.hex(), sp.span_id.hex(), sp.parent_span_id.hex(),
                                  sp.status.code, sp.start_time_unix_nano, attrs))
    return spans


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint that keeps the spans it is sent (protobuf or JSON)."""

    def __init__(self) -> None:
        self.received: list[Span] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def spans(self, service: str | None = None) -> list[Span]:
        with self.lock:
            return [s for s in self.received if service is None or s.service == service]


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802  # http.server's naming
        assert self.path == "/v1/traces"
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if "json" in self.headers["Content-Type"]:
            spans, reply, kind = _from_json(json.loads(body)), b"{}", "application/json"
        else:
            spans, kind = _from_protobuf(body), "application/x-protobuf"
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        with self.server.lock:
            self.server.received += spans
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        return None


@dataclass
class FakeTriton(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Triton's gRPC protocol for one decoupled chat model, answering "hi" in one response."""

    metadata: list[dict[str, str]] = field(default_factory=list)

    def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        return service_pb2.RepositoryIndexResponse(
            models=[service_pb2.RepositoryIndexResponse.ModelIndex(name="chat_a", version="1",
                                                                   state="READY")])

    def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        config = mc.ModelConfig(
            name="chat_a",
            input=[mc.ModelInput(name="text_input", data_type=mc.TYPE_STRING, dims=[1]),
                   mc.ModelInput(name="max_tokens", data_type=mc.TYPE_INT32, dims=[1])],
            output=[mc.ModelOutput(name=n, data_type=t, dims=[1]) for n, t in (
                ("text_output", mc.TYPE_STRING), ("num_input_tokens", mc.TYPE_INT32),
                ("num_output_tokens", mc.TYPE_INT32), ("finish_reason", mc.TYPE_STRING))],
            model_transaction_policy=mc.ModelTransactionPolicy(decoupled=True))
        return service_pb2.ModelConfigResponse(config=config)

    def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        self.metadata.append({k: v for k, v in context.invocation_metadata()
                              if isinstance(v, str)})
        next(request_iterator)
        result = infer_result("hi", final=True, input_tokens=3, output_tokens=1,
                              finish_reason="stop")
        yield service_pb2.ModelStreamInferResponse(infer_response=result.get_response())


@pytest.fixture()
def triton() -> Iterator[tuple[FakeTriton, int]]:
    servicer = FakeTriton()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _registry(tmp_path: Path) -> Registry:
    (tmp_path / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    return Registry(models=(ModelEntry(id="chat-a", triton_model="chat_a",
                                       chat_template="t.jinja"),), base_dir=str(tmp_path))


def _app(tmp_path: Path, triton_port: int, otel: str | None) -> Any:
    settings = Settings(auth_enabled=False, access_log=False, otel_endpoint=otel,
                        otel_service_name="gw-test", triton_urls=(f"127.0.0.1:{triton_port}",))
    return create_app(settings, registry=_registry(tmp_path))


def test_span_joins_the_client_trace_and_reaches_triton(
        tmp_path: Path, triton: tuple[FakeTriton, int], receiver: Receiver) -> None:
    servicer, port = triton
    with TestClient(_app(tmp_path, port, receiver.url)) as c:
        r = c.post("/v1/chat/completions", json=CHAT,
                   headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "hi"
    # Closing the app flushed the batch: exactly one span, ours.
    [span] = receiver.spans()
    assert span.service == "gw-test"
    assert span.name == "POST /v1/chat/completions"
    assert span.kind == 2  # server
    assert (span.trace_id, span.parent_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert span.attributes == {
        "http.request.method": "POST", "http.route": "/v1/chat/completions",
        "http.response.status_code": 200, "gen_ai.request.model": "chat-a",
        "gen_ai.request.max_tokens": 256,  # the registry entry's default
        "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 1,
        "chungus.outcome": "stop"}  # no prompt, no output text
    # Triton got the gateway span as parent, in the same trace, with the client's tracestate.
    [metadata] = servicer.metadata
    assert metadata["traceparent"] == f"00-{CLIENT_TRACE}-{span.span_id}-01"
    assert metadata["tracestate"] == "vendor=1"


def test_a_request_without_context_starts_a_trace(
        tmp_path: Path, triton: tuple[FakeTriton, int], receiver: Receiver) -> None:
    servicer, port = triton
    with TestClient(_app(tmp_path, port, receiver.url)) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert c.post("/v1/chat/completions", json={**CHAT, "model": "nope"}).status_code == 404
    spans = sorted(receiver.spans(), key=lambda s: s.start_ns)
    assert len(spans) == 2
    assert spans[0].parent_id == ""
    version, trace_id, parent, flags = servicer.metadata[0]["traceparent"].split("-")
    assert (version, trace_id, parent) == ("00", spans[0].trace_id, spans[0].span_id)
    assert int(flags, 16) & 1 == 1  # sampled (the SDK may add W3C's "random" bit too)
    assert spans[1].attributes["http.response.status_code"] == 404
    assert spans[1].status == 0  # a client error leaves the status unset


TRITON_TRACE_FLAGS = ("--trace-config=mode=opentelemetry",
                      "--trace-config=opentelemetry,resource=service.name=triton",
                      "--trace-config=level=TIMESTAMPS", "--trace-config=rate=0",
                      "--trace-config=count=-1",
                      "--trace-config=opentelemetry,bsp_schedule_delay=100")  # test: send soon


@pytest.mark.e2e
def test_real_triton_joins_the_trace(tmp_path: Path, receiver: Receiver) -> None:
    """Triton on CPU started with the documented flags puts its spans under the gateway's."""
    from gateway.registry import load_registry
    from gateway.triton.server import TritonServer, free_port
    from tests.models.build import build_test_models

    build_test_models(tmp_path)
    server = TritonServer(tmp_path / "model_repository", tmp_path / "triton",
                          http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          extra_args=(*TRITON_TRACE_FLAGS,
                                      f"--trace-config=opentelemetry,url={receiver.url}"))
    server.start(timeout_s=300)
    try:
        settings = Settings(auth_enabled=False, access_log=False, otel_endpoint=receiver.url,
                            triton_urls=(server.grpc_url,))
        app = create_app(settings, registry=load_registry(tmp_path / "registry.toml"))
        with TestClient(app) as c:
            r = c.post("/v1/chat/completions", headers={"traceparent": TRACEPARENT},
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi there"}],
                             "stream": True, "max_tokens": 4})
            assert r.status_code == 200
            # Not traced: no context from the gateway and rate=0
            untraced = Settings(auth_enabled=False, access_log=False, triton_urls=(server.grpc_url,))
        with TestClient(create_app(untraced, registry=load_registry(tmp_path / "registry.toml"))) as c:
            assert c.post("/v1/chat/completions", json={
                "model": "echo", "messages": [{"role": "user", "content": "x"}]}).status_code == 200
        deadline = time.monotonic() + 30
        while len(receiver.spans("triton")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    [gateway_span] = receiver.spans("chungus-gateway")
    assert (gateway_span.trace_id, gateway_span.parent_id) == (CLIENT_TRACE, CLIENT_SPAN)
    triton = {s.name: s for s in receiver.spans("triton")}
    assert {s.trace_id for s in triton.values()} == {CLIENT_TRACE}  # the untraced request: none
    model_span = triton["echo"]
    assert model_span.attributes["triton.model_name"] == "echo"
    assert triton["compute"].parent_id == model_span.span_id
    # Triton's top-level span hangs under the gateway's span, and the model span under it.
    top = next(s for s in triton.values() if s.parent_id == gateway_span.span_id)
    assert model_span.parent_id == top.span_id


def test_tracing_off_sends_no_context(tmp_path: Path, triton: tuple[FakeTriton, int]) -> None:
    servicer, port = triton
    with TestClient(_app(tmp_path, port, None)) as c:
        r = c.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200
    assert "traceparent" not in servicer.metadata[0]


def test_tracing_off_loads_no_opentelemetry() -> None:
    code = ("import sys\n"
            "from gateway.app import create_app\n"
            "from gateway.backends.fake import FakeBackend\n"
            "from gateway.registry import Registry\n"
            "from gateway.settings import Settings\n"
            "create_app(Settings(auth_enabled=False), FakeBackend(), registry=Registry(models=()))\n"
            "print(' '.join(sorted(m for m in sys.modules if 'opentelemetry' in m\n"
            "                          or m.startswith('gateway.tracing'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    loaded = set(out.stdout.split())
    # Litestar itself looks for the opentelemetry package (and its semconv names) when it is
    # installed; the SDK, the exporter, the tracing API and our tracing package stay unloaded.
    heavy = {m for m in loaded if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter",
                                               "opentelemetry.trace", "opentelemetry.context",
                                               "opentelemetry.proto", "gateway.tracing"))}
    assert heavy == set()

