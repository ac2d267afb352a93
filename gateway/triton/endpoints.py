"""Triton endpoints: one gRPC client each, readiness polled in the background, least-outstanding choice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.errors import ServiceUnavailableError

log = logging.getLogger("chungus.triton")


@dataclass(eq=False)
class Endpoint:
    """One Triton server, with the requests this gateway has in flight on it."""

    url: str
    client: grpcclient.InferenceServerClient
    outstanding: int = 0
    ready_models: set[str] = field(default_factory=set)
    checked_at: float = 0.0
    healthy: bool = False


class Endpoints:
    """The Triton servers the gateway balances over; readiness never waits on the request path."""

    def __init__(self, urls: Sequence[str], *, poll_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.urls = list(urls)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.all: list[Endpoint] = []
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.all = [Endpoint(u, grpcclient.InferenceServerClient(u)) for u in self.urls]
        await self.refresh()
        self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for ep in self.all:
            with contextlib.suppress(Exception):
                await ep.client.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.refresh()

    async def refresh(self) -> None:
        """Ask every endpoint which models are ready (in parallel)."""
        await asyncio.gather(*(self._refresh(ep) for ep in self.all))

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

    async def pick(self, triton_model: str) -> Endpoint:
        """The least busy endpoint where the model is ready.

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
        return min(candidates, key=lambda ep: ep.outstanding)
