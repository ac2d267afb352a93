"""Backend per-token logprobs -> OpenAI's ``choices[].logprobs.content`` entries."""

from __future__ import annotations

from gateway.backends.base import TokenLogprob
from gateway.chat.protocol import ChatCompletionTokenLogprob, TopLogprob


def token_logprobs(items: list[TokenLogprob] | None, top: int) -> list[ChatCompletionTokenLogprob]:
    """One entry per generated token, with at most ``top`` alternatives each."""
    return [ChatCompletionTokenLogprob(
        token=t.token, logprob=t.logprob, bytes=list(t.bytes),
        top_logprobs=[TopLogprob(a.token, a.logprob, list(a.bytes)) for a in t.top[:top]])
        for t in items or ()]
