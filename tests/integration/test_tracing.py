"""Tracing end to end: a real OTLP/HTTP receiver gets the gateway's span, the client's W3C trace
context is its parent, and a real gRPC server in Triton's protocol receives the span's
``traceparent`` as metadata; with tracing off nothing of OpenTelemetry is loaded or sent."""

from __future__ import annotations

import subprocess
import sys
import threading
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


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                out += [(resource, span) for ss in rs.scope_spans for span in ss.spans]
        return out


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  # http.server's naming
        assert self.path == "/v1/traces"
        assert self.headers["Content-Type"] == "application/x-protobuf"
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        self.server.requests.append(request)  # type: ignore[attr-defined]
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
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
    spans = receiver.spans()
    assert len(spans) == 1
    resource, span = spans[0]
    assert resource["service.name"] == "gw-test"
    assert span.name == "POST /v1/chat/completions"
    assert span.kind == span.SPAN_KIND_SERVER
    assert span.trace_id.hex() == CLIENT_TRACE
    assert span.parent_span_id.hex() == CLIENT_SPAN
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.request.model"].string_value == "chat-a"
    assert attrs["gen_ai.usage.input_tokens"].int_value == 3
    assert attrs["gen_ai.usage.output_tokens"].int_value == 1
    assert attrs["chungus.outcome"].string_value == "stop"
    assert attrs["http.response.status_code"].int_value == 200
    assert attrs["http.route"].string_value == "/v1/chat/completions"
    assert "hi" not in {v.string_value for v in attrs.values()}  # no prompt or output text
    # Triton got the gateway span as parent, in the same trace, with the client's tracestate.
    [metadata] = servicer.metadata
    assert metadata["traceparent"] == f"00-{CLIENT_TRACE}-{span.span_id.hex()}-01"
    assert metadata["tracestate"] == "vendor=1"


def test_a_request_without_context_starts_a_trace(
        tmp_path: Path, triton: tuple[FakeTriton, int], receiver: Receiver) -> None:
    servicer, port = triton
    with TestClient(_app(tmp_path, port, receiver.url)) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert c.post("/v1/chat/completions", json={**CHAT, "model": "nope"}).status_code == 404
    spans = sorted((s for _, s in receiver.spans()), key=lambda s: s.start_time_unix_nano)
    assert len(spans) == 2
    assert spans[0].parent_span_id == b""
    version, trace_id, parent, flags = servicer.metadata[0]["traceparent"].split("-")
    assert (version, trace_id, parent) == ("00", spans[0].trace_id.hex(), spans[0].span_id.hex())
    assert int(flags, 16) & 1 == 1  # sampled (the SDK may add W3C's "random" bit too)
    failed = {a.key: a.value for a in spans[1].attributes}
    assert failed["http.response.status_code"].int_value == 404
    assert spans[1].status.code == spans[1].status.STATUS_CODE_UNSET  # a client error


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

