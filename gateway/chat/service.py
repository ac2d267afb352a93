"""Chat completions: OpenAI request -> rendered prompt -> backend deltas -> response or SSE chunks."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import jinja2
import msgspec
import numpy.typing as npt

from gateway.auth.principal import Admission, Guard, Principal
from gateway.backends.base import Backend, Delta, GenerationRequest
from gateway.catalog import ModelCatalog
from gateway.chat.messages import check_size, flatten_messages
from gateway.chat.params import check_params
from gateway.chat.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionRequest,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    Usage,
)
from gateway.chat.templates import load_template, render
from gateway.errors import GatewayError, InvalidRequestError
from gateway.http.sse import DONE, encode_event, error_event
from gateway.registry import ModelEntry
from gateway.sampling import fit_context
from gateway.tokens import Tokenizers

log = logging.getLogger("chungus.chat")

# Conversations longer than this (characters) are rendered and tokenized on a worker thread, so
# they never hold the event loop; shorter ones cost less inline than a thread hop.
OFF_LOOP_CHARS = 16_384


class ImageResolver(Protocol):
    async def resolve(self, refs: list[tuple[str, str]], entry: ModelEntry) -> npt.NDArray[Any]: ...


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
    """OpenAI chat semantics on top of a Backend; knows nothing of tensors or HTTP."""

    def __init__(self, catalog: ModelCatalog, backend: Backend, guard: Guard, tokens: Tokenizers,
                 images: ImageResolver | None = None) -> None:
        self.catalog = catalog
        self.backend = backend
        self.guard = guard
        self.tokens = tokens
        self.images = images
        self._templates: dict[str, jinja2.Template] = {}  # per model id, compiled once

    async def prepare(self, principal: Principal, req: ChatCompletionRequest,
                      request_id: str) -> Prepared:
        """Validate, admit on a cheap estimate, render, check the context, resolve images.

        Everything before admission is O(request size) and cheap; rendering and tokenizing run
        after it, off the event loop when the conversation is large.

        Raises:
            GatewayError: any refusal, with its HTTP status.
        """
        entry = await self.catalog.resolve(req.model)
        if entry.kind != "chat":
            raise InvalidRequestError(
                f"Model '{entry.id}' is an {entry.kind} model; it cannot do chat completions",
                param="model", code="invalid_model_type")
        params = check_params(req, entry)
        chars = check_size(req.messages, entry)
        estimate = chars // 4 + 1
        admission = await self.guard.admit(principal, entry, estimate + params.max_tokens)
        try:
            messages, refs = flatten_messages(req.messages, entry, self.tokens.specials(entry))
            if chars > OFF_LOOP_CHARS:
                prompt, prompt_tokens = await asyncio.to_thread(self._prompt, entry, messages)
            else:
                prompt, prompt_tokens = self._prompt(entry, messages)
            max_tokens = fit_context(entry, prompt_tokens, params.max_tokens,
                                     params.max_tokens_given)
            images = await self._images(refs, entry)
        except BaseException:
            await admission.finish(0, 0)
            raise
        generation = GenerationRequest(
            model=entry, prompt=prompt, max_tokens=max_tokens, stream=bool(req.stream),
            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            seed=req.seed, stop=params.stop, frequency_penalty=req.frequency_penalty,
            presence_penalty=req.presence_penalty, repetition_penalty=req.repetition_penalty,
            min_tokens=req.min_tokens, images=images, request_id=request_id,
            prompt_tokens=prompt_tokens)
        return Prepared(req, entry, generation, admission, f"chatcmpl-{uuid.uuid4().hex}",
                        int(time.time()), prompt_tokens if prompt_tokens is not None else estimate)

    def _prompt(self, entry: ModelEntry, messages: list[dict[str, Any]]) -> tuple[str, int | None]:
        """The rendered prompt and its token count (the one time it is tokenized)."""
        prompt = self._render(entry, messages)
        # The LLM API model tokenizes with the tokenizer's special tokens (its BOS); the others
        # get them from the chat template, which is in the prompt already.
        return prompt, self.tokens.count(entry, prompt, special=entry.contract == "llmapi")

    async def _images(self, refs: list[tuple[str, str]], entry: ModelEntry) -> npt.NDArray[Any] | None:
        if not refs:
            return None
        if self.images is None:
            raise InvalidRequestError("image input is not enabled on this server",
                                      param="messages", code="invalid_model_type")
        return await self.images.resolve(refs, entry)

    def _render(self, entry: ModelEntry, messages: list[dict[str, Any]]) -> str:
        template = self._templates.get(entry.id)
        if template is None:
            path = entry.resolve(self.catalog.registry.base, entry.chat_template)
            if path is None:
                raise InvalidRequestError(f"model '{entry.id}' has no chat template", param="model")
            template = self._templates[entry.id] = load_template(path)
        return render(template, messages, bos_token=entry.bos_token, eos_token=entry.eos_token)

    async def complete(self, prep: Prepared) -> ChatCompletion:
        """Run to the end and build the non-streaming response."""
        parts: list[str] = []
        last = Delta()
        deltas = self.backend.generate(prep.generation)
        try:
            async for delta in deltas:
                parts.append(delta.text)
                last = delta
        finally:
            await _unless_cancelled(_close(deltas, prep, last))
        usage = _usage(last, prep)
        message = ChatCompletionMessage(role="assistant", content="".join(parts))
        return ChatCompletion(id=prep.completion_id, created=prep.created, model=prep.entry.id,
                              choices=[Choice(0, message, last.finish_reason or "stop")],
                              usage=usage)

    async def stream(self, prep: Prepared) -> AsyncIterator[bytes]:
        """Start the stream; the first delta is awaited here so early errors keep their status.

        Returns:
            An async iterator of SSE-encoded bytes, ending with ``data: [DONE]``.
        """
        deltas = self.backend.generate(prep.generation)
        try:
            first = await anext(deltas)
        except StopAsyncIteration:
            first = Delta(finish_reason="stop")
        except BaseException:
            await deltas.aclose()
            await prep.admission.finish(0, 0)
            raise
        return self._events(prep, first, deltas)

    async def _events(self, prep: Prepared, first: Delta,
                      deltas: AsyncGenerator[Delta, None]) -> AsyncIterator[bytes]:
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
            await _unless_cancelled(_close(deltas, prep, last))

    def _chunk(self, prep: Prepared, delta: ChoiceDelta, finish: str | None = None,
               usage: Usage | None = None) -> bytes:
        chunk = ChatCompletionChunk(id=prep.completion_id, object="chat.completion.chunk",
                                    created=prep.created, model=prep.entry.id,
                                    choices=[ChunkChoice(0, delta, finish)],
                                    usage=usage if usage is not None else msgspec.UNSET)
        return encode_event(chunk)


_cleanups: set[asyncio.Task[None]] = set()


async def _close(deltas: AsyncGenerator[Delta, None] | None, prep: Prepared, last: Delta) -> None:
    """Stop the backend call, then bill what was generated and give the limits back."""
    try:
        if deltas is not None:
            await deltas.aclose()
    finally:
        usage = _usage(last, prep)
        await prep.admission.finish(usage.prompt_tokens, usage.completion_tokens)


async def _unless_cancelled(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run ``cleanup`` to the end even when this task is being cancelled (a client left).

    Litestar cancels a stream's task group when the client disconnects, and its cancellation
    repeats at every await inside the scope, so a cleanup awaited there would be cut at its
    first real wait (a Redis call) and leak the request's concurrency slot. A cancelled task
    hands the cleanup to a task of its own instead.
    """
    task = asyncio.current_task()
    if task is None or not task.cancelling():
        await cleanup
        return
    runner = asyncio.ensure_future(cleanup)
    _cleanups.add(runner)
    runner.add_done_callback(_cleanups.discard)
    await asyncio.shield(runner)


def _usage(last: Delta, prep: Prepared) -> Usage:
    """Usage from the latest delta's running counts: what was generated is billed, even when
    the client left before the end."""
    prompt = last.prompt_tokens if last.prompt_tokens is not None else prep.prompt_estimate
    completion = last.completion_tokens or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)
