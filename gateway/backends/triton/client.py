"""The Triton backend: gRPC streaming (decoupled) calls over one or more Triton endpoints."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.backends.base import Delta, EmbeddingResult, GenerationRequest
from gateway.backends.triton.errors import translate_error, translate_response_error
from gateway.backends.triton.stops import StopTrimmer
from gateway.backends.triton.tensors import ModelSignature, build_inputs, requested_outputs
from gateway.errors import GatewayTimeoutError, ServiceUnavailableError
from gateway.registry import ModelEntry, Registry

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


class TritonBackend:
    """Backend over ``tritonclient.grpc.aio``; balances by least outstanding requests."""

    def __init__(self, urls: Sequence[str], registry: Registry, *, idle_timeout_s: float = 60.0,
                 total_timeout_s: float = 600.0, ready_ttl_s: float = 1.0) -> None:
        self.urls = list(urls)
        self.registry = registry
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s
        self.ready_ttl_s = ready_ttl_s
        self.endpoints: list[Endpoint] = []
        self.signatures: dict[str, ModelSignature] = {}
        self._tokenizers: dict[str, Any] = {}
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.endpoints = [Endpoint(u, grpcclient.InferenceServerClient(u)) for u in self.urls]
        with contextlib.suppress(Exception):
            await self._refresh_all(force=True)
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        """Readiness is polled in the background, so no request waits on a slow endpoint."""
        while True:
            await asyncio.sleep(self.ready_ttl_s)
            with contextlib.suppress(Exception):
                await self._refresh_all(force=True)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for ep in self.endpoints:
            with contextlib.suppress(Exception):
                await ep.client.close()

    # Readiness ---------------------------------------------------------------------------------

    async def _refresh(self, ep: Endpoint) -> None:
        try:
            index = await asyncio.wait_for(ep.client.get_model_repository_index(as_json=True), 5)
            ep.ready_models = {m["name"] for m in index.get("models", []) if m.get("state") == "READY"}
            ep.healthy = True
        except (InferenceServerException, grpc.RpcError, TimeoutError, OSError):
            ep.ready_models, ep.healthy = set(), False
        ep.checked_at = time.monotonic()

    async def _refresh_all(self, force: bool = False) -> None:
        if self._poller is not None and not force:
            return
        now = time.monotonic()
        stale = [ep for ep in self.endpoints if force or now - ep.checked_at > self.ready_ttl_s]
        if stale:
            await asyncio.gather(*(self._refresh(ep) for ep in stale))

    async def ready_models(self) -> set[str]:
        await self._refresh_all()
        ready: set[str] = set()
        for ep in self.endpoints:
            ready |= ep.ready_models
        return ready

    async def is_ready(self) -> bool:
        await self._refresh_all()
        return any(ep.healthy for ep in self.endpoints)

    async def _pick(self, triton_model: str) -> Endpoint:
        await self._refresh_all()
        candidates = [ep for ep in self.endpoints if triton_model in ep.ready_models]
        if not candidates:
            await self._refresh_all(force=True)
            candidates = [ep for ep in self.endpoints if triton_model in ep.ready_models]
        if not candidates:
            raise ServiceUnavailableError(f"model backend '{triton_model}' is not ready",
                                          code="model_not_ready")
        return min(candidates, key=lambda ep: ep.outstanding)

    async def signature(self, ep: Endpoint, triton_model: str) -> ModelSignature:
        sig = self.signatures.get(triton_model)
        if sig is None:
            try:
                cfg = await asyncio.wait_for(ep.client.get_model_config(triton_model, as_json=True), 5)
            except (InferenceServerException, grpc.RpcError, TimeoutError) as exc:
                raise translate_error(exc) from exc
            sig = self.signatures[triton_model] = ModelSignature.from_config(cfg["config"])
        return sig

    # Generation --------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        ep = await self._pick(request.model.triton_model)
        sig = await self.signature(ep, request.model.triton_model)
        inputs = build_inputs(sig, request)
        outputs = requested_outputs(sig)

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {"model_name": sig.name, "inputs": inputs, "outputs": outputs,
                   "request_id": request.request_id, "enable_empty_final_response": True}

        ep.outstanding += 1
        call = ep.client.stream_infer(requests(), stream_timeout=self.total_timeout_s)
        decoder = _TextDecoder(cumulative=request.model.text_mode == "cumulative", stops=request.stop)
        try:
            async for result in _responses(call, self.idle_timeout_s):
                delta = decoder.feed(result)
                if delta is not None:
                    yield delta
                if decoder.final:
                    break
            else:
                # tritonclient's aio stream_infer drops enable_empty_final_response, so a model
                # that ends with a flags-only final (NVIDIA's BLS does) ends the stream instead:
                # Triton closes it cleanly once our half-closed stream has no request left.
                if not decoder.responses:
                    raise ServiceUnavailableError("the model server closed the stream early")
            tail = decoder.finish(request, self)
            yield tail
        finally:
            ep.outstanding -= 1
            # The client left or we are done: cancelling the call makes Triton cancel the
            # request, and the Python model sees is_cancelled().
            call.cancel()

    # Embeddings --------------------------------------------------------------------------------

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult:
        from gateway.backends.triton.embeddings import embed  # noqa: PLC0415

        ep = await self._pick(model.triton_model)
        ep.outstanding += 1
        try:
            return await embed(ep.client, model.triton_model, texts, self.total_timeout_s)
        finally:
            ep.outstanding -= 1

    def count_tokens(self, model: ModelEntry, text: str) -> int | None:
        """Count with the registry's tokenizer.json, when the model has one."""
        if model.tokenizer is None:
            return None
        tok = self._tokenizers.get(model.id)
        if tok is None:
            from tokenizers import Tokenizer  # noqa: PLC0415

            path = model.resolve(Path(self.registry.base_dir), model.tokenizer)
            tok = self._tokenizers[model.id] = Tokenizer.from_file(str(path))
        return len(tok.encode(text, add_special_tokens=False).ids)


