"""Soak: N minutes of 64 concurrent streams on the echo model through ``chungus serve``; every answer
checked, memory sampled.

Starts its own stack on loopback (``chungus serve`` with its supervised Triton, the echo test
models in a temporary folder), runs ``--concurrency`` clients that each stream one chat
completion after another until ``--minutes`` are up (or ``--max-requests`` were sent), and
checks every stream: status 200, the echoed words in order, a final chunk, ``data: [DONE]``.
RSS of the gateway process and of Triton (server and stubs) is sampled at start (after a
warm-up), middle and end, and every ``--sample-s`` seconds.

Run: ``.venv/bin/python -m bench.soak --minutes 10`` (``make soak``); exits 1 on any error, on
memory growth above ``--max-growth-mib`` start to end, or on a steady slope above
``--max-kib-per-request`` from the middle to the end (a leak of about 1 KiB per request is 24 MiB in
ten minutes here: under a plain MiB bound, over this one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from tests.e2e.serve import ADMIN_KEY, ServeStack, build_echo_stack, rss_kib

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Sample:
    at_s: float
    gateway_mib: float
    triton_mib: float  # tritonserver alone
    stubs_mib: float  # its Python-backend stubs together
    requests: int


@dataclass
class SoakResult:
    minutes: float
    concurrency: int
    words: int
    requests: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    requests_per_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    def marks(self) -> tuple[Sample, Sample, Sample]:
        """The start (first sample after the warm-up), middle and end samples."""
        return self.samples[0], self.samples[len(self.samples) // 2], self.samples[-1]

    def growth_mib(self) -> dict[str, float]:
        start, _, end = self.marks()
        return {"gateway": round(end.gateway_mib - start.gateway_mib, 1),
                "triton": round(end.triton_mib - start.triton_mib, 1),
                "stubs": round(end.stubs_mib - start.stubs_mib, 1)}

    def kib_per_request(self) -> dict[str, float]:
        """Growth from the middle to the end per request served meanwhile (warm-up excluded): a
        leak shows as a steady slope, allocator noise does not."""
        _, middle, end = self.marks()
        served = max(1, end.requests - middle.requests)
        return {name: round((getattr(end, f"{name}_mib") - getattr(middle, f"{name}_mib")) * 1024 / served, 2)
                for name in ("gateway", "triton", "stubs")}

    def summary(self) -> str:
        start, middle, end = self.marks()
        rows = "\n".join(f"  {name:6} t={s.at_s:6.0f}s  gateway {s.gateway_mib:7.1f} MiB  triton "
                         f"{s.triton_mib:7.1f} MiB  stubs {s.stubs_mib:7.1f} MiB  requests {s.requests}"
                         for name, s in (("start", start), ("middle", middle), ("end", end)))
        return (f"soak: {self.minutes:g} min, {self.concurrency} concurrent streams, {self.words} words each\n"
                f"  requests {self.requests} ({self.requests_per_s:.1f}/s), errors {self.errors}, "
                f"latency p50 {self.latency_p50_ms:.0f} ms p99 {self.latency_p99_ms:.0f} ms\n{rows}\n"
                f"  growth start->end (MiB): {self.growth_mib()}\n"
                f"  growth middle->end per request (KiB): {self.kib_per_request()}")


def _expected(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


async def _one(client: httpx.AsyncClient, url: str, words: int) -> str | None:
    """One stream, fully checked; None if it was right, else what was wrong."""
    body = {"model": "echo", "stream": True, "max_tokens": words,
            "messages": [{"role": "user", "content": _expected(words)}]}
    text, finished, done = [], False, False
    try:
        async with client.stream("POST", url, json=body, headers=HEADERS) as resp:
            if resp.status_code != 200:
                return f"status {resp.status_code}: {(await resp.aread())[:200]!r}"
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    return f"error event: {data[:200]}"
                for choice in chunk["choices"]:
                    text.append(choice["delta"].get("content") or "")
                    finished = finished or choice.get("finish_reason") is not None
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if "".join(text) != _expected(words) or not finished or not done:
        return f"bad stream: text ok {''.join(text) == _expected(words)}, final {finished}, done {done}"
    return None


def _sample(stack: ServeStack, started: float, requests: int) -> Sample:
    assert stack.process is not None
    triton = stack.triton_pid()
    stubs = [p for p in stack.leftovers() if p != triton]
    return Sample(at_s=round(time.monotonic() - started, 1),
                  gateway_mib=round(rss_kib(stack.process.pid) / 1024, 1),
                  triton_mib=round(rss_kib(triton) / 1024, 1) if triton else 0.0,
                  stubs_mib=round(sum(rss_kib(p) for p in stubs) / 1024, 1),
                  requests=requests)


async def run_soak(stack: ServeStack, *, minutes: float, concurrency: int = 64, words: int = 32,
                   max_requests: int = 2_000_000, warmup_s: float = 10.0,
                   sample_s: float = 15.0) -> SoakResult:
    """Drive ``stack`` for ``minutes`` (bounded by ``max_requests``) and check every stream."""
    result = SoakResult(minutes=minutes, concurrency=concurrency, words=words)
    url = stack.base_url + "/v1/chat/completions"
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.monotonic()
    measured_from = started + warmup_s
    deadline = measured_from + minutes * 60

    async def worker() -> None:
        while time.monotonic() < deadline and result.requests < max_requests:
            result.requests += 1
            t0 = time.monotonic()
            problem = await _one(client, url, words)
            latencies.append(time.monotonic() - t0)
            if problem is not None:
                result.errors += 1
                if len(result.error_examples) < 10:
                    result.error_examples.append(problem)

    async def sampler() -> None:
        await asyncio.sleep(warmup_s)
        while True:
            result.samples.append(_sample(stack, measured_from, result.requests))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(sample_s, remaining))

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await sampling
    elapsed = time.monotonic() - started
    result.requests_per_s = result.requests / elapsed
    ordered = sorted(latencies)
    result.latency_p50_ms = statistics.median(ordered) * 1000
    result.latency_p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--words", type=int, default=32, help="words (tokens) per answer")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="a bound on the loop")
    parser.add_argument("--sample-s", type=float, default=15.0)
    parser.add_argument("--max-growth-mib", type=float, default=32.0,
                        help="fail if gateway or Triton RSS grows more than this, start to end")
    parser.add_argument("--max-kib-per-request", type=float, default=0.5,
                        help="fail if any process grows faster than this from the middle to the end")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chungus-soak-") as tmp:
        stack = ServeStack(build_echo_stack(Path(tmp) / "stack"), Path(tmp) / "serve")
        stack.start()
        try:
            result = asyncio.run(run_soak(stack, minutes=args.minutes, concurrency=args.concurrency,
                                          words=args.words, max_requests=args.max_requests,
                                          sample_s=args.sample_s))
        finally:
            stack.kill()
    print(result.summary())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**asdict(result), "growth_mib": result.growth_mib(),
                                        "kib_per_request": result.kib_per_request()}, indent=1))
    grew = {k: f"{v} MiB" for k, v in result.growth_mib().items() if v > args.max_growth_mib}
    grew |= {k: f"{v} KiB/request" for k, v in result.kib_per_request().items()
             if v > args.max_kib_per_request}
    if result.errors or grew:
        print(f"FAILED: {result.errors} errors {result.error_examples[:3]}; grew {grew}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
