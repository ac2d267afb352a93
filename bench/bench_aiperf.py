"""CPU chat engine vs llama.cpp's own ``llama-server``, measured with NVIDIA AIPerf, interleaved.

Targets: ``ours`` (gateway -> Triton -> model_repository/llamacpp_chat, built from this tree),
``baseline`` (the same stack with the llama.cpp model taken from a git revision, e.g. the engine
before issue 18; optional), ``llama-server`` (built by bench/llama_server.sh from the
llama.cpp sources vendored in the pinned llama-cpp-python sdist) and ``llama-cpp-python``
(its Python OpenAI server, ``--interrupt_requests False``, in its own venv), all on the same
GGUF with the same threads. Every round runs every scenario on every target back to back (alternating), so
load from other users of the machine hits all alike; the summary gives medians over rounds and
the ratio ours / llama-server per scenario.

Scenarios (ISL/OSL 64, streaming, output pinned to 64 tokens: ``min_tokens`` for the gateway,
``ignore_eos`` for llama-server):
- ``cold``: fresh random prompts every round (a new ``--random-seed`` per round);
- ``system``: a 256-token system prompt shared by every request (``--shared-system-prompt-length``);
- ``multiturn``: conversations of 4 turns, each turn resending the whole history.

Run: ``.venv/bin/python -m bench.bench_aiperf --rounds 3 [--scenarios cold system multiturn]
[--concurrency 1 4 8] [--targets ours llama-server llama-cpp-python] [--baseline-rev 3e136f4]``
(AIPerf and llama-cpp-python's server from their venvs under var/bench/, which ``make bench``
creates with bench/peer_venv.sh). Writes var/bench/aiperf.json and docs/bench/aiperf_*.png.
Every load is bounded: a request count per run and a timeout per aiperf call; loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import report
from build_engines.cpu import build_chat, cache_dir, fetch_smollm2
from build_engines.progress import Progress
from gateway.triton.server import TritonServer, free_port
from tests.support import ROOT, GatewayProcess

MODEL_ID = "smollm2-135m-instruct"
TARGETS = ["ours", "baseline", "llama-server", "llama-cpp-python"]
VENVS = report.ROOT / "var" / "bench"
BASELINE_ID = "smollm2-baseline"
SCENARIOS = {
    "cold": [],
    "system": ["--shared-system-prompt-length", "256"],
    "multiturn": ["--conversation-num", "{conversations}", "--conversation-turn-mean", "4",
                  "--conversation-turn-stddev", "0"],
}


def tokenizer_dir(gguf: Path) -> Path:
    """The SmolLM2 tokenizer as a Hugging Face folder (made once from the GGUF) for AIPerf."""
    out = cache_dir() / "bench" / "smollm2-tokenizer"
    if not (out / "tokenizer.json").exists():
        from transformers import AutoTokenizer  # noqa: PLC0415 (bench-only, heavy)

        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout_s}s")


class LlamaServer:
    """llama-server on a loopback port with ``parallel`` slots, the same context and threads."""

    health = "/health"

    def __init__(self, binary: str, gguf: Path, workdir: Path, threads: int, parallel: int, n_ctx: int):
        self.port = free_port()
        self.cmd = [binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
                    "-np", str(parallel), "-c", str(parallel * n_ctx), "-t", str(threads),
                    "-tb", str(threads), "--no-webui", "--alias", MODEL_ID]
        self.log = workdir / "llama-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)
        _wait_http(self.url + self.health, 120)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PythonLlamaServer(LlamaServer):
    """llama-cpp-python's OpenAI server: one sequence behind a lock (no parallel slots), so
    ``--interrupt_requests False`` or a waiting request cuts the running stream short."""

    health = "/v1/models"

    def __init__(self, python: str, gguf: Path, workdir: Path, threads: int, n_ctx: int):
        self.port = free_port()
        self.cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ID,
                    "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx),
                    "--host", "127.0.0.1", "--port", str(self.port), "--interrupt_requests", "False"]
        self.log = workdir / "llama-cpp-python.log"
        self.proc = None


def build_stack(out: Path, threads: str, baseline_rev: str | None) -> None:
    """Our chat model (and optionally the baseline engine) into ``out``."""
    gguf = fetch_smollm2()
    build_chat(out, gguf=gguf, model_id=MODEL_ID, n_threads=threads, progress=Progress(quiet=True))  # type: ignore[arg-type]
    if baseline_rev:
        build_chat(out, gguf=gguf, model_id=BASELINE_ID, n_threads=threads, progress=Progress(quiet=True))  # type: ignore[arg-type]
        model_dir = out / "model_repository" / BASELINE_ID.replace("-", "_")
        src = "model_repository/llamacpp_chat"
        names = subprocess.run(["git", "ls-tree", "--name-only", f"{baseline_rev}:{src}/1"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.split()
        shutil.rmtree(model_dir / "1")
        (model_dir / "1").mkdir()
        for name in names:
            data = subprocess.run(["git", "show", f"{baseline_rev}:{src}/1/{name}"], cwd=ROOT, check=True,
                                  capture_output=True).stdout
            (model_dir / "1" / name).write_bytes(data)
        # The old engine's config: its own template (inputs it knew; min_tokens only if declared).
        old_tmpl = subprocess.run(["git", "show", f"{baseline_rev}:{src}/config.pbtxt.tmpl"], cwd=ROOT,
                                  check=True, capture_output=True, text=True).stdout
        from string import Template  # noqa: PLC0415

        (model_dir / "config.pbtxt").write_text(Template(old_tmpl).substitute(
            name=model_dir.name, gguf_path="model.gguf", n_threads=threads, n_ctx=2048, instances=1, slots=4))


def run_aiperf(aiperf: str, url: str, model: str, tokenizer: Path, concurrency: int, requests: int,
               seed: int, scenario: str, extra: list[str], artifacts: Path, api_key: str | None,
               timeout_s: float) -> dict:
    args = [a.format(conversations=max(2, concurrency * 2)) for a in SCENARIOS[scenario]]
    cmd = [aiperf, "profile", "--model", model, "--url", url, "--endpoint-type", "chat", "--streaming",
           "--tokenizer", str(tokenizer), "--isl", "64", "--isl-stddev", "0", "--osl", "64",
           "--osl-stddev", "0", "--use-legacy-max-tokens", *extra, "--concurrency", str(concurrency),
           "--request-count", str(requests), "--warmup-request-count", str(max(2, concurrency)),
           "--request-rate", "200", "--arrival-pattern", "constant", "--random-seed", str(seed),
           "--no-gpu-telemetry", "--no-server-metrics", "--ui", "none", "--artifact-dir", str(artifacts),
           *args]
    if api_key:
        cmd += ["--api-key", api_key]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    load = os.getloadavg()[0]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = 124
    row: dict = {"rc": rc, "load1": load, "wall_s": round(time.monotonic() - start, 1)}
    summary = artifacts / "profile_export_aiperf.json"
    if rc == 0 and summary.exists():
        data = json.loads(summary.read_text())

        def get(key: str, stat: str) -> float | None:
            value = data.get(key, {})
            return value.get(stat) if isinstance(value, dict) else None

        row.update(ttft_p50_ms=get("time_to_first_token", "p50"), ttft_avg_ms=get("time_to_first_token", "avg"),
                   itl_p50_ms=get("inter_token_latency", "p50"),
                   tok_s=get("output_token_throughput", "avg"),
                   osl=get("output_sequence_length", "avg"), requests=get("request_count", "avg"),
                   errors=(data.get("error_summary") or []))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", nargs="+", default=["cold", "system", "multiturn"], choices=list(SCENARIOS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--per-stream", type=int, default=12, help="requests per run = this x concurrency")
    parser.add_argument("--targets", nargs="+", default=["ours", "llama-server", "llama-cpp-python"],
                        choices=TARGETS)
    parser.add_argument("--baseline-rev", default="3e136f4", help="git revision of the old engine")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--aiperf", default=os.environ.get("AIPERF", str(VENVS / "venv-aiperf" / "bin" / "aiperf")))
    parser.add_argument("--llama-cpp-python", default=str(VENVS / "venv-llamacpp" / "bin" / "python"),
                        help="a Python with llama-cpp-python[server]")
    parser.add_argument("--llama-server", default=None, help="binary; default: bench/llama_server.sh")
    parser.add_argument("--out", type=Path, default=Path("var/bench/aiperf"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds per aiperf run")
    parser.add_argument("--quick", action="store_true", help="one short cold run per target at c=1")
    report.output_args(parser, "aiperf")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.scenarios, args.concurrency, args.per_stream = 1, ["cold"], [1], 2

    gguf = fetch_smollm2()
    tokenizer = tokenizer_dir(gguf)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"runs-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    servers: dict[str, tuple[str, str, str | None, list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack = triton = gw = llama = pyserver = None
        try:
            if {"ours", "baseline"} & set(args.targets):
                stack = work / "stack"
                build_stack(stack, args.threads, args.baseline_rev if "baseline" in args.targets else None)
                triton = TritonServer(stack / "model_repository", stack / "triton", http_port=free_port(),
                                      grpc_port=free_port(), metrics_port=free_port(), log_verbose=0)
                triton.start(timeout_s=300)
                gw = GatewayProcess(triton.grpc_url, stack / "registry.toml", stack / "gw",
                                    env={"CHUNGUS_ACCESS_LOG": "false", "CHUNGUS_LOG_LEVEL": "WARNING"})
                gw.start()
                pin = ["--extra-inputs", "min_tokens:64"]
                if "ours" in args.targets:
                    servers["ours"] = (gw.base_url, MODEL_ID, gw.admin_key, pin)
                if "baseline" in args.targets:
                    servers["baseline"] = (gw.base_url, BASELINE_ID, gw.admin_key, pin)
            if "llama-server" in args.targets:
                binary = args.llama_server or subprocess.run(
                    [str(ROOT / "bench" / "llama_server.sh")], check=True, capture_output=True,
                    text=True).stdout.strip().splitlines()[-1]
                llama = LlamaServer(binary, gguf, work, int(args.threads), max(args.concurrency), 2048)
                llama.start()
                servers["llama-server"] = (llama.url, MODEL_ID, None, ["--extra-inputs", "ignore_eos:true"])
            if "llama-cpp-python" in args.targets:
                pyserver = PythonLlamaServer(args.llama_cpp_python, gguf, work, int(args.threads), 2048)
                pyserver.start()
                servers["llama-cpp-python"] = (pyserver.url, MODEL_ID, None, ["--extra-inputs", "min_tokens:64"])
            order = [t for t in args.targets if t in servers]
            for rnd in range(args.rounds):
                for scenario in args.scenarios:
                    for c in args.concurrency:
                        seed = 1000 + rnd if scenario == "cold" else 42
                        requests = args.per_stream * c
                        # Alternate which target goes first, so neither always runs after the other.
                        for target in order if rnd % 2 == 0 else order[::-1]:
                            url, model, key, extra = servers[target]
                            art = args.out / "artifacts" / f"{log_path.stem}-{target}-{scenario}-c{c}-r{rnd}"
                            row = run_aiperf(args.aiperf, url, model, tokenizer, c, requests, seed, scenario,
                                             extra, art, key, args.timeout)
                            row.update(target=target, scenario=scenario, concurrency=c, round=rnd)
                            print(json.dumps(row), flush=True)
                            with log_path.open("a") as f:
                                f.write(json.dumps(row) + "\n")
        finally:
            for proc in (gw, llama, pyserver):
                if proc is not None:
                    proc.stop()
            if triton is not None:
                triton.stop()
    publish(summarize(log_path), log_path, args)


def publish(summary: list[dict], log_path: Path, args: argparse.Namespace) -> None:
    """JSON with every run and the medians; one plot per scenario (tok/s and TTFT against c)."""
    raw = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    print(report.write_json(args.name, {"command": {k: str(v) for k, v in vars(args).items()},
                                        "log": str(log_path), "medians": summary, "raw": raw}, args.json_dir))
    labels = {"ours": "CHUNGUS (Triton + llama.cpp)", "baseline": "CHUNGUS baseline engine",
              "llama-server": "llama.cpp llama-server", "llama-cpp-python": "llama-cpp-python server"}
    for scenario in dict.fromkeys(r["scenario"] for r in summary):
        tok: report.Series = {}
        ttft: report.Series = {}
        for r in summary:
            if r["scenario"] == scenario:
                tok.setdefault(labels[r["target"]], []).append((r["concurrency"], r["tok_s"]))
                ttft.setdefault(labels[r["target"]], []).append((r["concurrency"], r["ttft_p50_ms"]))
        print(report.plot(f"{args.name}_{scenario}", f"AIPerf, SmolLM2-135M Q4, {args.threads} threads, "
                          f"ISL/OSL 64, streaming: {scenario}", tok, ttft, throughput_label="output tokens/s",
                          latency_label="TTFT p50 (ms)", directory=args.plot_dir))


def summarize(log_path: Path) -> list[dict]:
    """Median over rounds per (scenario, concurrency, target) and the ratio to llama-server."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    keys = sorted({(r["scenario"], r["concurrency"]) for r in rows}, key=lambda k: (list(SCENARIOS).index(k[0]), k[1]))
    print(f"\n{log_path}\n| scenario | c | target | runs ok | TTFT p50 ms | tok/s | ITL p50 ms | load1 |"
          " tok/s vs llama-server | TTFT vs llama-server |\n|---|---|---|---|---|---|---|---|---|---|")
    summary: list[dict] = []
    for scenario, c in keys:
        med: dict[str, dict[str, float]] = {}
        for target in TARGETS:
            ok = [r for r in rows if (r["scenario"], r["concurrency"], r["target"]) == (scenario, c, target)
                  and r["rc"] == 0 and r.get("tok_s")]
            if not ok:
                continue
            med[target] = {k: statistics.median(r[k] for r in ok)
                           for k in ("ttft_p50_ms", "tok_s", "itl_p50_ms", "load1")}
            med[target]["n"] = len(ok)
        ref = med.get("llama-server")
        for target, m in med.items():
            ratio = (f"{m['tok_s'] / ref['tok_s']:.2f} | {m['ttft_p50_ms'] / ref['ttft_p50_ms']:.2f}"
                     if ref and target != "llama-server" else " | ")
            print(f"| {scenario} | {c} | {target} | {m['n']:.0f} | {m['ttft_p50_ms']:.0f} | {m['tok_s']:.1f} | "
                  f"{m['itl_p50_ms']:.1f} | {m['load1']:.2f} | {ratio} |")
            summary.append({"scenario": scenario, "concurrency": c, "target": target, **m})
    return summary


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--summarize":  # a run's log (e.g. one cut short) -> JSON, plots
        log = Path(sys.argv[2])
        publish(summarize(log), log, argparse.Namespace(name="aiperf", json_dir=None, plot_dir=None, threads="2",
                                                        log=str(log)))
    else:
        main()
