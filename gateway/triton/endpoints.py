"""Triton endpoints: one gRPC client each, found by discovery, readiness polled in the background.

Endpoints come from fixed ``host:port`` entries and from ``dns://`` names re-resolved every
``resolve_s`` (``discovery.py``); the ``Router`` (``routing.py``) picks one per request among
those where the model is ready. An endpoint that leaves DNS takes no new requests and its client
is closed once its last request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import KeepAliveOptions
from tritonclient.grpc._client import MAX_GRPC_MESSAGE_SIZE
from tritonclient.utils import InferenceServerException

from gateway.errors import ServiceUnavailableError
from gateway.metrics.live import EndpointHealth
from gateway.triton.discovery import Discovery, Resolver
from gateway.triton.routing import Router

log = logging.getLogger("chungus.triton")



def channel_args() -> list[tuple[str, int]]:
    """tritonclient's own channel options, plus a short reconnect backoff.

    gRPC's default backoff grows to 120 s, so after a long Triton outage the gateway would wait
    minutes to notice Triton is back (measured: 4-7 s after a 30 s outage); capped at 1 s it
    reconnects within about a second. ``channel_args`` replaces tritonclient's defaults, hence
    the message sizes and keepalive options repeated here.
    """
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]

@dataclass(eq=False)
class Endpoint:
    """One Triton server, with the requests this gateway has in flight on it, per model."""

    url: str
    client: grpcclient.InferenceServerClient
    outstanding: dict[str, int] = field(default_factory=dict)
    ready_models: set[str] = field(default_factory=set)
    checked_at: float = 0.0
    healthy: bool = False

    @property
    def in_flight(self) -> int:
        return sum(self.outstanding.values())

    def begin(self, model: str) -> None:
        self.outstanding[model] = self.outstanding.get(model, 0) + 1

    def end(self, model: str) -> None:
        left = self.outstanding.get(model, 0) - 1
        if left > 0:
            self.outstanding[model] = left
        else:
            self.outstanding.pop(model, None)


class Endpoints:
    """The Triton servers the gateway balances over; neither readiness nor DNS waits on a request.

    Args:
        targets: ``host:port`` and ``dns://host:port`` entries.
        poll_s: readiness poll interval.
        timeout_s: limit of one readiness call or DNS resolution.
        resolve_s: DNS re-resolution interval.
        router: the routing policy; default prefix affinity with bounded load.
        resolver: replaces DNS (tests).
    """

    def __init__(self, targets: Sequence[str], *, poll_s: float = 1.0, timeout_s: float = 5.0,
                 resolve_s: float = 5.0, router: Router | None = None,
                 resolver: Resolver | None = None) -> None:
        self.discovery = Discovery(targets, resolver, timeout_s=timeout_s)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.resolve_s = resolve_s
        self.router = router or Router()
        self.all: list[Endpoint] = []
        self.retiring: list[Endpoint] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.discover()
        await self.refresh()
        self._tasks.append(asyncio.create_task(self._poll()))
        if self.discovery.dynamic:
            self._tasks.append(asyncio.create_task(self._rediscover()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for ep in self.all + self.retiring:
            with contextlib.suppress(Exception):
                await ep.client.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.refresh()
            await self.reap()

    async def _rediscover(self) -> None:
        while True:
            await asyncio.sleep(self.resolve_s)
            with contextlib.suppress(Exception):  # one failed round must not end discovery
                await self.discover()

    async def discover(self) -> None:
        """Resolve every target; add new endpoints (readiness checked first), retire gone ones."""
        urls = await self.discovery.urls()
        current = {ep.url: ep for ep in self.all}
        added: list[Endpoint] = []
        for url in urls:
            if url in current:
                continue
            back = next((ep for ep in self.retiring if ep.url == url), None)
            if back is not None:
                self.retiring.remove(back)
            added.append(back or Endpoint(url, grpcclient.InferenceServerClient(
                url, channel_args=channel_args())))
        await asyncio.gather(*(self._refresh(ep) for ep in added))
        keep = set(urls)
        gone = [ep for ep in self.all if ep.url not in keep]
        self.all = [ep for ep in self.all if ep.url in keep] + added
        self.retiring.extend(gone)
        for ep in added:
            log.info("triton endpoint %s added", ep.url)
        for ep in gone:
            log.info("triton endpoint %s removed (%d requests in flight)", ep.url, ep.in_flight)
        await self.reap()

    async def reap(self) -> None:
        """Close the clients of removed endpoints that have nothing in flight."""
        idle = [ep for ep in self.retiring if ep.in_flight == 0]
        self.retiring = [ep for ep in self.retiring if ep.in_flight > 0]
        for ep in idle:
            with contextlib.suppress(Exception):
                await ep.client.close()

    async def refresh(self) -> None:
        """Ask every endpoint which models are ready (in parallel)."""
        await asyncio.gather(*(self._refresh(ep) for ep in list(self.all)))

    async def _refresh(self, ep: Endpoint) -> None:
        try:
            index = await asyncio.wait_for(
                ep.client.get_model_repository_index(as_json=True), self.timeout_s)
            ep.ready_models = {m["name"] for m in index.get("models", [])
                               if m.get("state") == "READY"}
            if not ep.healthy:
                log.info("triton %s is up (%d models ready)", ep.url, len(ep.ready_models))
            ep.healthy = True
        except (InferenceServerException, grpc.RpcError, TimeoutError, OSError):
            if ep.healthy:
                log.warning("triton %s stopped answering", ep.url)
            ep.ready_models, ep.healthy = set(), False
        ep.checked_at = time.monotonic()

    def ready_models(self) -> set[str]:
        ready: set[str] = set()
        for ep in self.all:
            ready |= ep.ready_models
        return ready

    def any_healthy(self) -> bool:
        return any(ep.healthy for ep in self.all)

    def health(self) -> list[EndpointHealth]:
        """Each endpoint's health and requests in flight (metrics and the console read it)."""
        return [EndpointHealth(url=ep.url, healthy=ep.healthy, outstanding=ep.in_flight)
                for ep in self.all]

    async def pick(self, triton_model: str, prompt: str = "") -> Endpoint:
        """The endpoint for this request among those where the model is ready (see ``Router``).

        Raises:
            ServiceUnavailableError: no endpoint has the model ready (``model_not_ready``).
        """
        candidates = [ep for ep in self.all if triton_model in ep.ready_models]
        if not candidates:  # it may have just come up: look once more before refusing
            await self.refresh()
            candidates = [ep for ep in self.all if triton_model in ep.ready_models]
        if not candidates:
            raise ServiceUnavailableError(f"model backend '{triton_model}' is not ready",
                                          code="model_not_ready")
        loads = [ep.outstanding.get(triton_model, 0) for ep in candidates]
        return candidates[self.router.choose([ep.url for ep in candidates], loads, prompt)]
