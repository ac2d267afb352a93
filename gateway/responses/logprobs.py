"""Chat's token log-probabilities -> the Responses API's (``include: message.output_text.logprobs``,
``top_logprobs``): ``LogProb`` objects in the output text, ``ResponseLogProb`` ones on deltas."""

from __future__ import annotations

from typing import Any

INCLUDE = "message.output_text.logprobs"
MAX_TOP_LOGPROBS = 20


def _bytes(entry: dict[str, Any]) -> list[int]:
    raw = entry.get("bytes")
    return list(raw) if raw is not None else list(str(entry.get("token", "")).encode())


def output_logprobs(content: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Chat's ``logprobs.content`` -> the output text's ``logprobs`` (with bytes)."""
    return [{"token": e["token"], "logprob": e["logprob"], "bytes": _bytes(e),
             "top_logprobs": [{"token": t["token"], "logprob": t["logprob"], "bytes": _bytes(t)}
                              for t in e.get("top_logprobs") or ()]}
            for e in content or ()]


def delta_logprobs(content: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Chat's ``logprobs.content`` -> a text delta event's ``logprobs``."""
    return [{"token": e["token"], "logprob": e["logprob"],
             "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]}
                              for t in e.get("top_logprobs") or ()]}
            for e in content or ()]


def choice_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A chat choice's (or chunk choice's) ``logprobs.content``, if any."""
    logprobs = choice.get("logprobs")
    return logprobs.get("content") if isinstance(logprobs, dict) else None
