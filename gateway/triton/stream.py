"""Triton stream responses -> resolved deltas: whole characters, stop sequences cut, the finish
reason decided, and running token counts on every delta.

Two kinds of ``text_output`` arrive (the registry's ``text_mode`` says which):

- ``delta``: each response carries new bytes (our CPU models, NVIDIA's BLS without
  ``accumulate_tokens``); a character split across responses is held until it is whole.
- ``cumulative``: each response carries the whole text so far (BLS with ``accumulate_tokens``,
  the LLM API model). NVIDIA's postprocessing decodes every token at every step, so a character
  split across tokens shows first as U+FFFD and later as itself: the new text is then not an
  extension of the old. We emit from the longest common prefix with what was sent, and hold a
  trailing U+FFFD back until it resolves or the stream ends.

Counts: a model's ``num_input_tokens`` wins over the gateway's own prompt count;
``num_output_tokens`` is per response (summed). Where a model gives no output counts, the running
count is the number of responses (each streamed response carries at least one token) and the
final count comes from the model's tokenizer.

Log-probabilities (``output_log_probs``, one per new token of a response; with our CPU models
also ``output_token_bytes`` and the ``top_log_probs``/``top_token_bytes`` alternatives) are
placed on the delta whose text completes the token: each token covers a byte range of the
generated text, and it goes out with the first delta that reaches its end. Tokens held back with
a partial character or a possible stop sequence wait with their text; tokens after a stop cut
are dropped. Where a model gives no token bytes (NVIDIA's models: one token per streamed
response), a token's text is its response's new text.
"""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from gateway.backends.base import Delta, FinishReason, TokenLogprob, TopLogprob
from gateway.triton.stops import StopTrimmer

REPLACEMENT = "\ufffd"


@dataclass(frozen=True, slots=True)
class Response:
    """What the gateway reads from one Triton stream response."""

    text: bytes = b""
    final: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    # This response's new tokens: their log-probabilities, and bytes where the model gives them.
    log_probs: tuple[float, ...] = ()
    token_bytes: tuple[bytes, ...] | None = None
    top: tuple[tuple[TopLogprob, ...], ...] = ()


def read_response(result: Any) -> Response:
    """Read a ``tritonclient`` ``InferResult`` (its protobuf, without copying tensors twice)."""
    params = result.get_response().parameters
    final = params.get("triton_final_response")
    raw = result.as_numpy("text_output")
    text = b"".join(_as_bytes(x) for x in raw.reshape(-1)) if raw is not None else b""
    output_tokens = _first_int(result.as_numpy("num_output_tokens"))
    log_probs, token_bytes, top = _read_logprobs(result, output_tokens)
    return Response(text=text, final=bool(final is not None and final.bool_param),
                    input_tokens=_first_int(result.as_numpy("num_input_tokens")),
                    output_tokens=output_tokens,
                    finish_reason=_first_str(result.as_numpy("finish_reason")),
                    log_probs=log_probs, token_bytes=token_bytes, top=top)


def _read_logprobs(result: Any, output_tokens: int | None) -> tuple[
        tuple[float, ...], tuple[bytes, ...] | None, tuple[tuple[TopLogprob, ...], ...]]:
    """``output_log_probs`` of the first beam (NVIDIA: ``[1, beams, len]`` padded; ours:
    ``[1, k]``), cut to the response's tokens; our token bytes and top alternatives."""
    values = result.as_numpy("output_log_probs")
    if values is None or values.size == 0:
        return (), None, ()
    first_beam = values.reshape(-1) if values.ndim < 3 else values[0, 0].reshape(-1)
    raw_bytes = result.as_numpy("output_token_bytes")
    token_bytes = None if raw_bytes is None else tuple(_as_bytes(b) for b in raw_bytes.reshape(-1))
    n = len(token_bytes) if token_bytes is not None else len(first_beam)
    if token_bytes is None and output_tokens is not None:
        n = min(n, output_tokens)
    log_probs = tuple(float(v) for v in first_beam[:n])
    top_values, top_bytes = result.as_numpy("top_log_probs"), result.as_numpy("top_token_bytes")
    if top_values is None or top_bytes is None or top_values.size == 0 or n == 0:
        return log_probs, token_bytes, ()
    top_values, top_bytes = top_values.reshape(n, -1), top_bytes.reshape(n, -1)
    top = tuple(tuple(TopLogprob(token=_as_bytes(b).decode("utf-8", "replace"), bytes=_as_bytes(b),
                                 logprob=float(v)) for v, b in zip(row_v, row_b, strict=True))
                for row_v, row_b in zip(top_values, top_bytes, strict=True))
    return log_probs, token_bytes, top


def _first_int(value: npt.NDArray[Any] | None) -> int | None:
    return None if value is None or value.size == 0 else int(value.reshape(-1)[0])


def _first_str(value: npt.NDArray[Any] | None) -> str | None:
    if value is None or value.size == 0:
        return None
    return _as_bytes(value.reshape(-1)[0]).decode("utf-8", "replace") or None


def _as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode("utf-8")


