"""The ``Metrics`` object: every ``chungus_*`` family, and the live window for the console.

One ``Metrics`` is built per app by ``gateway.services.build_services``, with its own
``CollectorRegistry``, and handed to the few places that record: the request middleware
(route, status, duration, requests in flight), the error handlers (refusals by reason, auth
failures), ``MeteredBackend`` (tokens, time to first token, inter-token latency, streams,
backend errors, embedding batches), the image service (fetch and decode times) and a poll of
the model server endpoints (outstanding requests, health).

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (see ``gateway.metrics.multiproc``)
makes every family write to per-process files that a scrape of any worker sums.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.metrics.live import EndpointHealth, LiveStats, LiveWindow

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
    """The gateway's Prometheus families and live window; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def live(self) -> LiveStats:
        """The last 60 s in this process (the web console's figures)."""
        return self.window.stats(self.refresh_endpoints())
