"""Turn a stream of token bytes into safe text deltas: whole UTF-8 characters, stop strings cut."""

from __future__ import annotations


class TextStream:
    """Accumulates token bytes; yields text that is complete UTF-8 and cannot start a stop string.

    A stop string is never emitted, nor is anything after it. Text that could be the start of a
    stop string is held back until it is known not to be one.
    """

    def __init__(self, stop: list[str] | None = None) -> None:
        self.stop = [s for s in (stop or []) if s]
        self._pending_bytes = b""
        self._pending_text = ""
        self.stopped = False

    def push(self, data: bytes) -> str:
        """Add the bytes of one token; return the text that is safe to send now."""
        if self.stopped:
            return ""
        self._pending_bytes += data
        text, self._pending_bytes = _split_utf8(self._pending_bytes)
        self._pending_text += text
        return self._release(final=False)

    def flush(self) -> str:
        """End of generation: release what is held back (an incomplete character is dropped)."""
        if self.stopped:
            return ""
        self._pending_bytes = b""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        text = self._pending_text
        cut = _first_stop(text, self.stop)
        if cut is not None:
            self.stopped = True
            self._pending_text = ""
            return text[:cut]
        keep = 0 if final else _partial_stop_suffix(text, self.stop)
        out = text[: len(text) - keep]
        self._pending_text = text[len(text) - keep :]
        return out


def _split_utf8(data: bytes) -> tuple[str, bytes]:
    """Decode the longest complete UTF-8 prefix; return it and the incomplete tail."""
    for tail in range(0, min(4, len(data) + 1)):
        head = data[: len(data) - tail] if tail else data
        try:
            return head.decode("utf-8"), data[len(head) :]
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:
                # Invalid bytes in the middle, not a cut character: replace them.
                return data.decode("utf-8", errors="replace"), b""
    return data.decode("utf-8", errors="replace"), b""


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _partial_stop_suffix(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