async def _responses(call: Any, idle_timeout_s: float) -> AsyncIterator[Any]:
    """Results of a stream_infer call; errors translated; an idle stream times out."""
    iterator = call.__aiter__()
    while True:
        try:
            result, error = await asyncio.wait_for(iterator.__anext__(), idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise GatewayTimeoutError(
                f"the model server sent nothing for {idle_timeout_s:.0f}s") from exc
        except (grpc.RpcError, InferenceServerException) as exc:
            raise translate_error(exc) from exc
        if error is not None:
            raise translate_response_error(error)
        yield result


class _TextDecoder:
    """Turns Triton responses (delta or cumulative ``text_output``) into whole-character deltas."""

    def __init__(self, cumulative: bool, stops: Sequence[str] = ()) -> None:
        self.cumulative = cumulative
        self._stops = StopTrimmer(stops)
        self.responses = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._seen = b""
        self.text_parts: list[str] = []
        self.final = False
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None

    def feed(self, result: Any) -> Delta | None:
        self.responses += 1
        params = result.get_response().parameters
        final = params.get("triton_final_response")
        self.final = bool(final is not None and final.bool_param)
        raw = result.as_numpy("text_output")
        data = b"".join(_as_bytes(x) for x in raw.reshape(-1)) if raw is not None else b""
        if self.cumulative:
            data, self._seen = (data[len(self._seen):] if data.startswith(self._seen) else data), data
        self._read_meta(result)
        text = self._stops.push(self._utf8.decode(data))
        if self._stops.hit:  # NVIDIA's models keep the stop word: cut here and end the call
            self.final, self.finish_reason = True, "stop"
        if text:
            self.text_parts.append(text)
            return Delta(text=text)
        return None

    def _read_meta(self, result: Any) -> None:
        for name in ("num_input_tokens", "num_output_tokens", "finish_reason"):
            value = result.as_numpy(name)
            if value is None or value.size == 0:
                continue
            item = value.reshape(-1)[0]
            if name == "finish_reason":
                self.finish_reason = _as_bytes(item).decode() or None
            elif name == "num_input_tokens":
                self.prompt_tokens = int(item)
            else:  # per response: a streamed one counts only its own new tokens
                self.completion_tokens = (self.completion_tokens or 0) + int(item)

    def finish(self, request: GenerationRequest, backend: TritonBackend) -> Delta:
        tail = self._stops.push(self._utf8.decode(b"", final=True)) + self._stops.flush()
        if tail:
            self.text_parts.append(tail)
        text = "".join(self.text_parts)
        prompt = self.prompt_tokens
        if prompt is None:
            prompt = backend.count_tokens(request.model, request.prompt)
        completion = self.completion_tokens
        if completion is None:
            completion = backend.count_tokens(request.model, text)
        reason = "stop" if self._stops.hit else self.finish_reason
        if reason not in ("stop", "length"):
            reason = "length" if completion is not None and completion >= request.max_tokens else "stop"
        return Delta(text=tail, finish_reason=reason,  # type: ignore[arg-type]
                     prompt_tokens=prompt, completion_tokens=completion)


def _as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode("utf-8")
