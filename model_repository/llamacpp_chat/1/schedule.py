"""Which tokens go into the next ``llama_decode``: every decoding sequence's last token, then
prompt chunks of the sequences still prefilling, oldest first. Pure Python, no llama.cpp.

A prompt alone gets the whole batch. While other sequences are decoding, at most
``prefill_chunk`` prompt tokens join their step, so a long prompt costs the running streams a
bounded stall per token instead of its whole prefill at once.
"""

from __future__ import annotations


def plan_step(n_decoding: int, prefill_left: list[int], n_batch: int, prefill_chunk: int) -> list[int]:
    """Prompt tokens to take from each prefilling sequence (same order) in this step.

    Args:
        n_decoding: sequences that put one token each in this step.
        prefill_left: prompt tokens each prefilling sequence still has to evaluate (FIFO order).
        n_batch: llama.cpp's batch size (tokens in one decode call).
        prefill_chunk: prompt tokens per step while any sequence is decoding.
    """
    room = max(0, n_batch - n_decoding)
    if n_decoding:
        room = min(room, max(1, prefill_chunk))
    out = []
    for left in prefill_left:
        take = min(left, room)
        out.append(take)
        room -= take
    return out
