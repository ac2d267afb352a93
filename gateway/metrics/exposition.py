"""The Prometheus text: ``GET /metrics`` on the main port, or a port of its own.

One process: the ``Metrics`` object's own registry. Several worker processes: every process
writes its figures to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode, chosen when the library is first imported, so the variable must be set before the workers
start), and a scrape of any worker sums them. ``prepare_multiprocess_dir`` makes that folder
empty for a new run; ``mark_process_dead`` drops a stopped worker's gauges.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, start_http_server
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from gateway.metrics.recorder import Metrics

log = logging.getLogger("chungus.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the classic text format every Prometheus reads


def multiprocess_dir() -> str | None:
    """The multiprocess folder, when this process writes its figures there."""
    folder = os.environ.get(ENV)
    if folder and values.ValueClass is not values.MutexValue:
        return folder
    return None


def prepare_multiprocess_dir(folder: Path) -> None:
    """Make ``folder`` empty and name it in the environment, before any worker starts.

    Call this in the parent of the workers, before anything imports prometheus_client in them:
    the library picks its value store (memory or files) at import.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    os.environ[ENV] = str(folder)


def scrape_registry(metrics: Metrics) -> Collector:
    """What a scrape reads: every worker's files in multiprocess mode, else this registry."""
    folder = multiprocess_dir()
    if folder is None:
        return metrics.registry
    registry = CollectorRegistry(support_collectors_without_names=True)
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return registry


def render(metrics: Metrics) -> bytes:
    """The Prometheus text for one scrape."""
    metrics.refresh_endpoints()
    return generate_latest(scrape_registry(metrics))


def metrics_route(metrics: Metrics) -> HTTPRouteHandler:
    """``GET /metrics`` for the main port; no key (Prometheus scrapes it)."""

    @get("/metrics", include_in_schema=False, sync_to_thread=True)  # reads files: off the loop
    def scrape() -> Response[bytes]:
        # Litestar adds "; charset=utf-8" to text types itself
        return Response(render(metrics), media_type=CONTENT_TYPE.removesuffix("; charset=utf-8"))

    return scrape


def serve_on_port(metrics: Metrics, host: str, port: int) -> WSGIServer | None:
    """Serve the Prometheus text on ``host:port`` from a thread; None when the port is taken
    (with several workers, the first one to bind serves every worker's figures)."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=scrape_registry(metrics))
    except OSError as exc:
        if multiprocess_dir() is None:
            raise
        log.info("metrics port %d is served by another worker (%s)", port, exc)
        return None
    return server


def mark_process_dead() -> None:
    """Drop this process's live gauges from the multiprocess folder (at shutdown)."""
    folder = multiprocess_dir()
    if folder is not None:
        multiprocess.mark_process_dead(os.getpid(), folder)  # type: ignore[no-untyped-call]
