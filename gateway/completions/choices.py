"""One choice's progress (text, log-probabilities, counts) and the usage of all of them.

Choice ``index`` is ``prompt_index * n + j`` (OpenAI's order for a list of prompts, n each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.backends.base import Delta
from gateway.completions.logprobs import LegacyLogprobs
from gateway.completions.protocol import CompletionChoice, CompletionUsage
from gateway.errors import InvalidRequestError


@dataclass(slots=True)
class ChoiceRun:
    """What one generation has produced so far."""

    index: int
    prompt_index: int
    echo: str = ""  # the prompt, sent before the first generated text when ``echo`` is on
    logprobs: LegacyLogprobs | None = None
    parts: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None  # the model's counts, latest first
    completion_tokens: int = 0
    finish: str | None = None
    started: bool = False

    def take(self, delta: Delta, model: str) -> CompletionChoice | None:
        """Record ``delta``; the stream chunk's choice for it (None: nothing to send).

        Raises:
            InvalidRequestError: logprobs were asked for and the model sent text without them.
        """
        if delta.prompt_tokens is not None:
            self.prompt_tokens = delta.prompt_tokens
        if delta.completion_tokens is not None:
            self.completion_tokens = delta.completion_tokens
        text = delta.text
        if not self.started and (text or delta.finish_reason is not None):
            text, self.started = self.echo + text, True
        logprobs = None
        if self.logprobs is not None:
            if delta.text and delta.logprobs is None:
                raise InvalidRequestError(f"model '{model}' cannot return logprobs",
                                          param="logprobs", code="invalid_value")
            logprobs = self.logprobs.add(delta.logprobs or ())
        self.parts.append(text)
        finish = finish_reason(delta) if delta.finish_reason is not None else None
        self.finish = self.finish or finish
        if not text and finish is None and not (logprobs and logprobs.tokens):
            return None
        return CompletionChoice(text=text, index=self.index, logprobs=logprobs, finish_reason=finish)

    def ended(self) -> CompletionChoice:
        """The chunk's choice that closes a generation which ended without a finish reason."""
        self.finish = "stop"
        text, self.started = ("" if self.started else self.echo), True
        self.parts.append(text)
        empty = self.logprobs.add(()) if self.logprobs is not None else None
        return CompletionChoice(text=text, index=self.index, logprobs=empty, finish_reason="stop")

    def choice(self) -> CompletionChoice:
        """The whole choice, for a non-streaming response."""
        text = "".join(self.parts) if self.started else self.echo
        total = self.logprobs.total if self.logprobs is not None else None
        return CompletionChoice(text=text, index=self.index, logprobs=total,
                                finish_reason=self.finish or "stop")


def finish_reason(delta: Delta) -> str:
    """OpenAI's finish reason: ``length`` when the token limit cut the text, else ``stop``."""
    return "length" if delta.finish_reason == "length" else "stop"


def usage(runs: Sequence[ChoiceRun], estimates: Sequence[int]) -> CompletionUsage:
    """Usage over every choice; each prompt counted once however many choices it had.

    A prompt's count is the model's own (from any of its choices) or else the gateway's.
    """
    prompts = list(estimates)
    seen: set[int] = set()
    for run in runs:
        if run.prompt_tokens is not None and run.prompt_index not in seen:
            prompts[run.prompt_index] = run.prompt_tokens
            seen.add(run.prompt_index)
    prompt = sum(prompts)
    completion = sum(run.completion_tokens for run in runs)
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion,
                           total_tokens=prompt + completion)
