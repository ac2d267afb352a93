"""Constrained decoding's cost per token on CPU: the llama.cpp batching loop with and without a
grammar (and with per-token logprobs), same prompt, same number of tokens.

Runs the CPU chat model's own loop (model_repository/llamacpp_chat/1/batcher.py) in process on
the SmolLM2-135M GGUF, one request at a time, greedy. The schema is an array of 40 short strings,
so a guided request never ends before ``--tokens``; every run decodes exactly that many tokens.
Decode rate = (tokens - 1) / (time of the last token - time of the first), so the prompt's
prefill is not counted. Medians over ``--runs`` runs per variant, variants interleaved.

Run: ``.venv/bin/python -m bench.bench_guided [--runs 5] [--tokens 128] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).resolve().parents[1] / "model_repository" / "llamacpp_chat" / "1"
PROMPT = "<|im_start|>user\nList forty animals.<|im_end|>\n<|im_start|>assistant\n"
SCHEMA = {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 40, "maxItems": 40}


def _engine(threads: int) -> tuple[Any, Any, Any, Any]:
    import llama_cpp as L  # noqa: PLC0415

    from build_engines.cpu import fetch_smollm2  # noqa: PLC0415

    sys.path.insert(0, str(MODEL_DIR))
    sys.modules.setdefault("triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    import batcher  # noqa: PLC0415
    import guides  # noqa: PLC0415

    llm = L.Llama(model_path=str(fetch_smollm2()), n_ctx=64, n_threads=1, verbose=False)
    loop = batcher.Batcher(llm._model.model, llm._model.vocab, parallel=1, ctx_per_seq=1024,  # noqa: SLF001
                           kv_cells=2048, n_seq=4, threads=threads)
    loop.start()
    return batcher, guides, llm, loop


def _run(batcher: Any, llm: Any, loop: Any, tokens: int, **kw: Any) -> float:
    """One greedy request of exactly ``tokens`` tokens; its decode rate in tokens/s."""
    done = threading.Event()
    times: list[float] = []

    def on_token(seq: Any, token: int) -> bool:
        times.append(time.perf_counter())
        return True

    seq = batcher.Sequence(prompt=llm.tokenize(PROMPT.encode(), add_bos=False, special=True),
                           max_tokens=tokens, min_tokens=tokens, temperature=0.0, top_k=0, top_p=1.0,
                           seed=0, on_token=on_token, on_done=lambda s, e: done.set(), reuse_prefix=False, **kw)
    loop.submit(seq)
    done.wait()
    if len(times) != tokens:
        raise RuntimeError(f"expected {tokens} tokens, got {len(times)} ({seq.finish})")
    return (tokens - 1) / (times[-1] - times[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    batcher, guides, llm, loop = _engine(args.threads)
    variants: dict[str, dict[str, Any]] = {
        "unconstrained": {},
        "json_schema": {"grammar": guides.to_gbnf("json_schema", json.dumps(SCHEMA))},
        "logprobs (top 5)": {"logprobs": True, "top_logprobs": 5},
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    _run(batcher, llm, loop, 8)  # warm-up
    for _ in range(args.runs):
        for name, kw in variants.items():
            rates[name].append(_run(batcher, llm, loop, args.tokens, **kw))
    loop.stop()
    base = statistics.median(rates["unconstrained"])
    print(f"{'variant':<18} {'median tok/s':>12} {'ms/token':>9} {'vs none':>8}  runs")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<18} {median:12.1f} {1000 / median:9.2f} {median / base:8.2f}  "
              + " ".join(f"{v:.1f}" for v in values))


if __name__ == "__main__":
    main()
