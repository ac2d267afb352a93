"""Chat completions: OpenAI request -> rendered prompt -> backend deltas -> response or SSE chunks."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import jinja2
import msgspec
import numpy.typing as npt

from gateway.auth.principal import Admission, Guard, Principal
from gateway.backends.base import Backend, Delta, GenerationRequest
from gateway.backends.fanout import interleave
from gateway.catalog import ModelCatalog
from gateway.chat.choices import ChoiceRun
from gateway.chat.messages import check_size, flatten_messages, neutralize_json
from gateway.chat.params import check_params, check_tools_and_format
from gateway.chat.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Usage,
)
from gateway.chat.templates import load_template, render
from gateway.chat.tools.definitions import ToolPlan, template_tools
from gateway.errors import GatewayError, InvalidRequestError
from gateway.http.disconnect import unless_cancelled
from gateway.http.sse import DONE, encode_event, error_event
from gateway.registry import ModelEntry
from gateway.sampling import SamplingParams, fit_context
from gateway.tokens import Tokenizers

log = logging.getLogger("chungus.chat")

# Conversations longer than this (characters) are rendered and tokenized on a worker thread, so
# they never hold the event loop; shorter ones cost less inline than a thread hop.
OFF_LOOP_CHARS = 16_384
_SEEDS, _INT64 = 2**64, 2**63


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
    plan: ToolPlan = ToolPlan()
    n: int = 1

    def generations(self) -> list[GenerationRequest]:
        """One generation per choice; choice ``i`` samples with ``seed + i`` when seeded."""
        gen = self.generation
        if self.n == 1:
            return [gen]
        return [gen] + [replace(gen, request_id=f"{gen.request_id}-{i}",
                                seed=None if gen.seed is None
                                else (gen.seed + i + _INT64) % _SEEDS - _INT64)
                        for i in range(1, self.n)]

    def runs(self) -> list[ChoiceRun]:
        top = (self.request.top_logprobs or 0) if self.request.logprobs else None
        return [ChoiceRun(i, self.plan, self.entry.tool_parser, top) for i in range(self.n)]


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
        plan, guide = check_tools_and_format(req, entry)
        n = req.n or 1
        chars = check_size(req.messages, entry)
        estimate = chars // 4 + 1
        # Every choice may use its whole completion budget.
        admission = await self.guard.admit(principal, entry, estimate + n * params.max_tokens)
        try:
            specials = self.tokens.specials(entry)
            messages, refs = flatten_messages(req.messages, entry, specials)
            tools = neutralize_json(template_tools(plan), specials)
            if chars > OFF_LOOP_CHARS:
                prompt, prompt_tokens = await asyncio.to_thread(self._prompt, entry, messages, tools)
            else:
                prompt, prompt_tokens = self._prompt(entry, messages, tools)
            max_tokens = fit_context(entry, prompt_tokens, params.max_tokens,
                                     params.max_tokens_given)
            images = await self._images(refs, entry)
        except BaseException:
            await admission.finish(0, 0)
            raise
        generation = GenerationRequest(
            model=entry, prompt=prompt, max_tokens=max_tokens, images=images,
            request_id=request_id, prompt_tokens=prompt_tokens, guide=guide,
            **_sampling(req, params))
        return Prepared(req, entry, generation, admission, f"chatcmpl-{uuid.uuid4().hex}",
                        int(time.time()), prompt_tokens if prompt_tokens is not None else estimate,
                        plan, n)

    def _prompt(self, entry: ModelEntry, messages: list[dict[str, Any]],
                tools: list[dict[str, Any]] | None = None) -> tuple[str, int | None]:
        """The rendered prompt and its token count (the one time it is tokenized)."""
        prompt = self._render(entry, messages, tools)
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

    def _render(self, entry: ModelEntry, messages: list[dict[str, Any]],
                tools: list[dict[str, Any]] | None = None) -> str:
        template = self._templates.get(entry.id)
        if template is None:
            path = entry.resolve(self.catalog.registry.base, entry.chat_template)
            if path is None:
                raise InvalidRequestError(f"model '{entry.id}' has no chat template", param="model")
            template = self._templates[entry.id] = load_template(path)
        return render(template, messages, bos_token=entry.bos_token, eos_token=entry.eos_token,
                      tools=tools)

    async def complete(self, prep: Prepared) -> ChatCompletion:
        """Run every choice to the end and build the non-streaming response."""
        runs = prep.runs()
        deltas = interleave([self.backend.generate(g) for g in prep.generations()])
        try:
            async for index, delta in deltas:
                runs[index].add(delta)
        finally:
            await unless_cancelled(_close(deltas, prep, runs))
        return ChatCompletion(id=prep.completion_id, created=prep.created, model=prep.entry.id,
                              choices=[run.choice() for run in runs], usage=_usage(runs, prep))

    async def stream(self, prep: Prepared) -> AsyncIterator[bytes]:
        """Start the stream; the first delta is awaited here so early errors keep their status.

        Returns:
            An async iterator of SSE-encoded bytes, ending with ``data: [DONE]``.
        """
        runs = prep.runs()
        deltas = interleave([self.backend.generate(g) for g in prep.generations()])
        try:
            first = await anext(deltas, None)
        except BaseException:
            await deltas.aclose()
            await prep.admission.finish(0, 0)
            raise
        return self._events(prep, runs, first, deltas)

    async def _events(self, prep: Prepared, runs: list[ChoiceRun], first: tuple[int, Delta] | None,
                      deltas: AsyncGenerator[tuple[int, Delta], None]) -> AsyncIterator[bytes]:
        try:
            if len(runs) > 1:  # every choice's first chunk, in index order, before any text
                for run in runs:
                    yield self._chunk(prep, run.chunk([]))
            finished: set[int] = set()
            item = first
            while item is not None and len(finished) < len(runs):
                index, delta = item
                run = runs[index]
                piece = run.chunk(run.add(delta))
                if piece is not None:
                    yield self._chunk(prep, piece)
                if delta.finish_reason is not None:
                    finished.add(index)
                    yield self._finish(prep, runs, run, finished)
                if len(finished) < len(runs):
                    item = await anext(deltas, None)
            for run in runs:  # a generation that ended without a finish reason
                if run.index not in finished:
                    finished.add(run.index)
                    yield self._finish(prep, runs, run, finished)
            if prep.request.stream_options and prep.request.stream_options.include_usage:
                yield encode_event(ChatCompletionChunk(id=prep.completion_id,
                                                       object="chat.completion.chunk",
                                                       created=prep.created, model=prep.entry.id,
                                                       choices=[], usage=_usage(runs, prep)))
            yield DONE
        except GatewayError as exc:
            yield error_event(exc)
            yield DONE
        except Exception:
            log.exception("stream %s failed after the first byte", prep.completion_id)
            yield error_event(None)
            yield DONE
        finally:
            await unless_cancelled(_close(deltas, prep, runs))

    def _finish(self, prep: Prepared, runs: list[ChoiceRun], run: ChoiceRun, finished: set[int]) -> bytes:
        """A choice's last chunk; the last choice to finish carries the usage of all."""
        last = run.chunk(run.flush(), final=True)
        assert last is not None
        return self._chunk(prep, last, _usage(runs, prep) if len(finished) == len(runs) else None)

    def _chunk(self, prep: Prepared, choice: ChunkChoice | None, usage: Usage | None = None) -> bytes:
        assert choice is not None
        chunk = ChatCompletionChunk(id=prep.completion_id, object="chat.completion.chunk",
                                    created=prep.created, model=prep.entry.id, choices=[choice],
                                    usage=usage if usage is not None else msgspec.UNSET)
        return encode_event(chunk)


