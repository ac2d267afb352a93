"""Prefix affinity vs least outstanding: multi-turn TTFT over two CPU Tritons serving llama.cpp.

Two Triton processes each serve the CPU chat model (llama.cpp, one thread each on this 2-core
machine; the model reuses the KV cache of an earlier request whose tokens prefix the new prompt).
The gateway's ``TritonBackend`` reaches both through a ``dns://`` entry answered by a resolver
seam (as a headless Service would answer with two pods). A round runs ``--conversations``
conversations concurrently, ``--turns`` turns each (every turn's prompt extends the one before
with a fixed assistant answer and a new user message); each round runs both policies, in
alternating order, each with prompts no other run has seen (a nonce opens the system prompt), so
neither policy inherits the other's cache. Medians over all rounds; turn 1 is a cold prefill
under both policies, so turns 2+ are where the policies differ.

Run: ``.venv/bin/python -m bench.bench_affinity [--rounds 3] [--conversations 3] [--turns 4]
[--think-s 2] [--load-factor 1.25] [--max-seconds 900]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from build_engines.cpu import build_chat
from build_engines.progress import Progress
from gateway.backends.base import GenerationRequest
from gateway.registry import ModelEntry, load_registry
from gateway.tokens import Tokenizers
from gateway.triton.backend import TritonBackend
from gateway.triton.routing import DEFAULT_LOAD_FACTOR, Policy, Router
from gateway.triton.server import TritonServer, free_port

VALLEY = ("the river carries cold water from the northern hills past old mills and quiet farms "
         "where people grow wheat barley and apples while children walk to school along the bank")
WORDS = VALLEY.split()


class RecordingRouter(Router):
    """A Router that remembers which endpoint each choice went to."""

    def __init__(self, policy: Policy, load_factor: float) -> None:
        super().__init__(policy, load_factor=load_factor)
        self.chosen: list[tuple[str, str]] = []  # (conversation, endpoint)

    def choose(self, names: Sequence[str], loads: Sequence[int], prompt: str = "") -> int:
        i = super().choose(names, loads, prompt)
        self.chosen.append((prompt.split(".", 1)[0], names[i]))
        return i


def _text(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + k * 3) % len(WORDS)] for k in range(words)) + "."


def conversation(nonce: str, n: int, turns: int) -> list[str]:
    """ChatML prompts of one conversation (SmolLM2's template): each extends the one before."""
    prompt = (f"<|im_start|>system\nSession {nonce}, conversation {n}. You answer questions about "
              f"a valley. {_text(n, 220)}<|im_end|>\n")
    prompts = []
    for t in range(turns):
        prompt += f"<|im_start|>user\nQuestion {t}: {_text(n + t, 110)}<|im_end|>\n<|im_start|>assistant\n"
        prompts.append(prompt)
        prompt += f"{_text(n * 3 + t, 70)}<|im_end|>\n"
    return prompts


async def ttft(backend: TritonBackend, entry: ModelEntry, prompt: str) -> float:
    request = GenerationRequest(model=entry, prompt=prompt, max_tokens=4, temperature=0.0)
    start = time.perf_counter()
    first = 0.0
    async for _delta in backend.generate(request):
        if not first:
            first = time.perf_counter() - start
    return first


async def run_policy(backend: TritonBackend, entry: ModelEntry, nonce: str, conversations: int,
                     turns: int, think_s: float) -> list[list[float]]:
    """TTFT per conversation and turn; conversations run concurrently, turns one after another.

    Conversations start staggered and pause a seeded random time between turns, so they do not
    move in lock-step (which would let round-robin ties pair a conversation with one server).
    """

    async def one(n: int) -> list[float]:
        rng = random.Random(f"{nonce}-{n}")
        await asyncio.sleep(n * think_s / 2)
        out = []
        for p in conversation(nonce, n, turns):
            out.append(await ttft(backend, entry, p))
            await asyncio.sleep(rng.uniform(0, think_s))
        return out

    return list(await asyncio.gather(*(one(n) for n in range(conversations))))


def stayed(chosen: list[tuple[str, str]]) -> float:
    """Share of turns 2+ served by the same Triton as the turn before, per conversation."""
    last: dict[str, str] = {}
    same = total = 0
    for convo, url in chosen:
        if convo in last:
            total += 1
            same += last[convo] == url
        last[convo] = url
    return same / total if total else float("nan")


async def bench(out: Path, args: argparse.Namespace) -> dict[str, object]:
    entry = next(m for m in load_registry(out / "registry.toml").models if m.kind == "chat")
    servers = [TritonServer(out / "model_repository", out / f"triton-{i}", http_port=free_port(),
                            grpc_port=free_port(), metrics_port=free_port()) for i in range(2)]
    for s in servers:
        s.start(timeout_s=300)
    urls = [s.grpc_url for s in servers]

    async def dns(host: str, port: int) -> list[str]:
        return list(urls)

    routers = {p: RecordingRouter(p, args.load_factor) for p in ("affinity", "least_outstanding")}
    backends = {p: TritonBackend(["dns://triton.bench:8001"], Tokenizers(out), router=r,
                                 resolver=dns, resolve_s=3600) for p, r in routers.items()}
    results: dict[str, list[list[list[float]]]] = {p: [] for p in backends}
    try:
        for b in backends.values():
            await b.start()
        for b in backends.values():  # warm-up: load weights into the page cache, both servers
            await run_policy(b, entry, "warm-up", 2, 1, 0.0)
        deadline = time.monotonic() + args.max_seconds
        for r in range(args.rounds):
            if time.monotonic() > deadline:
                break
            order = list(backends) if r % 2 == 0 else list(reversed(backends))
            for policy in order:
                runs = await run_policy(backends[policy], entry, f"{r}-{policy}",
                                        args.conversations, args.turns, args.think_s)
                results[policy].append(runs)
                print(json.dumps({"round": r, "policy": policy,
                                  "ttft_ms": [[round(x * 1000) for x in c] for c in runs]}),
                      flush=True)
    finally:
        for b in backends.values():
            await b.close()
        for s in servers:
            s.stop()
    summary = summarize(results, args.turns)
    for policy, router in routers.items():
        chosen = [c for c in router.chosen if "warm-up" not in c[0]]
        part = summary[policy]
        assert isinstance(part, dict)
        part["same_server_as_previous_turn"] = round(stayed(chosen), 2)
        part.update(split_by_move(results[policy], chosen, policy))
    return summary


def split_by_move(rounds: list[list[list[float]]], chosen: list[tuple[str, str]],
                  policy: str) -> dict[str, object]:
    """Median TTFT of turns 2+ that stayed on the previous turn's Triton, and of those that moved.

    A conversation's turns run one after another, so its choices are in turn order.
    """
    urls: dict[str, list[str]] = {}
    for convo, url in chosen:
        urls.setdefault(convo, []).append(url)
    stay: list[float] = []
    move: list[float] = []
    for r, runs in enumerate(rounds):
        for n, times in enumerate(runs):
            path = urls[f"<|im_start|>system\nSession {r}-{policy}, conversation {n}"]
            for t in range(1, len(times)):
                (stay if path[t] == path[t - 1] else move).append(times[t])

    def med(xs: list[float]) -> int | None:
        return round(statistics.median(xs) * 1000) if xs else None

    return {"stayed_ttft_ms": med(stay), "stayed_n": len(stay), "moved_ttft_ms": med(move),
            "moved_n": len(move)}


def summarize(results: dict[str, list[list[list[float]]]], turns: int) -> dict[str, object]:
    summary: dict[str, object] = {"rounds": min(len(v) for v in results.values())}
    for policy, rounds in results.items():
        by_turn = [[c[t] for runs in rounds for c in runs] for t in range(turns)]
        later = [x for t in range(1, turns) for x in by_turn[t]]
        summary[policy] = {
            "turn1_ttft_ms": round(statistics.median(by_turn[0]) * 1000),
            "turns2plus_ttft_ms": round(statistics.median(later) * 1000),
            "per_turn_ttft_ms": [round(statistics.median(x) * 1000) for x in by_turn],
            "requests": sum(len(x) for x in by_turn),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    # odd: with an even count, lock-step conversations and round-robin ties would pair up by chance
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--think-s", type=float, default=2.0,
                        help="most pause between two turns of a conversation (seeded random)")
    parser.add_argument("--load-factor", type=float, default=DEFAULT_LOAD_FACTOR,
                        help="bounded load's 1 + epsilon (CHUNGUS_TRITON_AFFINITY_LOAD_FACTOR)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per Triton")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="no new round starts after this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        build_chat(out, n_threads=args.threads, progress=Progress(quiet=True))
        print(json.dumps(asyncio.run(bench(out, args))), flush=True)


if __name__ == "__main__":
    main()
