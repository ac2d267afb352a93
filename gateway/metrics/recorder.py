"""The ``Metrics`` object: every ``chungus_*`` family, and the live window for the console.

One ``Metrics`` is built per app by ``gateway.services.build_services``, with its own
``CollectorRegistry``, and handed to the few places that record: the request middleware
(route, status, duration, requests in flight), the error handlers (refusals by reason, auth
failures), ``MeteredBackend`` (tokens, time to first token, inter-token latency, streams,
backend errors, embedding batches), the image service (fetch and decode times) and a poll of
the model server endpoints (outstanding requests, health).

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (see ``gateway.metrics.exposition``)
makes every family write to per-process files that a scrape of any worker sums.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.metrics.live import EndpointHealth, LiveStats, LiveWindow

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from gateway.metrics.middleware import RequestRecord

# Seconds. Wide enough for a 2-core CPU (seconds per token) and an H100 (milliseconds per token).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
                   60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.15,
               0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
IMAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

EndpointSource = Callable[[], list[EndpointHealth]]


class Metrics:
    """The gateway's Prometheus families and live window; see the module docstring.


    Args:
        host, port: serve the Prometheus text on this port of its own from ``start`` (None:
            the app serves ``GET /metrics`` on its main port).
        poll_s: how often the endpoint gauges are refreshed.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 poll_s: float = 1.0) -> None:
        self.host, self.port, self.poll_s = host, port, poll_s
        self._poller: asyncio.Task[None] | None = None
        self._server: WSGIServer | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        # Labelled children by (family, labels): prometheus_client's labels() takes a lock and
        # checks its arguments on every call. Label values are bounded (routes, models, codes).
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.window = LiveWindow()
        self.endpoint_source: EndpointSource = list
        r = self.registry
        self.requests = Counter("chungus_requests", "HTTP requests by route template, model and status",
                                ["route", "model", "status"], registry=r)
        self.request_duration = Histogram(
            "chungus_request_duration_seconds", "Request start to last byte (whole streams)",
            ["route", "model"], buckets=REQUEST_BUCKETS, registry=r)
        self.requests_in_flight = Gauge("chungus_requests_in_flight", "Requests being served",
                                        ["route"], multiprocess_mode="livesum", registry=r)
        self.ttft = Histogram("chungus_time_to_first_token_seconds",
                              "Generation start to its first token", ["model"],
                              buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("chungus_inter_token_latency_seconds",
                             "Time between generated tokens (one observation per token)", ["model"],
                             buckets=ITL_BUCKETS, registry=r)
        self.prompt_tokens = Counter("chungus_prompt_tokens", "Prompt tokens of finished generations",
                                     ["model"], registry=r)
        self.completion_tokens = Counter("chungus_completion_tokens", "Generated tokens", ["model"],
                                         registry=r)
        self.streams_in_flight = Gauge("chungus_streams_in_flight", "Generations streaming now",
                                       ["model"], multiprocess_mode="livesum", registry=r)
        self.rate_limited = Counter("chungus_rate_limit_refusals", "429 answers by reason",
                                    ["reason"], registry=r)
        self.auth_failures = Counter("chungus_auth_failures", "401 and 403 answers by status and code",
                                     ["status", "code"], registry=r)
        self.backend_errors = Counter("chungus_backend_errors", "Model server failures by kind",
                                      ["model", "kind"], registry=r)
        self.endpoint_outstanding = Gauge(
            "chungus_triton_endpoint_outstanding", "Requests in flight on each model server endpoint",
            ["endpoint"], multiprocess_mode="livesum", registry=r)
        self.endpoint_healthy = Gauge(
            "chungus_triton_endpoint_healthy", "1 when the endpoint answered its last health check",
            ["endpoint"], multiprocess_mode="livemax", registry=r)
        self.image_fetch = Histogram("chungus_image_fetch_seconds", "Fetching one image URL",
                                     buckets=IMAGE_BUCKETS, registry=r)
        self.image_decode = Histogram("chungus_image_decode_seconds",
                                      "Decoding and preprocessing one image", buckets=IMAGE_BUCKETS,
                                      registry=r)
        self.embedding_batch = Histogram("chungus_embedding_batch_size", "Inputs per embeddings call",
                                         ["model"], buckets=BATCH_BUCKETS, registry=r)

    def child(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)``, made once."""
        key = (family, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = family.labels(*labels)
        return found

    def request_started(self, route: str) -> None:
        self.child(self.requests_in_flight, route).inc()
        self.window.requests_in_flight += 1

    def request_finished(self, route: str, record: RequestRecord, status: str, seconds: float) -> None:
        """One finished request (the middleware's ``finally``): every per-request family."""
        self.child(self.requests_in_flight, route).dec()
        self.window.requests_in_flight -= 1
        self.child(self.requests, route, record.model, status).inc()
        self.child(self.request_duration, route, record.model).observe(seconds)
        if status == "429":
            self.child(self.rate_limited, record.code or "").inc()
        elif status in ("401", "403"):
            self.child(self.auth_failures, status, record.code or "").inc()
        if route.startswith("/v1/"):  # the API, not probes and scrapes
            self.window.request_done(error=int(status) >= 500)

    def watch_endpoints(self, source: EndpointSource) -> None:
        """Read endpoint health and load from ``source`` (the backend's endpoints)."""
        self.endpoint_source = source

    def refresh_endpoints(self) -> list[EndpointHealth]:
        """Copy the endpoints' state into their gauges; returns it."""
        endpoints = self.endpoint_source()
        for ep in endpoints:
            self.endpoint_outstanding.labels(ep.url).set(ep.outstanding)
            self.endpoint_healthy.labels(ep.url).set(1 if ep.healthy else 0)
        return endpoints

    async def start(self) -> None:
        """Poll the endpoint gauges (other workers' scrapes read them too); open the port."""
        from gateway.metrics.exposition import serve_on_port

        self._poller = asyncio.create_task(self._poll())
        if self.port is not None:
            self._server = serve_on_port(self, self.host, self.port)

    async def close(self) -> None:
        from gateway.metrics.exposition import mark_process_dead

        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()
        mark_process_dead()

    async def _poll(self) -> None:
        while True:
            self.refresh_endpoints()
            await asyncio.sleep(self.poll_s)

    def live(self) -> LiveStats:
        """The last 60 s in this process (the web console's figures)."""
        return self.window.stats(self.refresh_endpoints())
