"""Prompt-prefix reuse: which llama.cpp sequence id a new request gets, and what it can keep.

One llama.cpp context holds a unified KV cache of ``capacity`` cells shared by ``n_seq``
sequence ids. A finished request leaves its tokens' KV in its sequence id ("idle"); a new request
starts from the longest prefix any sequence holds:

* an idle sequence whose whole content is a prefix of the new prompt (the earlier turns of this
  conversation) is taken over and trimmed, nothing is copied;
* otherwise the prefix (a shared system prompt) is copied into a free or least recently used
  idle sequence with ``llama_memory_seq_cp``, which in a unified cache only tags the same cells
  with one more sequence id (no KV data is copied), so the source keeps its own content.

Memory budget: every running request reserves ``prompt + max_tokens`` cells up front, idle
sequences count their cached tokens, and least recently used idle sequences are evicted until a
new request fits. Cells shared between sequences are counted once per sequence, so the account
over-counts (safe: llama.cpp never runs out of cells). Pure Python: no llama.cpp here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    # Compare in blocks first (prompts share long prefixes); then token by token.
    step = 64
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(slots=True)
class Plan:
    """What to do before prefilling a new request in sequence ``seq``."""

    seq: int
    reuse: int  # prompt tokens whose KV is already in ``seq`` after the steps below
    copy_from: int | None = None  # seq_cp(copy_from -> seq, positions [0, reuse)) after clearing
    clear: list[int] = field(default_factory=list)  # sequences to empty entirely (evicted or reset)
    trim_from: int | None = None  # seq_rm(seq, trim_from, end) when taking a sequence over


class SlotTable:
    """The token content of every sequence id and the KV-cell account (see module docstring)."""

    def __init__(self, n_seq: int, capacity: int, min_reuse: int = 1) -> None:
        if n_seq < 1 or capacity < 1:
            raise ValueError("n_seq and capacity must be positive")
        self.capacity = capacity
        self.min_reuse = min_reuse
        self.tokens: list[list[int]] = [[] for _ in range(n_seq)]
        self.busy = [False] * n_seq
        self.reserved = [0] * n_seq
        self.last_used = [0] * n_seq
        self._clock = 0
        self.hits = 0
        self.reused_tokens = 0

    # The account ---------------------------------------------------------------------------------

    def used(self) -> int:
        """Cells counted against the capacity: reservations of busy sequences, content of idle ones."""
        return sum(r if b else len(t) for r, b, t in zip(self.reserved, self.busy, self.tokens, strict=True))

    def _cost(self, s: int) -> int:
        return self.reserved[s] if self.busy[s] else len(self.tokens[s])

    # Planning ------------------------------------------------------------------------------------

    def plan(self, prompt: list[int], reserve: int, reuse: bool = True) -> Plan | None:
        """Choose a sequence for a request needing ``reserve`` cells; None: wait for a request to end.

        ``reuse=False`` prefills the whole prompt (a seeded sampled request: llama.cpp's kernels
        round a token evaluated alone differently from one inside a batch, so only a prompt
        evaluated the same way gives the same text for the same seed).

        Raises:
            ValueError: ``reserve`` exceeds the whole capacity (the request can never run).
        """
        if reserve > self.capacity:
            raise ValueError(f"request needs {reserve} KV cells; the cache has {self.capacity}")
        idle = [s for s, b in enumerate(self.busy) if not b]
        if not idle:
            return None
        limit = len(prompt) - 1 if reuse else 0  # the last prompt token is always evaluated
        lcp = [min(common_prefix(t, prompt), limit) for t in self.tokens]
        best = max(range(len(lcp)), key=lambda s: (lcp[s], not self.busy[s], self.last_used[s]))
        reuse = lcp[best] if lcp[best] >= self.min_reuse else 0
        if reuse and not self.busy[best] and reuse == len(self.tokens[best]):
            # A continuation of what this idle sequence holds: take it over, nothing to copy.
            plan = Plan(seq=best, reuse=reuse)
        else:
            target = self._victim(idle, keep=best if reuse else None)
            plan = Plan(seq=target, reuse=reuse, copy_from=best if reuse else None, clear=[target])
            if reuse and best == target:  # the only idle sequence is the source: trim it instead
                plan = Plan(seq=best, reuse=reuse, trim_from=reuse)
        if plan.reuse and plan.copy_from is None and plan.trim_from is None and len(self.tokens[plan.seq]) > reuse:
            plan.trim_from = reuse
        if not self._make_room(plan, reserve):
            return None
        return plan

    def _victim(self, idle: list[int], keep: int | None) -> int:
        """An empty idle sequence if any, else the least recently used idle one (not ``keep``)."""
        empty = [s for s in idle if not self.tokens[s]]
        if empty:
            return empty[0]
        others = [s for s in idle if s != keep] or idle
        return min(others, key=lambda s: self.last_used[s])

    def _make_room(self, plan: Plan, reserve: int) -> bool:
        """Evict least recently used idle sequences until ``reserve`` fits; False if it never will."""
        protected = {plan.seq} | ({plan.copy_from} if plan.copy_from is not None else set())
        after = {s: 0 for s in plan.clear}
        after[plan.seq] = 0  # the target's own content becomes part of its reservation

        def total() -> int:
            return sum(after.get(s, self._cost(s)) for s in range(len(self.tokens)))

        candidates = sorted((s for s, b in enumerate(self.busy) if not b and s not in protected and self.tokens[s]),
                            key=lambda s: self.last_used[s])
        while total() + reserve > self.capacity:
            if candidates:
                victim = candidates.pop(0)
                after[victim] = 0
                plan.clear.append(victim)
                continue
            if plan.copy_from is not None and not self.busy[plan.copy_from] and plan.copy_from not in after:
                # Last resort: drop the source too and prefill from scratch.
                after[plan.copy_from] = 0
                plan.clear.append(plan.copy_from)
                plan.copy_from, plan.reuse = None, 0
                continue
            return False
        return True

    # Bookkeeping from the batcher -----------------------------------------------------------------

    def start(self, plan: Plan, prompt: list[int], reserve: int) -> None:
        """The plan was carried out: ``plan.seq`` holds ``prompt[:plan.reuse]`` and is busy."""
        for s in plan.clear:
            self.tokens[s] = []
        self.tokens[plan.seq] = list(prompt[:plan.reuse])
        self.busy[plan.seq] = True
        self.reserved[plan.seq] = reserve
        self._touch(plan.seq)
        if plan.copy_from is not None:
            self._touch(plan.copy_from)
        if plan.reuse:
            self.hits += 1
            self.reused_tokens += plan.reuse

    def extend(self, seq: int, tokens: list[int]) -> None:
        """These tokens' KV was written to ``seq`` by a decode."""
        self.tokens[seq].extend(tokens)

    def finish(self, seq: int, keep: bool = True) -> None:
        """The request in ``seq`` ended; its KV stays cached unless ``keep`` is false (then the
        batcher also removes it from llama.cpp)."""
        self.busy[seq] = False
        self.reserved[seq] = 0
        if not keep:
            self.tokens[seq] = []
        self._touch(seq)

    def _touch(self, seq: int) -> None:
        self._clock += 1
        self.last_used[seq] = self._clock
