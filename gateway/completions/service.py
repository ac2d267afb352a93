"""Legacy completions: OpenAI request -> prompts as they are (no chat template) -> backend deltas
-> one response or SSE chunks, ``n`` generations per prompt run at once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

import msgspec

from gateway.auth.principal import Admission, Guard, Principal
from gateway.backends.base import Backend, Delta, GenerationRequest
from gateway.backends.fanout import interleave
from gateway.catalog import ModelCatalog
from gateway.completions.choices import ChoiceRun, usage
from gateway.completions.logprobs import LegacyLogprobs
from gateway.completions.params import MAX_CHOICES, CompletionParams, check_params
from gateway.completions.prompts import prompt_texts
from gateway.completions.protocol import Completion, CompletionChoice, CompletionRequest, CompletionUsage
from gateway.errors import GatewayError, InvalidRequestError
from gateway.http.disconnect import unless_cancelled
from gateway.http.sse import DONE, encode_event, error_event
from gateway.registry import ModelEntry
from gateway.sampling import fit_context
from gateway.tokens import Tokenizers

log = logging.getLogger("chungus.completions")

OBJECT = "text_completion"
# Prompts longer than this in all (characters) are tokenized on a worker thread.
OFF_LOOP_CHARS = 16_384
_SEEDS = 2**64


@dataclass(slots=True)
class Prepared:
    """A validated, admitted completion request, ready to run."""

    request: CompletionRequest
    entry: ModelEntry
    params: CompletionParams
    prompts: list[str]
    estimates: list[int]  # per prompt: the gateway's token count (or a character estimate)
    generations: list[GenerationRequest]  # one per choice, in choice index order
    admission: Admission
    completion_id: str
    created: int

    def runs(self) -> list[ChoiceRun]:
        n, logprobs = self.params.n, self.params.logprobs
        return [ChoiceRun(index=i, prompt_index=i // n,
                          echo=self.prompts[i // n] if self.params.echo else "",
                          logprobs=LegacyLogprobs(logprobs) if logprobs is not None else None)
                for i in range(len(self.generations))]


class CompletionService:
    """OpenAI legacy completion semantics on top of a Backend; knows nothing of tensors or HTTP."""

    def __init__(self, catalog: ModelCatalog, backend: Backend, guard: Guard, tokens: Tokenizers) -> None:
        self.catalog = catalog
        self.backend = backend
        self.guard = guard
        self.tokens = tokens

    async def prepare(self, principal: Principal, req: CompletionRequest, request_id: str) -> Prepared:
        """Validate, admit on a cheap estimate, count the prompts' tokens, check the context.

        Admission reserves every choice's ``max_tokens`` (prompts x n x max_tokens) plus the
        prompts; tokenizing runs after it, off the event loop when the prompts are large.

        Raises:
            GatewayError: any refusal, with its HTTP status.
        """
        entry = await self.catalog.resolve(req.model)
        if entry.kind != "chat":
            raise InvalidRequestError(
                f"Model '{entry.id}' is an {entry.kind} model; it cannot do completions",
                param="model", code="invalid_model_type")
        params = check_params(req, entry)
        prompts = await self._prompts(req, entry, MAX_CHOICES // params.n)
        max_tokens = params.sampling.max_tokens
        estimates = [len(p) // 4 + 1 for p in prompts]
        reserve = sum(estimates) + len(prompts) * params.n * max_tokens
        admission = await self.guard.admit(principal, entry, reserve)
        try:
            if sum(len(p) for p in prompts) > OFF_LOOP_CHARS:
                counts = await asyncio.to_thread(self._counts, entry, prompts)
            else:
                counts = self._counts(entry, prompts)
            for count in counts:
                _fit(entry, count, max_tokens)
        except BaseException:
            await admission.finish(0, 0)
            raise
        generations = _generations(req, entry, params, prompts, counts, request_id)
        estimates = [c if c is not None else e for c, e in zip(counts, estimates, strict=True)]
        return Prepared(req, entry, params, prompts, estimates, generations, admission,
                        f"cmpl-{uuid.uuid4().hex}", int(time.time()))

    async def _prompts(self, req: CompletionRequest, entry: ModelEntry, max_prompts: int) -> list[str]:
        if isinstance(req.prompt, list) and req.prompt and not isinstance(req.prompt[0], str):
            # Token ids: the tokenizer loads and decodes on a worker thread, off the event loop.
            prompts = await asyncio.to_thread(prompt_texts, req.prompt, entry, self.tokens, max_prompts)
        else:
            prompts = prompt_texts(req.prompt, entry, self.tokens, max_prompts)
        if entry.vision and any(entry.image_token in p for p in prompts):
            raise InvalidRequestError(f"the prompt may not contain the image token "
                                      f"'{entry.image_token}': completions take no images", param="prompt")
        return prompts

    def _counts(self, entry: ModelEntry, prompts: list[str]) -> list[int | None]:
        # As chat counts: the LLM API model adds the tokenizer's special tokens (its BOS); the
        # other models add theirs themselves, and report the real count at the end.
        return [self.tokens.count(entry, p, special=entry.contract == "llmapi") for p in prompts]

    async def complete(self, prep: Prepared) -> Completion:
        """Run every choice to the end and build the non-streaming response."""
        runs = prep.runs()
        items = self._start(prep)
        try:
            async for index, delta in items:
                runs[index].take(delta, prep.entry.id)
        finally:
            await unless_cancelled(_close(items, prep, runs))
        return Completion(id=prep.completion_id, created=prep.created, model=prep.entry.id,
                          choices=[run.choice() for run in runs], usage=usage(runs, prep.estimates))

    async def stream(self, prep: Prepared) -> AsyncIterator[bytes]:
        """Start the stream; deltas are awaited (and checked) here until the first chunk, so
        early errors keep their status.

        Returns:
            An async iterator of SSE-encoded bytes, ending with ``data: [DONE]``.
        """
        runs = prep.runs()
        items = self._start(prep)
        first: CompletionChoice | None = None
        try:
            while first is None:
                index, delta = await anext(items)
                first = runs[index].take(delta, prep.entry.id)
        except StopAsyncIteration:
            pass
        except BaseException:
            await _close(items, prep, runs)
            raise
        return self._events(prep, runs, first, items)

    def _start(self, prep: Prepared) -> AsyncGenerator[tuple[int, Delta], None]:
        return interleave([self.backend.generate(g) for g in prep.generations])

    async def _events(self, prep: Prepared, runs: list[ChoiceRun], first: CompletionChoice | None,
                      items: AsyncGenerator[tuple[int, Delta], None]) -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield self._chunk(prep, first, runs)
            async for index, delta in items:
                choice = runs[index].take(delta, prep.entry.id)
                if choice is not None:
                    yield self._chunk(prep, choice, runs)
            for run in runs:
                if run.finish is None:
                    yield self._chunk(prep, run.ended(), runs)
            options = prep.request.stream_options
            if options is not None and options.include_usage:
                yield encode_event(self._completion(prep, [], usage(runs, prep.estimates)))
            yield DONE
        except GatewayError as exc:
            yield error_event(exc)
            yield DONE
        except Exception:
            log.exception("stream %s failed after the first byte", prep.completion_id)
            yield error_event(None)
            yield DONE
        finally:
            await unless_cancelled(_close(items, prep, runs))

    def _chunk(self, prep: Prepared, choice: CompletionChoice, runs: list[ChoiceRun]) -> bytes:
        # The chunk that ends the last choice carries the usage, as chat's last chunk does.
        last = choice.finish_reason is not None and all(r.finish is not None for r in runs)
        return encode_event(self._completion(prep, [choice], usage(runs, prep.estimates) if last else None))

    @staticmethod
    def _completion(prep: Prepared, choices: list[CompletionChoice],
                    use: CompletionUsage | None) -> Completion:
        return Completion(id=prep.completion_id, object=OBJECT, created=prep.created,
                          model=prep.entry.id, choices=choices,
                          usage=use if use is not None else msgspec.UNSET)


def _generations(req: CompletionRequest, entry: ModelEntry, params: CompletionParams, prompts: list[str],
                 counts: list[int | None], request_id: str) -> list[GenerationRequest]:
    """One backend request per choice, in choice index order (prompt i, choice j: i * n + j)."""
    sampling = params.sampling
    base = GenerationRequest(
        model=entry, prompt="", max_tokens=sampling.max_tokens, stream=bool(req.stream),
        temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
        stop=sampling.stop, frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty, repetition_penalty=req.repetition_penalty,
        min_tokens=req.min_tokens, request_id=request_id, logprobs=params.logprobs is not None,
        top_logprobs=params.logprobs or 0)
    return [replace(base, prompt=prompt, prompt_tokens=count, seed=_seed(req.seed, j))
            for prompt, count in zip(prompts, counts, strict=True) for j in range(params.n)]


def _fit(entry: ModelEntry, prompt_tokens: int | None, max_tokens: int) -> None:
    try:
        fit_context(entry, prompt_tokens, max_tokens, True)
    except InvalidRequestError as exc:  # the shared check speaks of chat's messages
        raise InvalidRequestError(exc.message.replace("messages", "prompt"), param="prompt",
                                  code=exc.code) from None


def _seed(seed: int | None, choice: int) -> int | None:
    """Choice j of a seeded request runs with seed + j (kept a signed 64-bit integer)."""
    if seed is None:
        return None
    return (seed + choice + 2**63) % _SEEDS - 2**63


async def _close(items: AsyncGenerator[tuple[int, Delta], None], prep: Prepared,
                 runs: list[ChoiceRun]) -> None:
    """Stop every backend call, then bill what was generated and give the limits back."""
    try:
        await items.aclose()
    finally:
        use = usage(runs, prep.estimates)
        await prep.admission.finish(use.prompt_tokens, use.completion_tokens)
