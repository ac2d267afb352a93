"""GPU check: our Python-backend chat model on CUDA behind the wheel's Triton and the gateway.

No weights can be downloaded on the GPU node, so the model is a LLaVA-architecture checkpoint with
seeded random weights, built there in seconds (default text model: 22 layers, hidden 2048, about
1.1B parameters, TinyLlama's shape; a small CLIP tower at 336 px) with a byte-level BPE tokenizer
trained on the spot. Its words are noise; its arithmetic is that of a real 1B model. Reports, for
the same prompt and greedy decoding of ``--tokens`` tokens:

* direct: the model in this process on CUDA (a token loop like the Triton model's), TTFT and tok/s;
* through Triton + gateway (streaming chat completions over HTTP): TTFT and tok/s at 1 stream and
  at ``--streams`` concurrent streams (one instance per stream), and one request with an image.

Run on a GPU node: ``bash bench/gpu_check.sh`` (installs the wheels carried in ``.whl/``, see
``bench/gpu_wheels.sh``). Smoke-test anywhere: ``python -m bench.gpu_check --allow-cpu --small``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from build_engines.progress import Progress
from build_engines.vision import build_vision
from gateway.triton.server import TritonInstall, TritonServer, free_port
from tests.support import GatewayProcess

MODEL_ID = "gpu-llava-random"
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
PROMPT = "Explain in detail how a transformer language model turns a prompt into an answer."


def environment() -> dict[str, Any]:
    """What the node has: GPU, torch, numpy (the Triton stub needs numpy < 2), libpython."""
    import numpy
    import torch

    info: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__,
                            "numpy": numpy.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    if int(numpy.__version__.split(".")[0]) >= 2:
        raise SystemExit(f"numpy {numpy.__version__}: Triton's Python stub needs numpy<2 in this environment")
    stub = TritonInstall.find().stub
    ldd = subprocess.run(["ldd", str(stub)], capture_output=True, text=True).stdout
    info["stub_missing_libs"] = [ln.split()[0] for ln in ldd.splitlines() if "not found" in ln]
    return info


def _tokenizer(target: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = PROMPT.lower().replace(".", "").split() + [f"w{i}" for i in range(500)]
    corpus = [" ".join(words[(i * 7) % len(words):] + words[:(i * 7) % len(words)]) for i in range(400)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=4096, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(target)
    (target / "chat_template.jinja").write_text(CHATML)
    return fast


def build_checkpoint(target: Path, hidden: int, layers: int, device: str) -> Path:
    """A seeded random LLaVA checkpoint of a realistic text-model size, saved in bfloat16."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    if (target / "config.json").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(target)
    vision = CLIPVisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                              num_attention_heads=4, image_size=336, patch_size=14, projection_dim=256)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                       num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                       num_key_value_heads=max(1, hidden // 512), max_position_embeddings=4096,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(target)
    CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(target)
    return target


def direct(ckpt: Path, tokens: int, runs: int, device: str) -> dict[str, float]:
    """The model in this process: prefill, then one forward per token, greedy (no EOS stop)."""
    import torch
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = LlavaForConditionalGeneration.from_pretrained(ckpt, dtype=torch.bfloat16).to(device).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                     add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
    results = []
    with torch.inference_mode():
        for _ in range(runs + 1):
            start = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            token = out.logits[0, -1].argmax()
            _sync(device)
            ttft = time.perf_counter() - start
            past = out.past_key_values
            for _ in range(tokens - 1):
                out = model(input_ids=token.view(1, 1), past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[0, -1].argmax()
            _sync(device)
            total = time.perf_counter() - start
            results.append({"ttft_ms": ttft * 1000, "tok_per_s": tokens / total})
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return _median(results[1:])


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


async def _stream(client: httpx.AsyncClient, content: Any, tokens: int) -> dict[str, float]:
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": content}], "stream": True,
            "max_tokens": tokens, "temperature": 0, "stream_options": {"include_usage": True}}
    start, first, usage = time.perf_counter(), None, {}
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
            usage = chunk.get("usage") or usage
    total = time.perf_counter() - start
    n = int(usage.get("completion_tokens", 0))
    return {"ttft_ms": ((first or time.perf_counter()) - start) * 1000, "tokens": n, "seconds": total,
            "tok_per_s": n / total if total else 0.0}


async def through_gateway(gw: GatewayProcess, tokens: int, runs: int, streams: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    async with httpx.AsyncClient(base_url=gw.base_url, headers=headers, timeout=600) as client:
        await asyncio.gather(*(_stream(client, PROMPT, 8) for _ in range(streams)))  # warm every instance
        single = [await _stream(client, PROMPT, tokens) for _ in range(runs)]
        start = time.perf_counter()
        many = await asyncio.gather(*(_stream(client, PROMPT, tokens) for _ in range(streams)))
        wall = time.perf_counter() - start
        image = await _stream(client, [{"type": "text", "text": "Describe this image."},
                                       {"type": "image_url", "image_url": {"url": _png_uri()}}], 32)
    return {
        "1_stream": _median([{k: r[k] for k in ("ttft_ms", "tok_per_s", "tokens")} for r in single]),
        f"{streams}_streams": {"ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in many), 2),
                               "ttft_ms_max": round(max(r["ttft_ms"] for r in many), 2),
                               "tok_per_s_aggregate": round(sum(r["tokens"] for r in many) / wall, 2),
                               "tokens": sum(r["tokens"] for r in many)},
        "image_request": {k: round(image[k], 2) for k in ("ttft_ms", "tok_per_s", "tokens")},
    }


def _png_uri() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((336, 336), 64).convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def serve(out: Path, ckpt: Path, instances: int) -> tuple[TritonServer, GatewayProcess]:
    """Triton (the wheel's binary) on the vision model with ``instances`` copies, then the gateway."""
    build_vision(out, source=ckpt, model_id=MODEL_ID, max_images=1, progress=Progress(quiet=True))
    config = out / "model_repository" / MODEL_ID.replace("-", "_") / "config.pbtxt"
    text = config.read_text()
    if "kind: KIND_CPU count: 1" not in text:
        raise RuntimeError(f"unexpected instance_group in {config}")
    config.write_text(text.replace("kind: KIND_CPU count: 1", f"kind: KIND_CPU count: {instances}"))
    triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                          grpc_port=free_port(), metrics_port=free_port())
    triton.start(timeout_s=900)
    gw = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gateway")
    try:
        gw.start(timeout_s=120)
    except BaseException:
        triton.stop()
        raise
    return triton, gw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/chungus-gpu")))
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--layers", type=int, default=22)
    p.add_argument("--small", action="store_true", help="a 2-layer, 256-wide model (smoke test)")
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (smoke test)")
    args = p.parse_args()
    hidden, layers = (256, 2) if args.small else (args.hidden, args.layers)
    report: dict[str, Any] = {"environment": environment()}
    print(json.dumps(report["environment"]), flush=True)
    device = "cuda" if report["environment"]["cuda"] else "cpu"
    if device == "cpu" and not args.allow_cpu:
        raise SystemExit("no CUDA device visible to torch (use --allow-cpu for a smoke test)")
    work = args.out / "work"
    ckpt = build_checkpoint(work / f"ckpt-{hidden}x{layers}", hidden, layers, device)
    report["model"] = {"hidden": hidden, "layers": layers, "device": device, "tokens": args.tokens}
    report["direct"] = direct(ckpt, args.tokens, args.runs, device)
    print(json.dumps({"direct": report["direct"]}), flush=True)
    triton, gw = serve(work / "stack", ckpt, args.streams)
    try:
        report["gateway"] = asyncio.run(through_gateway(gw, args.tokens, args.runs, args.streams))
        log = triton.log_path.read_text()
        report["model_on_cuda"] = "ready on cuda" in log
    finally:
        gw.stop()
        triton.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
