"""Completions' own parameter checks on top of the shared sampling checks."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.completions.logprobs import MAX_LOGPROBS
from gateway.completions.protocol import DEFAULT_MAX_TOKENS, CompletionRequest
from gateway.registry import ModelEntry
from gateway.sampling import SamplingParams, bad, check_sampling

MAX_N = 16  # choices per prompt
MAX_CHOICES = 64  # prompts x n in one request: each is one concurrent generation


@dataclass(frozen=True, slots=True)
class CompletionParams:
    sampling: SamplingParams
    n: int
    logprobs: int | None  # None: not asked for; 0-5 alternatives per token
    echo: bool


def check_params(req: CompletionRequest, entry: ModelEntry) -> CompletionParams:
    """Validate a completion request's parameters (the prompt is checked on its own).

    Raises:
        InvalidRequestError: with ``param`` naming the offending field.
    """
    if req.suffix:
        raise bad("suffix is not supported by this server (no model here fills in the middle)",
                  "suffix")
    if req.logit_bias:
        raise bad("logit_bias is not supported by this server", "logit_bias")
    n = 1 if req.n is None else req.n
    if not 1 <= n <= MAX_N:
        raise bad(f"{n} is not a valid n: it must be between 1 and {MAX_N}", "n")
    if req.best_of is not None and req.best_of != n:
        raise bad("best_of is not supported by this server: leave it out or set it equal to n",
                  "best_of")
    if req.logprobs is not None and not 0 <= req.logprobs <= MAX_LOGPROBS:
        raise bad(f"{req.logprobs} is not a valid logprobs: it must be between 0 and "
                  f"{MAX_LOGPROBS}", "logprobs")
    echo = bool(req.echo)
    if echo and req.logprobs is not None:
        # OpenAI would score the prompt's tokens too; no backend here returns prompt logprobs.
        raise bad("echo cannot be combined with logprobs on this server (the model servers do not "
                  "score prompt tokens)", "logprobs")
    if req.max_tokens is None:  # null means OpenAI's default, as omitting it does
        req.max_tokens = DEFAULT_MAX_TOKENS
    sampling = check_sampling(req, entry)
    return CompletionParams(sampling, n, req.logprobs, echo)