def _sampling(req: ChatCompletionRequest, params: SamplingParams) -> dict[str, Any]:
    """The GenerationRequest fields that come straight from the request's sampling parameters."""
    return {"stream": bool(req.stream), "temperature": params.temperature, "top_p": params.top_p,
            "top_k": params.top_k, "seed": req.seed, "stop": params.stop,
            "frequency_penalty": req.frequency_penalty, "presence_penalty": req.presence_penalty,
            "repetition_penalty": req.repetition_penalty, "min_tokens": req.min_tokens,
            "logprobs": bool(req.logprobs), "top_logprobs": req.top_logprobs or 0}


async def _close(deltas: AsyncGenerator[Any, None] | None, prep: Prepared,
                 runs: list[ChoiceRun]) -> None:
    """Stop the backend calls, then bill what was generated and give the limits back."""
    try:
        if deltas is not None:
            await deltas.aclose()
    finally:
        usage = _usage(runs, prep)
        await prep.admission.finish(usage.prompt_tokens, usage.completion_tokens)


def _usage(runs: list[ChoiceRun], prep: Prepared) -> Usage:
    """Usage from each choice's latest running counts (the prompt counted once): what was
    generated is billed, even when the client left before the end."""
    counted = [r.last.prompt_tokens for r in runs if r.last.prompt_tokens is not None]
    prompt = counted[0] if counted else prep.prompt_estimate
    completion = sum(r.last.completion_tokens or 0 for r in runs)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion)
