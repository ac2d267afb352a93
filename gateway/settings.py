"""Gateway settings: one frozen struct, built from the environment by a pure function."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gateway can be told. ``from_env`` maps ``CHUNGUS_*`` variables onto it."""

    host: str = "127.0.0.1"
    port: int = 8080
    registry_path: str = "var/registry.toml"
    # One or more Triton gRPC endpoints ("host:port"), or "dns://host:port": every address the
    # name resolves to (a headless Service's pods), re-resolved every triton_dns_interval_s.
    triton_urls: tuple[str, ...] = ("127.0.0.1:8001",)
    triton_timeout_s: float = 600.0  # whole generation
    triton_idle_timeout_s: float = 60.0  # between two responses of one stream
    triton_connect_timeout_s: float = 5.0  # readiness polls and model-config reads
    # Routing over Triton endpoints. "affinity": prompts that share their first
    # triton_affinity_prefix_chars characters (one conversation's turns, a shared system prompt)
    # go to the same endpoint while it holds under triton_affinity_load_factor x the average
    # outstanding requests for the model; "least_outstanding": the least busy endpoint.
    triton_routing: Literal["affinity", "least_outstanding"] = "affinity"
    triton_affinity_prefix_chars: int = 256
    triton_affinity_load_factor: float = 1.25
    triton_dns_interval_s: float = 5.0  # dns://host:port entries are resolved again this often
    # The Triton that ``chungus serve`` / ``chungus triton`` start (not used with external ones).
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_restart_max_backoff_s: float = 30.0  # a Triton that keeps dying: longest wait between starts
    # Shutdown (SIGTERM, SIGINT, SIGHUP): new requests get 503, running ones may finish this long
    drain_timeout_s: float = 600.0  # the longest stream (triton_timeout_s); then they are cut
    # Idle keep-alive connections live this long: longer than clients' pools keep them (httpx and
    # the OpenAI SDKs: 5 s), or a request sent as the server closes one is reset
    keep_alive_timeout_s: float = 75.0
    max_body_bytes: int = 20 * 1024 * 1024
    body_timeout_s: float = 30.0  # a request body must arrive within this (slow clients: 408)
    max_connections: int = 2048  # open connections per process; more get 503 at once
    log_level: str = "info"
    access_log: bool = True
    # Keys and limits
    auth_enabled: bool = True
    admin_key: str | None = None
    database_url: str = "sqlite+aiosqlite:///var/chungus.db"
    redis_url: str | None = None
    redis_fail_open: bool = True  # Redis down: admit uncounted (True) or answer 503 (False)
    redis_prefix: str = "chungus:"  # Redis key prefix, so deployments can share one Redis
    key_cache_ttl_s: float = 5.0
    # Images
    image_fetch_timeout_s: float = 10.0
    image_connect_timeout_s: float = 3.0
    image_max_bytes: int = 10 * 1024 * 1024
    # 4096x4096: 12 Mpx phone photos and 5K screenshots fit; vision towers see 224-448 px anyway,
    # and a PNG's decoded pixels (4 bytes each) must fit in the decode budget below.
    image_max_pixels: int = 16 * 1024 * 1024
    image_max_frames: int = 100  # animated PNG/WebP: more are refused; only the first is decoded
    # Decodes reserve their estimated bytes from this budget (they wait when it is spent; one
    # image that needs more is refused): what images may take on top of the process's baseline.
    image_decode_memory_mb: int = 384  # a WebP at the pixel cap needs about 280
    image_decode_threads: int = 0  # 0: the container's CPUs (cgroup quota) less one for the loop
    image_max_redirects: int = 3
    image_allow_http: bool = False
    image_allowed_hosts: tuple[str, ...] = ()  # hosts (or CIDRs) exempt from the address checks
    image_denied_hosts: tuple[str, ...] = ()
    # Embeddings
    embedding_max_inputs: int = 2048
    embedding_max_total_tokens: int = 300_000
    embedding_truncate: bool = False  # over-long inputs: truncate (True) or refuse with 400
    # Responses API: store responses (store: true, the default) in the keys' database, so that
    # previous_response_id and GET /v1/responses/{id} work; off, nothing is kept and
    # previous_response_id is refused. Stored responses hold prompts: kept this long, then deleted.
    responses_store: bool = False
    responses_retention_s: float = 7 * 24 * 3600.0
    # Observability: Prometheus text on GET /metrics (no key), on the main port or on metrics_port
    # (a port of its own, same host). Tracing: OpenTelemetry spans sent over OTLP/HTTP to
    # otel_endpoint (e.g. http://collector:4318/v1/traces); None: off, nothing imported.
    metrics_enabled: bool = True
    metrics_port: int | None = None
    otel_endpoint: str | None = None
    otel_service_name: str = "chungus-gateway"
    # Web console at /console (needs keys on): sessions last console_session_ttl_s; usage
    # buckets (per key, model and hour) are kept usage_retention_days, minute buckets two days.
    console_enabled: bool = True
    console_session_ttl_s: float = 8 * 3600.0
    usage_retention_days: float = 90.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``CHUNGUS_<FIELD>`` variables (upper case); lists are comma-separated.

        Raises:
            msgspec.ValidationError: a variable has the wrong type.
        """
        raw: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            value = environ.get(f"CHUNGUS_{field.name.upper()}")
            if value is None:
                continue
            if field.type in (tuple[str, ...],):
                raw[field.name] = [v.strip() for v in value.split(",") if v.strip()]
            elif field.type in (str | None,) and value == "":
                raw[field.name] = None
            else:
                raw[field.name] = value
        if "CHUNGUS_REDIS_URL" not in environ and environ.get("REDIS_URL"):
            raw["redis_url"] = environ["REDIS_URL"]
        return msgspec.convert(raw, cls, strict=False)