class LogprobAligner:
    """Puts each token's log-probability on the delta whose text completes it (module docstring).

    Offsets are UTF-8 byte positions in the generated text: ``produced`` where the next token
    starts, ``emitted`` how much of it has gone out in deltas.
    """

    def __init__(self) -> None:
        self.produced = 0
        self.emitted = 0
        self._pending: deque[tuple[int, int, TokenLogprob]] = deque()

    def add(self, response: Response, new_bytes: bytes) -> None:
        """A response's tokens; ``new_bytes`` is its new text (for tokens without bytes)."""
        own = response.token_bytes
        for i, value in enumerate(response.log_probs):
            data = own[i] if own is not None else (new_bytes if i == 0 else b"")
            top = response.top[i] if i < len(response.top) else ()
            token = TokenLogprob(token=data.decode("utf-8", "replace"), bytes=data,
                                 logprob=value, top=top)
            self._pending.append((self.produced, self.produced + len(data), token))
            self.produced += len(data)

    def take(self, text: str) -> list[TokenLogprob] | None:
        """The tokens completed once ``text`` is sent (None when none were ever given)."""
        self.emitted += len(text.encode("utf-8"))
        out = []
        while self._pending and self._pending[0][1] <= self.emitted:
            out.append(self._pending.popleft()[2])
        return out

    def rest(self, text: str, cut: bool) -> list[TokenLogprob]:
        """At the end: the tokens that began within the sent text (a model that cut at a stop
        sequence itself still sends the tokens after the cut; they are dropped here too)."""
        self.emitted += len(text.encode("utf-8"))
        out = [t for start, end, t in self._pending
               if start < self.emitted or (start == end == self.emitted and not cut)]
        self._pending.clear()
        return out


class StreamDecoder:
    """Feed ``Response``s in order; get ``Delta``s with text, running counts and, last, the reason.

    Args:
        cumulative: the model sends the whole text so far in each response.
        max_tokens: the request's limit (decides "length" when a model gives no reason).
        stops: stop sequences to cut at (NVIDIA's models keep the stop word in the text).
        prompt_tokens: the gateway's own count of the prompt, if it has one.
        count: counts tokens of generated text, for models that give no output counts.
    """

    def __init__(self, *, cumulative: bool, max_tokens: int, stops: Sequence[str] = (),
                 prompt_tokens: int | None = None,
                 count: Callable[[str], int | None] | None = None) -> None:
        self.cumulative = cumulative
        self.max_tokens = max_tokens
        self.count = count
        self.responses = 0
        self.final = False  # nothing more to read: the model's final response, or a stop sequence
        self.model_done = False  # the model sent its final response
        self.prompt_tokens = prompt_tokens
        self._model_counts = False
        self._output_tokens = 0
        self._reason: str | None = None
        self._stops = StopTrimmer(stops)
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""  # cumulative mode: the model's stable text, all of it sent
        self._last = ""  # cumulative mode: the model's latest text, trailing U+FFFD included
        self._sent: list[str] = []
        self._logprobs: LogprobAligner | None = None  # set by the first response that has them

    @property
    def completion_tokens(self) -> int:
        """The running count of generated tokens."""
        return self._output_tokens if self._model_counts else self.responses

    def feed(self, response: Response) -> Delta | None:
        """One response in; a delta out when there is text to send (``final`` says when to stop)."""
        self.responses += 1
        self.final = response.final
        self.model_done = self.model_done or response.final
        if response.input_tokens is not None:
            self.prompt_tokens = response.input_tokens
        if response.output_tokens is not None:
            self._model_counts = True
            self._output_tokens += response.output_tokens
        if response.finish_reason:
            self._reason = response.finish_reason
        new = self._new_text(response.text)
        if response.log_probs:
            self._logprobs = self._logprobs or LogprobAligner()
            self._logprobs.add(response, response.text if not self.cumulative else new.encode())
        text = self._stops.push(new)
        if self._stops.hit:  # a stop sequence: nothing after it is sent, the call ends
            self.final = True
        if not text:
            return None
        self._sent.append(text)
        return Delta(text=text, prompt_tokens=self.prompt_tokens,
                     completion_tokens=self.completion_tokens,
                     logprobs=self._logprobs.take(text) if self._logprobs else None)

    def _new_text(self, data: bytes) -> str:
        if not self.cumulative:
            return self._utf8.decode(data)
        current = data.decode("utf-8", "replace")
        self._last = current
        stable = current.rstrip(REPLACEMENT)  # a trailing U+FFFD may still become a character
        # Everything up to len(self._text) was sent. Normally the new text extends it (the common
        # prefix is all of it); when a pending character resolved, the U+FFFD was never sent;
        # and if sent text itself changed, only what lies beyond it is new: never send twice.
        if len(stable) <= len(self._text):
            return ""
        new = stable[len(self._text):]
        self._text = stable
        return new

    def finish(self) -> Delta:
        """The last delta: held-back text, the finish reason, the final counts."""
        tail = self._utf8.decode(b"", final=True)
        if self.cumulative and self._last.startswith(self._text):
            tail += self._last[len(self._text):]  # U+FFFD that never resolved: it is the text
        tail = self._stops.push(tail) + self._stops.flush()
        if tail:
            self._sent.append(tail)
        completion = self._final_count()
        logprobs = self._logprobs.rest(tail, self._stops.hit) if self._logprobs else None
        return Delta(text=tail, finish_reason=self._finish_reason(completion),
                     prompt_tokens=self.prompt_tokens, completion_tokens=completion,
                     logprobs=logprobs)

    def _final_count(self) -> int:
        if self._model_counts:
            return self._output_tokens
        counted = self.count("".join(self._sent)) if self.count is not None else None
        return counted if counted is not None else self.responses

    def _finish_reason(self, completion: int) -> FinishReason:
        if self._stops.hit:
            return "stop"
        if self._reason in ("stop", "length"):
            return self._reason  # type: ignore[return-value]  # narrowed by the test above
        return "length" if completion >= self.max_tokens else "stop"
