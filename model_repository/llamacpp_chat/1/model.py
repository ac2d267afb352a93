"""CPU reference chat model: llama.cpp behind the TensorRT-LLM BLS tensor contract (decoupled).

Requests are decoded together by a continuous-batching loop (batcher.py) on one llama.cpp
context; ``execute`` only validates, enqueues and returns.

Inputs follow NVIDIA's ``tensorrt_llm_bls`` names: ``text_input`` (the rendered prompt),
``max_tokens`` and the optional sampling inputs. Outputs: ``text_output`` (UTF-8-safe deltas
when ``stream`` is true, else the whole text once), ``num_input_tokens``,
``num_output_tokens`` and ``finish_reason`` ("stop" | "length") on the last response.

Constrained decoding: NVIDIA's ``guided_decoding_guide_type`` / ``guided_decoding_guide`` (guides.py);
a guide that does not compile is an "invalid request:" error (the gateway's 400). Log-probabilities:
``return_log_probs`` (NVIDIA's) gives ``output_log_probs`` FP32 [k] and, our extension,
``output_token_bytes`` STRING [k] for the k tokens a response covers (the tokens sampled since the
previous response, whose text may be held back); ``top_logprobs`` INT32 (0-20, our extension) adds
``top_log_probs`` FP32 [k, K] and ``top_token_bytes`` STRING [k, K], most likely first.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(__file__))
import machine  # noqa: E402
import guides  # noqa: E402
from batcher import Batcher, Sequence  # noqa: E402
from inputs import BadRequest, read_generation  # noqa: E402
from textstream import TextStream  # noqa: E402

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    """One llama.cpp model and context per instance; up to ``slots`` requests decode together."""

    def initialize(self, args):
        from llama_cpp import Llama

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        gguf = params["gguf_path"]
        if not os.path.isabs(gguf):
            gguf = os.path.join(args["model_repository"], gguf)
        self.n_ctx = int(params.get("n_ctx", "2048"))
        budget = machine.cpu_budget()
        threads = machine.threads(params.get("n_threads", "auto"), budget)
        parallel = int(params.get("slots", "4"))
        kv_cells = int(params.get("kv_cache_tokens", "0") or 0) or parallel * self.n_ctx
        n_seq = int(params.get("cache_sequences", "0") or 0) or max(16, 4 * parallel)
        n_batch = int(params.get("n_batch", "512"))
        chunk = int(params.get("prefill_chunk", "256"))
        # This small context only tokenizes and detokenizes; the batcher owns the real one.
        self.llm = Llama(model_path=gguf, n_ctx=64, n_threads=1, verbose=False)
        self.add_bos = self.llm._model.add_bos_token()
        self.batcher = Batcher(self.llm._model.model, self.llm._model.vocab, parallel=parallel,
                               ctx_per_seq=self.n_ctx, kv_cells=kv_cells, n_seq=n_seq, threads=threads,
                               n_batch=n_batch, prefill_chunk=chunk,
                               prefill_alone=params.get("prefill_alone", "true").lower() == "true",
                               adapt_threads=params.get("adapt_threads", "false").lower() == "true")
        self.batcher.start()
        self.pieces = {}
        self.logger = pb_utils.Logger
        self.served = 0
        self.cancelled = 0
        kv_mib = self.batcher.kv_cells * _kv_bytes_per_token(self.llm) / 2**20
        self.logger.log_info(
            f"llamacpp_chat ready: {gguf} n_ctx={self.n_ctx} parallel={parallel} threads={threads} "
            f"(cpu budget {budget}) kv_cells={self.batcher.kv_cells} ({kv_mib:.0f} MiB) sequences={n_seq} "
            f"n_batch={n_batch} prefill_chunk={chunk}")

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self.batcher.submit(self._sequence(request, sender))
            except BadRequest as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=_FINAL)
            except Exception as exc:  # keep the stub alive whatever one request does
                self.logger.log_error(f"llamacpp_chat: request failed: {exc!r}")
                sender.send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"internal model error: {type(exc).__name__}")),
                    flags=_FINAL,
                )
        return None

    def _read(self, request):
        return read_generation(request, seed_bits=32)

    def _sequence(self, request, sender):
        p = self._read(request)
        prompt = self.llm.tokenize(p["prompt"].encode("utf-8"), add_bos=self.add_bos, special=True)
        if len(prompt) >= self.n_ctx:
            raise BadRequest(f"invalid request: prompt has {len(prompt)} tokens; the context window is {self.n_ctx}")
        grammar = guides.to_gbnf(*p["guide"]) if p["guide"] is not None else None
        if grammar is not None:
            guides.check(self.llm._model.vocab, grammar)
        stream = TextStream(p["stop"])
        state = {"first": "" if p["exclude_input"] else p["prompt"], "parts": [], "lp": []}

        def on_token(seq, token):
            data = self._piece(token)
            if p["logprobs"]:
                state["lp"].append((data, seq.logprob, [(self._piece(t), v) for t, v in seq.top]))
            piece = stream.push(data)
            if p["stream"]:
                if piece or state["first"]:
                    sender.send(self._response(state["first"] + piece, lp=self._take(state)))
                    state["first"] = ""
            else:
                state["parts"].append(piece)
            return not stream.stopped

        def on_done(seq, error):
            if error is not None:
                self.logger.log_error(f"llamacpp_chat: {error}")
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(error)), flags=_FINAL)
                return
            if seq.finish == "cancelled":
                self.cancelled += 1
                self.logger.log_info(
                    f"llamacpp_chat: request cancelled after {seq.produced} tokens (cancelled total {self.cancelled})")
                sender.send(flags=_FINAL)
                return
            self.served += 1
            tail = stream.flush()
            text = state["first"] + ("".join(state["parts"]) if not p["stream"] else "") + tail
            n_in = len(seq.prompt) if p["return_counts"] else None
            sender.send(self._response(text, n_in, seq.produced, seq.finish, lp=self._take(state)), flags=_FINAL)

        max_tokens = min(p["max_tokens"], self.n_ctx - len(prompt))
        return Sequence(prompt=prompt, max_tokens=max_tokens, min_tokens=min(p["min_tokens"], max_tokens),
                        temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"], seed=p["seed"],
                        min_p=p["min_p"],
                        repeat_penalty=p["repetition_penalty"], frequency_penalty=p["frequency_penalty"],
                        presence_penalty=p["presence_penalty"], on_token=on_token, on_done=on_done,
                        grammar=grammar, logprobs=p["logprobs"], top_logprobs=p["top_logprobs"] if p["logprobs"] else 0,
                        is_cancelled=request.is_cancelled,
                        # A request that asks for reproducible text (greedy, or seeded) is prefilled
                        # whole: a prompt evaluated in pieces (a cached prefix, then the rest)
                        # rounds differently in llama.cpp's kernels, and a near-tie then picks
                        # another token. Sampled unseeded requests start from cached prefixes.
                        reuse_prefix=not (p["seed_given"] or p["temperature"] <= 0
                                          or p["top_k"] == 1))

    def _piece(self, token):
        data = self.pieces.get(token)
        if data is None:
            data = self.pieces[token] = self.llm.detokenize([token], special=False)
        return data

    @staticmethod
    def _take(state):
        taken, state["lp"] = state["lp"], []
        return taken

    @staticmethod
    def _logprob_tensors(lp):
        """[(token bytes, logprob, [(alt bytes, logprob)])] -> our log-probability outputs."""
        tensors = [pb_utils.Tensor("output_log_probs", np.array([[v for _b, v, _t in lp]], dtype=np.float32)),
                   pb_utils.Tensor("output_token_bytes", np.array([[b for b, _v, _t in lp]], dtype=np.object_))]
        if lp[0][2]:
            tensors.append(pb_utils.Tensor("top_log_probs", np.array(
                [[[v for _a, v in top] for _b, _v, top in lp]], dtype=np.float32)))
            tensors.append(pb_utils.Tensor("top_token_bytes", np.array(
                [[[a for a, _v in top] for _b, _v, top in lp]], dtype=np.object_)))
        return tensors

    @classmethod
    def _response(cls, text, n_in=None, n_out=None, finish=None, lp=None):
        tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
        if lp:
            tensors += cls._logprob_tensors(lp)
        if n_in is not None:
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array([[n_in]], dtype=np.int32)))
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[n_out]], dtype=np.int32)))
        if finish is not None:
            tensors.append(pb_utils.Tensor("finish_reason", np.array([[finish.encode()]], dtype=np.object_)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        stats, perf, table = self.batcher.stats, self.batcher.perf(), self.batcher.table
        self.batcher.stop()
        self.logger.log_info(
            f"llamacpp_chat: served {self.served}, cancelled {self.cancelled}; {stats.steps} steps, "
            f"decode {stats.decode_s:.2f} s, sampling {stats.sample_s:.2f} s, token callbacks "
            f"{stats.callback_s:.2f} s; threads {self.batcher.threads} ({self.batcher.tuner.switches} switches); "
            f"prompt tokens evaluated {stats.prompt_tokens}, reused from the "
            f"prefix cache {stats.reused_tokens} ({table.hits} hits); llama.cpp {perf}")
        self.llm.close()


def _kv_bytes_per_token(llm):
    """f16 K and V for every layer: 2 * n_layer * n_embd_k_gqa * 2 bytes."""
    import llama_cpp as L

    model = llm._model.model
    n_layer = L.llama_model_n_layer(model)
    n_head = max(1, L.llama_model_n_head(model))
    n_head_kv = L.llama_model_n_head_kv(model)
    head_dim = L.llama_model_n_embd(model) // n_head
    return 2 * n_layer * n_head_kv * head_dim * 2
