"""Which Triton endpoint serves a request: prefix affinity with bounded load, or least outstanding.

Affinity is rendezvous (highest-random-weight) hashing of a key taken from the start of the
rendered prompt: every gateway replica orders the ready endpoints the same way for the same key,
without sharing state, so one conversation's turns (and prompts that share a long system prompt)
land where their KV-cache prefix already is. Bounded load (Mirrokni, Thorup and Zadimoghaddam,
"Consistent Hashing with Bounded Loads") keeps a popular prefix from piling onto one endpoint:
an endpoint takes the request only while its outstanding requests for the model stay under
``ceil(load_factor * (total + 1) / n)``; otherwise the next endpoint in hash order does.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Literal

Policy = Literal["affinity", "least_outstanding"]

# Why 256 characters: the key must lie inside the first turn's rendered prompt, or turn 1 hashes
# differently from turns 2+ (each later prompt extends the one before). A chat template's framing
# plus a system prompt and the first user message is usually longer than 256 characters, and
# 256 characters (about 60 tokens) still reach past the framing into what tells conversations
# apart. Prompts that share a longer system prompt share a key, which is what the KV cache wants;
# bounded load spreads them.
DEFAULT_PREFIX_CHARS = 256
DEFAULT_LOAD_FACTOR = 1.25


def affinity_key(prompt: str, prefix_chars: int) -> bytes:
    """The routing key of a prompt: a digest of its first ``prefix_chars`` characters."""
    return hashlib.blake2b(prompt[:prefix_chars].encode(), digest_size=16).digest()


def _score(key: bytes, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(key + name.encode(), digest_size=8).digest(), "big")


def rendezvous_order(key: bytes, names: Sequence[str]) -> list[int]:
    """Indices of ``names`` from the highest rendezvous score for ``key`` down.

    Removing an endpoint moves only the keys it ranked first; adding one takes only the keys it
    now ranks first.
    """
    return sorted(range(len(names)), key=lambda i: (-_score(key, names[i]), names[i]))


def capacity(total: int, n: int, load_factor: float) -> int:
    """The most requests one of ``n`` endpoints may hold once this one is placed (at least 1)."""
    return max(1, math.ceil(load_factor * (total + 1) / n))


def choose_affinity(key: bytes, names: Sequence[str], loads: Sequence[int],
                    load_factor: float) -> int:
    """The first endpoint in ``key``'s hash order whose load is under the bound.

    Args:
        key: from ``affinity_key``.
        names: endpoint identities (``address:port``), the same on every gateway replica.
        loads: outstanding requests for the model on each endpoint.
        load_factor: 1 + epsilon; an endpoint may hold this multiple of the average.

    Returns:
        An index into ``names``.
    """
    cap = capacity(sum(loads), len(names), load_factor)
    order = rendezvous_order(key, names)
    for i in order:
        if loads[i] < cap:
            return i
    return min(order, key=lambda i: loads[i])  # unreachable when load_factor >= 1


class Router:
    """Chooses among the endpoints where a model is ready.

    Args:
        policy: ``affinity`` (prefix affinity with bounded load) or ``least_outstanding``.
        prefix_chars: how much of the prompt makes the affinity key.
        load_factor: bounded load's 1 + epsilon (at least 1).
    """

    def __init__(self, policy: Policy = "affinity", *, prefix_chars: int = DEFAULT_PREFIX_CHARS,
                 load_factor: float = DEFAULT_LOAD_FACTOR) -> None:
        if policy not in ("affinity", "least_outstanding"):
            raise ValueError(f"unknown routing policy {policy!r}")
        if prefix_chars < 1 or load_factor < 1.0:
            raise ValueError("prefix_chars must be >= 1 and load_factor >= 1")
        self.policy = policy
        self.prefix_chars = prefix_chars
        self.load_factor = load_factor
        self._turn = itertools.count()

    def choose(self, names: Sequence[str], loads: Sequence[int], prompt: str = "") -> int:
        """An index into ``names`` (not empty); without a prompt, least outstanding."""
        if self.policy == "affinity" and prompt:
            return choose_affinity(affinity_key(prompt, self.prefix_chars), names, loads,
                                   self.load_factor)
        return self.least_outstanding(loads)

    def least_outstanding(self, loads: Sequence[int]) -> int:
        """The least loaded; ties rotate, so one-at-a-time traffic still spreads."""
        start = next(self._turn) % len(loads)
        order = [(start + k) % len(loads) for k in range(len(loads))]
        return min(order, key=lambda i: loads[i])
