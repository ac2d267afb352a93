"""Chat completions: OpenAI request -> rendered prompt -> backend deltas -> response or SSE chunks."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

from gateway.backends.base import Backend, Delta, GenerationRequest
from gateway.catalog import ModelCatalog
from gateway.errors import GatewayError, InvalidRequestError
from gateway.protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionRequest,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    Usage,
)
from gateway.registry import ModelEntry
from gateway.security.base import Admission, Guard
from gateway.serving.decode import decode_body
from gateway.serving.messages import flatten_messages
from gateway.serving.params import SamplingParams, check_params
from gateway.serving.sse import DONE, encode_event, error_event
from gateway.serving.templates import load_template, render

log = logging.getLogger("chungus.chat")


class ImageResolver(Protocol):
    async def resolve(self, refs: list[tuple[str, str]], entry: ModelEntry) -> np.ndarray: ...


@dataclass(slots=True)
class Prepared:
    """A validated, admitted chat request, ready to run."""

    request: ChatCompletionRequest
    entry: ModelEntry
    generation: GenerationRequest
    admission: Admission
    completion_id: str
    created: int
    prompt_estimate: int


class ChatService:
    """OpenAI chat semantics on top of a Backend; knows nothing of tensors."""

    def __init__(self, catalog: ModelCatalog, backend: Backend, guard: Guard,
                 images: ImageResolver | None = None) -> None:
        self.catalog = catalog
        self.backend = backend
        self.guard = guard
        self.images = images

    async def prepare(self, body: bytes, authorization: str | None, request_id: str) -> Prepared:
        """Authenticate, decode, validate, render and admit a request.

        Raises:
            GatewayError: any refusal, with its HTTP status.
        """
        principal = await self.guard.authenticate(authorization)
        req = decode_body(body, ChatCompletionRequest)
        entry = await self.catalog.resolve(req.model)
        if entry.kind != "chat":
            raise InvalidRequestError(
                f"Model '{entry.id}' is an {entry.kind} model; it cannot do chat completions",
                param="model", code="invalid_model_type")
        params = check_params(req, entry)
        messages, refs = flatten_messages(req.messages, entry)
        prompt = self._render(entry, messages)
        prompt_estimate = self._estimate(entry, prompt)
        admission = await self.guard.admit(principal, entry, prompt_estimate + params.max_tokens)
        try:
            images = await self.images.resolve(refs, entry) if refs and self.images else None
            if refs and self.images is None:
                raise InvalidRequestError("image input is not enabled on this server",
                                          param="messages", code="invalid_model_type")
        except BaseException:
            await admission.finish(0, 0)
            raise
        generation = _generation(entry, prompt, params, req, images, request_id)
        return Prepared(req, entry, generation, admission, f"chatcmpl-{uuid.uuid4().hex}",
                        int(time.time()), prompt_estimate)

    def _render(self, entry: ModelEntry, messages: list[dict[str, Any]]) -> str:
        path = entry.resolve(self.catalog.registry.base, entry.chat_template)
        if path is None:
            raise InvalidRequestError(f"model '{entry.id}' has no chat template", param="model")
        return render(load_template(path), messages, bos_token=entry.bos_token,
                      eos_token=entry.eos_token)

    def _estimate(self, entry: ModelEntry, prompt: str) -> int:
        counted = self.backend.count_tokens(entry, prompt)
        return counted if counted is not None else len(prompt) // 3 + 1

    async def complete(self, prep: Prepared) -> ChatCompletion:
        """Run to the end and build the non-streaming response."""
        parts: list[str] = []
        last = Delta()
        try:
            async for delta in self.backend.generate(prep.generation):
                parts.append(delta.text)
                last = delta
        finally:
            usage = _usage(last, prep)
            await prep.admission.finish(usage.prompt_tokens, usage.completion_tokens)
        message = ChatCompletionMessage(role="assistant", content="".join(parts))
        return ChatCompletion(id=prep.completion_id, created=prep.created, model=prep.entry.id,
                              choices=[Choice(0, message, last.finish_reason or "stop")],
                              usage=usage)

    async def stream(self, prep: Prepared) -> AsyncIterator[bytes]:
        """Start the stream; the first delta is awaited here so early errors keep their status.

        Returns:
            An async iterator of SSE-encoded bytes, ending with ``data: [DONE]``.
        """
        deltas = aiter(self.backend.generate(prep.generation))
        try:
            first = await anext(deltas)
        except StopAsyncIteration:
            first = Delta(finish_reason="stop")
        except BaseException:
            await deltas.aclose()  # type: ignore[attr-defined]
            await prep.admission.finish(0, 0)
            raise
        return self._events(prep, first, deltas)

    async def _events(self, prep: Prepared, first: Delta,
                      deltas: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
        last = first
        role_sent = False
        try:
            pending: Delta | None = first
            while pending is not None:
                last = pending
                if pending.text or not role_sent:
                    delta = (ChoiceDelta(content=pending.text) if role_sent
                             else ChoiceDelta(role="assistant", content=pending.text))
                    yield self._chunk(prep, delta)
                    role_sent = True
                if pending.finish_reason is not None:
                    break
                pending = await anext(deltas, None)
            usage = _usage(last, prep)
            yield self._chunk(prep, ChoiceDelta(), last.finish_reason or "stop", usage)
            if prep.request.stream_options and prep.request.stream_options.include_usage:
                yield encode_event(ChatCompletionChunk(id=prep.completion_id,
                                                       object="chat.completion.chunk",
                                                       created=prep.created, model=prep.entry.id,
                                                       choices=[], usage=usage))
            yield DONE
        except GatewayError as exc:
            yield error_event(exc)
            yield DONE
        except Exception:
            log.exception("stream %s failed after the first byte", prep.completion_id)
            yield error_event(None)
            yield DONE
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]
            usage = _usage(last, prep)
            await prep.admission.finish(usage.prompt_tokens, usage.completion_tokens)

    def _chunk(self, prep: Prepared, delta: ChoiceDelta, finish: str | None = None,
               usage: Usage | None = None) -> bytes:
        chunk = ChatCompletionChunk(id=prep.completion_id, object="chat.completion.chunk",
                                    created=prep.created, model=prep.entry.id,
                                    choices=[ChunkChoice(0, delta, finish)],
                                    usage=usage if usage is not None else msgspec.UNSET)
        return encode_event(chunk)


def _usage(last: Delta, prep: Prepared) -> Usage:
    prompt = last.prompt_tokens if last.prompt_tokens is not None else prep.prompt_estimate
    completion = last.completion_tokens or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)


def _generation(entry: ModelEntry, prompt: str, params: SamplingParams,
                req: ChatCompletionRequest, images: np.ndarray | None,
                request_id: str) -> GenerationRequest:
    return GenerationRequest(
        model=entry, prompt=prompt, max_tokens=params.max_tokens, stream=bool(req.stream),
        temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
        seed=req.seed, stop=params.stop, frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty, repetition_penalty=req.repetition_penalty,
        min_tokens=req.min_tokens, images=images, request_id=request_id)
