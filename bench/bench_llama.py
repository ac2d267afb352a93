"""CPU chat model: tokens/s and TTFT through Triton (1 and 4 streams) vs llama-cpp-python in-process.

Greedy; the prompt asks for a long answer and max_tokens caps it, so every run decodes the
same number of tokens. Every run prefills its prompt (no prefix-cache reuse) in both paths.
Medians of ``--runs`` runs after one warm-up.
Run: ``.venv/bin/python -m bench.bench_llama [--tokens 64] [--runs 3] [--configs 1x2x4 2x1x1]``
(a config is INSTANCESxTHREADSxSLOTS of the Triton model; slots = requests batched together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput

from build_engines.cpu import build_chat, fetch_smollm2
from build_engines.progress import Progress
from gateway.triton.server import TritonServer, free_port

PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
          "Face<|im_end|>\n<|im_start|>user\nExplain how photosynthesis works in detail."
          "<|im_end|>\n<|im_start|>assistant\n")


def direct(tokens: int, runs: int) -> dict[str, float]:
    """llama-cpp-python in this process, 2 threads, the same sampling as the Triton model."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(fetch_smollm2()), n_ctx=2048, n_threads=2, n_threads_batch=2,
                verbose=False)
    results = []
    for _ in range(runs + 1):
        llm.reset()  # no prefix-cache reuse: the Triton model prefills every request too
        ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        start = time.perf_counter()
        first, n = 0.0, 0
        for _tok in llm.generate(ids, top_k=0, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            n += 1
            if n == 1:
                first = time.perf_counter() - start
            if n >= tokens:
                break
        results.append((first, n / (time.perf_counter() - start)))
    llm.close()
    return {"ttft_ms": statistics.median(r[0] for r in results[1:]) * 1000,
            "tok_s": statistics.median(r[1] for r in results[1:])}


_NONCE = iter(range(1 << 30))


def _inputs(tokens: int) -> list[InferInput]:
    # A nonce at the start of the system prompt: the engine's prefix cache must not reuse the
    # prompt, since the direct path prefills every run too.
    prompt = PROMPT.replace("system\n", f"system\n[{next(_NONCE)}] ", 1)
    out = []
    for name, value, dtype, np_type in (("text_input", prompt.encode(), "BYTES", np.object_),
                                        ("max_tokens", tokens, "INT32", np.int32),
                                        ("stream", True, "BOOL", np.bool_),
                                        ("temperature", 0.0, "FP32", np.float32)):
        t = InferInput(name, [1, 1], dtype)
        t.set_data_from_numpy(np.array([[value]], dtype=np_type))
        out.append(t)
    return out


async def _stream(url: str, model: str, tokens: int) -> tuple[float, int, float]:
    client = grpcclient.InferenceServerClient(url)

    async def reqs():  # type: ignore[no-untyped-def]
        yield {"model_name": model, "inputs": _inputs(tokens), "enable_empty_final_response": True}

    start, first, count = time.perf_counter(), 0.0, 0
    async for result, error in client.stream_infer(reqs()):
        assert error is None, error
        if not first:
            first = time.perf_counter() - start
        out = result.as_numpy("num_output_tokens")
        if out is not None:
            count = int(out.reshape(-1)[0])
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    await client.close()
    return first, count, time.perf_counter() - start


async def through_triton(url: str, model: str, tokens: int, runs: int, streams: int) -> dict:
    await _stream(url, model, tokens)
    ttfts, rates, aggregate = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        res = await asyncio.gather(*(_stream(url, model, tokens) for _ in range(streams)))
        wall = time.perf_counter() - start
        ttfts.append(statistics.median(r[0] for r in res))
        rates.append(statistics.median(r[1] / r[2] for r in res))
        aggregate.append(sum(r[1] for r in res) / wall)
    return {"ttft_ms": statistics.median(ttfts) * 1000, "tok_s_per_stream": statistics.median(rates),
            "aggregate_tok_s": statistics.median(aggregate)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["1x2x4", "1x2x1", "2x1x1"])
    args = parser.parse_args()
    base = direct(args.tokens, args.runs)
    print(json.dumps({"direct_llama_cpp": base}), flush=True)
    for cfg in args.configs:
        instances, threads, slots = (int(x) for x in cfg.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            build_chat(out, instances=instances, n_threads=threads, slots=slots,
                       progress=Progress(quiet=True))
            server = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                                  grpc_port=free_port(), metrics_port=free_port())
            server.start()
            try:
                one = asyncio.run(through_triton(server.grpc_url, "smollm2_135m_instruct",
                                                 args.tokens, args.runs, 1))
                four = asyncio.run(through_triton(server.grpc_url, "smollm2_135m_instruct",
                                                  args.tokens, args.runs, 4))
            finally:
                server.stop()
        print(json.dumps({"config": cfg, "one_stream": one, "four_streams": four,
                          "one_vs_direct": one["tok_s_per_stream"] / base["tok_s"],
                          "four_aggregate_vs_one": four["aggregate_tok_s"] / one["aggregate_tok_s"]}),
              flush=True)


if __name__ == "__main__":
    main()
