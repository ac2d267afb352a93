"""Continuous batching for llama.cpp: one context, one ``llama_decode`` per step for every live
sequence, chunked prefill, sampling in llama.cpp's sampler chain, prompt-prefix reuse.

Each step puts the last sampled token of every decoding sequence into one batch, together with
prompt chunks of sequences still prefilling (schedule.py), asks for logits only where a token
will be sampled, decodes once and samples each sequence with its own llama.cpp sampler chain
(penalties, grammar, top-k, top-p, min-p, temperature, seeded draw). A request with a guide
has a GBNF grammar sampler in its chain (it ends when the grammar is complete: only end of
generation is allowed then); a request that asked for log-probabilities gets the log-softmax of
the raw logits for its sampled token (and the top alternatives), others pay nothing. The KV cache is one unified pool of
cells; finished sequences keep their KV so that a new request starts from the longest cached
prefix (slots.py). The loop runs on its own thread; ctypes releases the GIL inside llama.cpp, so
Triton's threads keep running while it decodes.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import llama_cpp as L
import numpy as np
from machine import ThreadTuner
from schedule import plan_step
from slots import SlotTable


@dataclass
class Sequence:
    """One generation in flight. The callbacks run on the batcher thread."""

    prompt: list[int]
    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    seed: int
    min_tokens: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    grammar: str | None = None  # GBNF, root rule "root"
    logprobs: bool = False
    top_logprobs: int = 0
    on_token: Callable[["Sequence", int], bool] = lambda s, t: True  # False: stop now
    on_done: Callable[["Sequence", str | None], None] = lambda s, e: None  # e: error text
    is_cancelled: Callable[[], bool] = lambda: False
    reuse_prefix: bool = True  # start from a cached prompt prefix when one exists
    # Batcher state
    slot: int = -1
    pos: int = 0  # tokens of this sequence whose KV is in the cache
    reused: int = 0  # prompt tokens found in the prefix cache
    last: int = -1
    produced: int = 0
    sampler: Any = None
    grammar_sampler: Any = None  # kept out of the chain: tried on the sampled token first
    finish: str = "length"
    tokens: list[int] = field(default_factory=list)
    # The last sampled token's log-probability and top alternatives [(token, logprob)], when asked.
    logprob: float = 0.0
    top: list[tuple[int, float]] = field(default_factory=list)
    submitted: float = 0.0
    first_token_at: float = 0.0

    @property
    def prefilling(self) -> bool:
        return self.pos < len(self.prompt)


@dataclass
class Stats:
    steps: int = 0
    decode_s: float = 0.0
    sample_s: float = 0.0
    callback_s: float = 0.0
    decoded_tokens: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated: int = 0


class Batcher(threading.Thread):
    """Owns a llama.cpp context; decodes up to ``parallel`` requests together until ``stop()``."""

    def __init__(self, model: Any, vocab: Any, *, parallel: int, ctx_per_seq: int, kv_cells: int,
                 n_seq: int, threads: int, n_batch: int = 512, prefill_chunk: int = 256, prefill_alone: bool = True,
                 threads_batch: int | None = None, adapt_threads: bool = True) -> None:
        super().__init__(daemon=True, name="llamacpp-batcher")
        n_seq = max(n_seq, parallel + 1)
        params = L.llama_context_default_params()
        params.n_ctx = kv_cells
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.n_threads = threads
        params.n_threads_batch = threads_batch or threads
        params.kv_unified = True  # one pool of cells: sequences share prefixes without copies
        params.no_perf = False
        self.ctx = L.llama_init_from_model(model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.kv_cells = L.llama_n_ctx(self.ctx)
        self.mem = L.llama_get_memory(self.ctx)
        self.vocab = vocab
        self.n_vocab = L.llama_vocab_n_tokens(vocab)
        self.eog = [t for t in range(self.n_vocab) if L.llama_vocab_is_eog(vocab, t)]
        self.eog_set = frozenset(self.eog)
        self.ctx_per_seq = ctx_per_seq
        self.parallel = parallel
        self.n_batch = n_batch
        self.prefill_chunk = prefill_chunk
        self.prefill_alone = prefill_alone
        self._prefill_turn = False
        self.table = SlotTable(n_seq, self.kv_cells)
        self.active: list[Sequence] = []
        self.waiting: deque[Sequence] = deque()
        self.inbox: queue.Queue[Sequence | None] = queue.Queue()
        self.batch = L.llama_batch_init(n_batch + parallel, 0, 1)
        # Candidate buffers for guided sampling (llama_token_data layout), reused every step.
        self._cand = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        self._cand_ids = np.arange(self.n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self.stats = Stats()
        self.tuner = ThreadTuner(threads if adapt_threads else 1)
        self.threads = threads
        self._running = True

    def submit(self, seq: Sequence) -> None:
        seq.submitted = time.perf_counter()
        self.inbox.put(seq)

    def stop(self) -> None:
        self._running = False
        self.inbox.put(None)
        self.join(timeout=10)
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)

    def perf(self) -> dict[str, float]:
        """llama.cpp's own timings for this context (prompt eval and decode, ms and counts)."""
        d = L.llama_perf_context(self.ctx)
        return {"t_p_eval_ms": d.t_p_eval_ms, "n_p_eval": d.n_p_eval, "t_eval_ms": d.t_eval_ms,
                "n_eval": d.n_eval}

    # The loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        while self._running:
            self._admit(block=not self.active and not self.waiting)
            if self.active:
                self._step()
            elif self.waiting:  # nothing runs and the head cannot start: impossible by design
                self._fail(self.waiting.popleft(), "request does not fit the KV cache")

    def _admit(self, block: bool) -> None:
        while True:
            try:
                seq = self.inbox.get(block=block, timeout=None if block else 0)
            except queue.Empty:
                break
            if seq is None:
                self._running = False
                return
            self.waiting.append(seq)
            block = False
        while self.waiting and len(self.active) < self.parallel:
            seq = self.waiting[0]
            if seq.is_cancelled():
                self.waiting.popleft()
                seq.finish = "cancelled"
                self._done(seq, None)
                continue
            reserve = min(len(seq.prompt) + seq.max_tokens + 1, self.kv_cells)
            try:
                plan = self.table.plan(seq.prompt, reserve, reuse=seq.reuse_prefix)
            except ValueError as exc:
                self.waiting.popleft()
                self._fail(seq, str(exc))
                continue
            if plan is None:
                return
            self.waiting.popleft()
            try:
                self._start(seq, plan, reserve)
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the loop
                self._fail(seq, f"could not start: {exc}")

    def _start(self, seq: Sequence, plan: Any, reserve: int) -> None:
        for s in plan.clear:
            L.llama_memory_seq_rm(self.mem, s, -1, -1)
        if plan.copy_from is not None:
            L.llama_memory_seq_cp(self.mem, plan.copy_from, plan.seq, 0, plan.reuse)
        if plan.trim_from is not None:
            L.llama_memory_seq_rm(self.mem, plan.seq, plan.trim_from, -1)
        self.table.start(plan, seq.prompt, reserve)
        seq.slot, seq.pos, seq.reused = plan.seq, plan.reuse, plan.reuse
        seq.sampler = self._sampler(seq)
        self.stats.reused_tokens += plan.reuse
        self.active.append(seq)

    def _step(self) -> None:
        decoding = [s for s in self.active if not s.prefilling]
        prefilling = [s for s in self.active if s.prefilling]
        if self.prefill_alone and prefilling and decoding:
            # One kind of work per llama_decode, alternating: a prompt evaluated together with
            # other sequences' tokens rounds differently in llama.cpp's kernels, and a near-tie
            # then picks another token, so the same request would answer differently when others
            # run. Prompts are prefilled one at a time, in whole (up to n_batch) chunks.
            self._prefill_turn = not self._prefill_turn
            if self._prefill_turn:
                decoding = []
            else:
                prefilling = []
        if self.prefill_alone:
            prefilling = prefilling[:1]
        takes = plan_step(len(decoding), [len(s.prompt) - s.pos for s in prefilling],
                          self.n_batch, self.n_batch if self.prefill_alone else self.prefill_chunk)
        b = self.batch
        n = 0
        sample_at: list[tuple[Sequence, int]] = []
        for s in decoding:
            self._put(n, s.last, s.pos, s.slot, True)
            sample_at.append((s, n))
            n += 1
        chunks: list[tuple[Sequence, list[int]]] = []
        for s, take in zip(prefilling, takes, strict=True):
            if not take:
                continue
            chunk = s.prompt[s.pos:s.pos + take]
            ends = s.pos + take == len(s.prompt)
            for i, token in enumerate(chunk):
                self._put(n, token, s.pos + i, s.slot, ends and i == take - 1)
                n += 1
            if ends:
                sample_at.append((s, n - 1))
            chunks.append((s, chunk))
        b.n_tokens = n
        t0 = time.perf_counter()
        rc = L.llama_decode(self.ctx, b)
        t1 = time.perf_counter()
        st = self.stats
        st.steps += 1
        st.decode_s += t1 - t0
        st.decoded_tokens += n
        if not chunks and len(self.tuner.options) > 1:
            threads = self.tuner.record(t1 - t0, n)
            if threads != self.threads:
                L.llama_set_n_threads(self.ctx, threads, threads)
                self.threads = threads
        if rc != 0:
            for s in decoding + [c[0] for c in chunks]:
                self._fail(s, f"llama_decode failed ({rc})")
            return
        for s in decoding:
            self.table.extend(s.slot, [s.last])
            s.pos += 1
        for s, chunk in chunks:
            self.table.extend(s.slot, chunk)
            s.pos += len(chunk)
            st.prompt_tokens += len(chunk)
        for s, idx in sample_at:
            t2 = time.perf_counter()
            token = self._sample(s, idx)
            t3 = time.perf_counter()
            st.sample_s += t3 - t2
            self._accept(s, token)
            st.callback_s += time.perf_counter() - t3
        # Cancellation of a request still prefilling (a long prompt spans several steps).
        for s, _chunk in chunks:
            if s.prefilling and s.is_cancelled():
                s.finish = "cancelled"
                self._finish(s, None)

    def _put(self, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        b = self.batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = logits

    def _sample(self, seq: Sequence, idx: int) -> int:
        logprobs = self._logprobs(idx) if seq.logprobs else None
        # min_tokens: no end of generation yet (a grammar decides the end itself: once complete
        # it allows nothing else).
        if seq.produced < seq.min_tokens and self.eog and seq.grammar is None:
            logits = L.llama_get_logits_ith(self.ctx, idx)
            for t in self.eog:
                logits[t] = -float("inf")
        if seq.grammar_sampler is not None:
            token = self._sample_guided(seq, idx)
        else:
            token = L.llama_sampler_sample(seq.sampler, self.ctx, idx)
        if logprobs is not None:
            seq.logprob = float(logprobs[token])
            seq.top = _top(logprobs, seq.top_logprobs)
        return token

    def _candidates(self, idx: int) -> Any:
        """A llama_token_data_array over this output's logits (our reused buffer)."""
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.n_vocab,))
        cand = self._cand
        cand["id"] = self._cand_ids
        cand["logit"] = logits
        cand["p"] = 0.0
        return L.llama_token_data_array(data=cand.ctypes.data_as(L.llama_token_data_p), size=self.n_vocab,
                                        selected=-1, sorted=False)

    def _sample_guided(self, seq: Sequence, idx: int) -> int:
        """Sample without the grammar, keep the token if the grammar allows it, else sample again
        with the grammar over the whole vocabulary (llama.cpp's common sampler does the same:
        the grammar over 49k candidates costs more than the model on a small one). The result
        has the constrained distribution: an allowed token t is kept with p(t), and otherwise
        drawn from p renormalized over the allowed tokens."""
        arr = self._candidates(idx)
        L.llama_sampler_apply(seq.sampler, ctypes.byref(arr))
        token = int(arr.data[arr.selected].id)
        one = self._one
        one["id"], one["logit"], one["p"] = token, 1.0, 0.0
        single = L.llama_token_data_array(data=one.ctypes.data_as(L.llama_token_data_p), size=1,
                                          selected=-1, sorted=False)
        L.llama_sampler_apply(seq.grammar_sampler, ctypes.byref(single))
        if not np.isfinite(one["logit"][0]):  # the grammar rejects it: sample under the grammar
            arr = self._candidates(idx)
            L.llama_sampler_apply(seq.grammar_sampler, ctypes.byref(arr))
            L.llama_sampler_apply(seq.sampler, ctypes.byref(arr))
            token = int(arr.data[arr.selected].id)
        L.llama_sampler_accept(seq.grammar_sampler, token)
        L.llama_sampler_accept(seq.sampler, token)
        return token

    def _logprobs(self, idx: int) -> Any:
        """log-softmax of the raw logits at batch output ``idx`` (before any sampler)."""
        raw = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.n_vocab,))
        logits = raw.astype(np.float64)
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def _accept(self, seq: Sequence, token: int) -> None:
        if seq.is_cancelled():
            seq.finish = "cancelled"
            self._finish(seq, None)
            return
        if token in self.eog_set:
            seq.finish = "stop"
            self._finish(seq, None)
            return
        if not seq.produced:
            seq.first_token_at = time.perf_counter()
        seq.produced += 1
        self.stats.generated += 1
        seq.last = token
        seq.tokens.append(token)
        keep_going = seq.on_token(seq, token)
        if not keep_going:
            seq.finish = "stop"
        if not keep_going or seq.produced >= seq.max_tokens or seq.pos + 1 >= self.ctx_per_seq:
            self._finish(seq, None)

    def _finish(self, seq: Sequence, error: str | None) -> None:
        if seq in self.active:
            self.active.remove(seq)
        if seq.slot >= 0:
            keep = error is None  # a failed decode may have left partial KV behind: drop it
            if not keep:
                L.llama_memory_seq_rm(self.mem, seq.slot, -1, -1)
            self.table.finish(seq.slot, keep=keep)
        if seq.sampler is not None:
            L.llama_sampler_free(seq.sampler)
            seq.sampler = None
        if seq.grammar_sampler is not None:
            L.llama_sampler_free(seq.grammar_sampler)
            seq.grammar_sampler = None
        self._done(seq, error)

    def _fail(self, seq: Sequence, error: str) -> None:
        self._finish(seq, error)

    @staticmethod
    def _done(seq: Sequence, error: str | None) -> None:
        try:
            seq.on_done(seq, error)
        except Exception:  # noqa: BLE001 - a broken sender must not stop the loop
            pass

    def _sampler(self, seq: Sequence) -> Any:
        """The request's llama.cpp sampler chain.

        Repetition penalty counts prompt and output tokens (as Hugging Face, vLLM and TensorRT-LLM
        do); frequency and presence penalties count output tokens only (OpenAI's definition).
        """
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        window = self.ctx_per_seq
        if seq.repeat_penalty != 1.0:
            rep = L.llama_sampler_init_penalties(self.n_vocab, window, seq.repeat_penalty, 0.0, 0.0)
            for token in seq.prompt:
                L.llama_sampler_accept(rep, token)
            L.llama_sampler_chain_add(chain, rep)
        if seq.frequency_penalty or seq.presence_penalty:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_penalties(
                self.n_vocab, window, 1.0, seq.frequency_penalty, seq.presence_penalty))
        if seq.grammar is not None:  # logically here (after the penalties); see _sample_guided
            grammar = L.llama_sampler_init_grammar(self.vocab, seq.grammar.encode("utf-8"), b"root")
            if not grammar:  # checked before queueing; llama-cpp-python itself never checks
                L.llama_sampler_free(chain)
                raise ValueError("the grammar does not parse")
            seq.grammar_sampler = grammar
        if seq.temperature == 0.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        if seq.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(seq.top_k))
        if seq.top_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(seq.top_p, 1))
        if seq.min_p > 0.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(seq.min_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(seq.temperature))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seq.seed & 0xFFFFFFFF))
        return chain



_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def _top(logprobs: Any, k: int) -> list[tuple[int, float]]:
    """The ``k`` likeliest tokens, most likely first (ties: lower id first)."""
    if k <= 0:
        return []
    ids = np.argpartition(-logprobs, k - 1)[:k]
    ids = sorted(ids.tolist(), key=lambda t: (-logprobs[t], t))
    return [(t, float(logprobs[t])) for t in ids]
