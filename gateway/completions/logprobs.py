"""Per-token log-probabilities from the backend -> OpenAI's legacy completions ``logprobs`` object.

``text_offset`` is each token's character offset in the choice's text, counted across stream
chunks (as NVIDIA's Triton frontend shifts them): a token that holds only part of a UTF-8
character starts where that character starts.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Sequence

from gateway.backends.base import TokenLogprob
from gateway.completions.protocol import CompletionLogprobs

# OpenAI's logprob for "not within the top 20"; JSON has no -Infinity.
FLOOR = -9999.0
MAX_LOGPROBS = 5  # OpenAI's limit on the legacy ``logprobs`` parameter


def _finite(value: float) -> float:
    return value if math.isfinite(value) and value > FLOOR else FLOOR


class LegacyLogprobs:
    """One choice's log-probabilities, chunk by chunk; ``total`` holds every token so far.

    Args:
        top: how many alternatives per token the client asked for (0-5); the sampled token is
            always in its own ``top_logprobs`` entry too, as OpenAI and llama.cpp put it.
        offset: the character offset of the first generated token.
    """

    def __init__(self, top: int, offset: int = 0) -> None:
        self.top = top
        self.offset = offset
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.total = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])

    def add(self, entries: Sequence[TokenLogprob]) -> CompletionLogprobs:
        """The legacy object for ``entries`` (the next tokens of this choice)."""
        piece = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
        for entry in entries:
            piece.text_offset.append(self.offset)
            self.offset += len(self._utf8.decode(entry.bytes or entry.token.encode("utf-8")))
            piece.tokens.append(entry.token)
            piece.token_logprobs.append(_finite(entry.logprob))
            alternatives: dict[str, float] = {}
            for alt in sorted(entry.top, key=lambda a: a.logprob, reverse=True)[: self.top]:
                alternatives.setdefault(alt.token, _finite(alt.logprob))
            alternatives.setdefault(entry.token, _finite(entry.logprob))
            piece.top_logprobs.append(alternatives)
        total = self.total
        total.tokens += piece.tokens
        total.token_logprobs += piece.token_logprobs
        total.top_logprobs += piece.top_logprobs
        total.text_offset += piece.text_offset
        return piece
