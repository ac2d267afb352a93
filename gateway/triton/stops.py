"""Stop sequences on streamed text: cut at the first one, hold back a tail that may start one.

NVIDIA's TensorRT-LLM models stop generating on a stop word but keep it in ``text_output``
(the BLS trims after it, not before it), while OpenAI clients expect the text to end before the
stop sequence. Models that already cut (the LLM API model, our CPU models) pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopTrimmer:
    """Feed text pieces in order; get back what may be sent now."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.hit = False
        self._held = ""

    def push(self, text: str) -> str:
        """The part of ``held + text`` that is safe to send; sets ``hit`` at a stop sequence."""
        if self.hit:
            return ""
        if not self.stops:
            return text
        buf = self._held + text
        found = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if found:
            self.hit, self._held = True, ""
            return buf[:min(found)]
        keep = self._partial_tail(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep]

    def flush(self) -> str:
        """At the end of the stream: the held-back tail was not a stop sequence after all."""
        held, self._held = self._held, ""
        return "" if self.hit else held

    def _partial_tail(self, buf: str) -> int:
        """Length of the longest end of ``buf`` that is a proper prefix of a stop sequence."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:k]):
                    best = k
                    break
        return best
