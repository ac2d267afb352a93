"""Continuous batching for llama.cpp: one context, several sequences decoded together per step.

On two cores a second llama.cpp instance competes for the same cores with spinning threads;
decoding all live sequences in one ``llama_decode`` call instead keeps one thread pool busy and
makes the per-step cost grow slowly with the number of sequences.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import llama_cpp as L


@dataclass
class Sequence:
    """One generation in flight. The callbacks run on the batcher thread."""

    prompt: list[int]
    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    seed: int
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    on_token: Callable[["Sequence", int], bool] = lambda s, t: True  # False: stop now
    on_done: Callable[["Sequence", str | None], None] = lambda s, e: None  # e: error text
    is_cancelled: Callable[[], bool] = lambda: False
    # Batcher state
    slot: int = -1
    pos: int = 0
    last: int = -1
    produced: int = 0
    sampler: Any = None
    finish: str = "length"
    tokens: list[int] = field(default_factory=list)


class Batcher(threading.Thread):
    """Owns a llama.cpp context with ``slots`` sequences; runs until ``stop()``."""

    def __init__(self, model: Any, vocab: Any, *, slots: int, ctx_per_slot: int, threads: int,
                 n_batch: int = 512) -> None:
        super().__init__(daemon=True, name="llamacpp-batcher")
        params = L.llama_context_default_params()
        params.n_ctx = slots * ctx_per_slot
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = slots
        params.n_threads = threads
        params.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.mem = L.llama_get_memory(self.ctx)
        self.vocab = vocab
        self.n_vocab = L.llama_vocab_n_tokens(vocab)
        self.ctx_per_slot = ctx_per_slot
        self.n_batch = n_batch
        self.free = list(range(slots))
        self.active: list[Sequence] = []
        self.inbox: queue.Queue[Sequence | None] = queue.Queue()
        self.batch = L.llama_batch_init(max(n_batch, slots), 0, 1)
        self._running = True

    def submit(self, seq: Sequence) -> None:
        self.inbox.put(seq)

    def stop(self) -> None:
        self._running = False
        self.inbox.put(None)
        self.join(timeout=10)
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)

    # The loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        while self._running:
            self._admit(block=not self.active)
            if self.active:
                self._step()

    def _admit(self, block: bool) -> None:
        while self.free:
            try:
                seq = self.inbox.get(block=block, timeout=None if block else 0)
            except queue.Empty:
                return
            if seq is None:
                self._running = False
                return
            block = False
            seq.slot = self.free.pop()
            try:
                self._prefill(seq)
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the loop
                self._finish(seq, f"prefill failed: {exc}")

    def _fill(self, items: list[tuple[int, int, int, bool]]) -> None:
        b = self.batch
        for i, (token, pos, seq_id, logits) in enumerate(items):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_id
            b.logits[i] = logits
        b.n_tokens = len(items)

    def _prefill(self, seq: Sequence) -> None:
        seq.sampler = self._sampler(seq)
        prompt = seq.prompt
        for start in range(0, len(prompt), self.n_batch):
            chunk = prompt[start:start + self.n_batch]
            last_chunk = start + len(chunk) == len(prompt)
            self._fill([(t, start + i, seq.slot, last_chunk and i == len(chunk) - 1)
                        for i, t in enumerate(chunk)])
            if L.llama_decode(self.ctx, self.batch) != 0:
                raise RuntimeError("llama_decode failed during prefill")
        seq.pos = len(prompt)
        self.active.append(seq)
        self._accept(seq, L.llama_sampler_sample(seq.sampler, self.ctx, len(chunk) - 1))

    def _step(self) -> None:
        live = list(self.active)
        self._fill([(s.last, s.pos, s.slot, True) for s in live])
        if L.llama_decode(self.ctx, self.batch) != 0:
            for seq in live:
                self._finish(seq, "llama_decode failed (context full)")
            return
        for i, seq in enumerate(live):
            seq.pos += 1
            self._accept(seq, L.llama_sampler_sample(seq.sampler, self.ctx, i))

    def _accept(self, seq: Sequence, token: int) -> None:
        if seq.is_cancelled():
            seq.finish = "cancelled"
            self._finish(seq, None)
            return
        if L.llama_vocab_is_eog(self.vocab, token):
            seq.finish = "stop"
            self._finish(seq, None)
            return
        seq.produced += 1
        seq.last = token
        seq.tokens.append(token)
        keep_going = seq.on_token(seq, token)
        if not keep_going:
            seq.finish = "stop"
        if (not keep_going or seq.produced >= seq.max_tokens
                or seq.pos + 1 >= self.ctx_per_slot):
            self._finish(seq, None)

    def _finish(self, seq: Sequence, error: str | None) -> None:
        if seq in self.active:
            self.active.remove(seq)
        L.llama_memory_seq_rm(self.mem, seq.slot, -1, -1)
        if seq.sampler is not None:
            L.llama_sampler_free(seq.sampler)
            seq.sampler = None
        self.free.append(seq.slot)
        try:
            seq.on_done(seq, error)
        except Exception:  # noqa: BLE001 - a broken sender must not stop the loop
            pass

    def _sampler(self, seq: Sequence) -> Any:
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if (seq.repeat_penalty, seq.frequency_penalty, seq.presence_penalty) != (1.0, 0.0, 0.0):
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_penalties(
                64, seq.repeat_penalty, seq.frequency_penalty, seq.presence_penalty))
        if seq.temperature == 0.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        if seq.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(seq.top_k))
        if seq.top_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(seq.top_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(seq.temperature))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seq.seed))
        return chain
