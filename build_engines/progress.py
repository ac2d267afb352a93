"""A small progress display for long build steps: one line per step with its duration."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


class Progress:
    """Prints ``[n] step ...`` when a step starts and ``done in X s`` when it ends."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.count = 0

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.count += 1
        start = time.monotonic()
        self._say(f"[{self.count}] {what} ...")
        try:
            yield
        except BaseException:
            self._say(f"[{self.count}] {what}: FAILED after {time.monotonic() - start:.1f}s")
            raise
        self._say(f"[{self.count}] {what}: done in {time.monotonic() - start:.1f}s")

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.stream, flush=True)
