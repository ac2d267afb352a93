"""The Triton backend: every model call over Triton's gRPC streaming (decoupled) API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from gateway.backends.base import Delta, EmbeddingResult, GenerationRequest
from gateway.errors import GatewayError, GatewayTimeoutError, ServiceUnavailableError
from gateway.registry import ModelEntry
from gateway.tokens import Tokenizers
from gateway.triton.discovery import Resolver
from gateway.triton.embeddings import embed
from gateway.triton.endpoints import Endpoint, Endpoints
from gateway.triton.errors import map_exception, mapped_errors
from gateway.triton.routing import Router
from gateway.triton.stream import Response, StreamDecoder, read_response
from gateway.triton.tensors import ModelSignature, build_inputs, requested_outputs


class TritonBackend:
    """``Backend`` over ``tritonclient.grpc.aio``, routed by prompt prefix or least outstanding.

    Args:
        urls: Triton gRPC endpoints (``host:port``, or ``dns://host:port`` for every address).
        tokens: counts generated text for models that give no counts.
        idle_timeout_s: a stream that sends nothing this long ends with 504.
        total_timeout_s: a whole call's limit.
        connect_timeout_s: limit for readiness and config calls.
        router: how an endpoint is chosen (default: prefix affinity with bounded load).
        resolve_s: how often ``dns://`` entries are resolved again.
        resolver: replaces DNS for ``dns://`` entries (tests).
    """

    def __init__(self, urls: Sequence[str], tokens: Tokenizers, *, idle_timeout_s: float = 60.0,
                 total_timeout_s: float = 600.0, connect_timeout_s: float = 5.0,
                 poll_s: float = 1.0, router: Router | None = None, resolve_s: float = 5.0,
                 resolver: Resolver | None = None) -> None:
        self.endpoints = Endpoints(urls, poll_s=poll_s, timeout_s=connect_timeout_s,
                                   resolve_s=resolve_s, router=router, resolver=resolver)
        self.tokens = tokens
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.signatures: dict[str, ModelSignature] = {}

    async def start(self) -> None:
        await self.endpoints.start()

    async def close(self) -> None:
        await self.endpoints.close()

    async def ready_models(self) -> set[str]:
        return self.endpoints.ready_models()

    async def is_ready(self) -> bool:
        return self.endpoints.any_healthy()

    async def signature(self, ep: Endpoint, triton_model: str) -> ModelSignature:
        """The model's declared inputs and outputs, read from Triton once."""
        sig = self.signatures.get(triton_model)
        if sig is None:
            try:
                with mapped_errors():
                    cfg = await asyncio.wait_for(
                        ep.client.get_model_config(triton_model, as_json=True),
                        self.connect_timeout_s)
            except TimeoutError as exc:
                raise GatewayTimeoutError("the model server did not answer in time") from exc
            sig = self.signatures[triton_model] = ModelSignature.from_config(cfg["config"])
        return sig

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        entry = request.model
        ep = await self.endpoints.pick(entry.triton_model, request.prompt)
        sig = await self.signature(ep, entry.triton_model)
        # The client's x-request-id is for logs; Triton needs an id no other client can repeat.
        call_id = f"{request.request_id or 'req'}-{uuid.uuid4().hex[:12]}"
        message = {"model_name": sig.name, "inputs": build_inputs(sig, request),
                   "outputs": requested_outputs(sig, request), "request_id": call_id,
                   "enable_empty_final_response": True}

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield message

        decoder = StreamDecoder(cumulative=entry.text_mode == "cumulative",
                                max_tokens=request.max_tokens, stops=request.stop,
                                prompt_tokens=request.prompt_tokens,
                                count=lambda text: self.tokens.count(entry, text))
        ep.begin(entry.triton_model)
        # W3C trace context as gRPC metadata: a Triton tracing with OpenTelemetry joins the trace
        call = ep.client.stream_infer(requests(), stream_timeout=self.total_timeout_s,
                                      headers=dict(request.trace_headers) or None)
        responses = _responses(call, self.idle_timeout_s)
        closed = False
        try:
            async for response in responses:
                delta = decoder.feed(response)
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
                closed = True
            if decoder.model_done and not closed:
                closed = await _read_close(responses)
            yield decoder.finish()
        finally:
            ep.end(entry.triton_model)
            if not closed:
                # The client left, a stop sequence ended it, or it failed: cancelling the call
                # makes Triton cancel the request (a Python model sees is_cancelled()). A call
                # that ended is not cancelled: Triton 2.51 keeps about 1 KiB per cancelled call.
                call.cancel()
            await responses.aclose()

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult:
        ep = await self.endpoints.pick(model.triton_model)
        ep.begin(model.triton_model)
        try:
            return await embed(ep.client, model.triton_model, texts, self.total_timeout_s)
        finally:
            ep.end(model.triton_model)


async def _read_close(responses: AsyncGenerator[Response, None], timeout_s: float = 1.0) -> bool:
    """After the model's final response, read the call's end (Triton closes it at once).

    Returns:
        Whether the call ended by itself (else it must be cancelled).
    """
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in responses:
                return False  # nothing should follow a final response
    except (TimeoutError, GatewayError):
        return False
    return True


async def _responses(call: Any, idle_timeout_s: float) -> AsyncGenerator[Response, None]:
    """A stream_infer call's responses; errors mapped; a stream idle too long times out."""
    iterator = call.__aiter__()
    while True:
        try:
            with mapped_errors():
                result, error = await asyncio.wait_for(iterator.__anext__(), idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise GatewayTimeoutError(
                f"the model server sent nothing for {idle_timeout_s:.0f}s") from exc
        if error is not None:
            raise map_exception(error)
        yield read_response(result)

