"""CHUNGUS vs LiteLLM's proxy, each in front of an instant backend: CPU per request of each
gateway's own process tree, requests/s and p50, streaming (16 one-token chunks) and not.

CHUNGUS runs in front of Triton's instant ``echo`` model with a user key (rpm, tpm and
concurrency limits on); LiteLLM (``litellm[proxy]``, pinned below, one worker, master key,
per-deployment rpm/tpm, its offline switches on) in front of ``bench/echo_openai.py`` on
uvicorn. The same aiohttp closed-loop load generator; the two gateways take turns (ours, peer,
ours, peer, order alternating by round), medians over rounds; the load average with each row.

Run: ``.venv/bin/python -m bench.bench_litellm [--rounds 2] [--concurrency 1 16 64]``
(LiteLLM's venv: ``bench/peer_venv.sh var/bench/venv-litellm 'litellm[proxy]==1.108.7'``,
which ``make bench`` runs). ``--quick`` for a few seconds' smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench import report
from bench.bench_gateway import closed_loop, echo_stack
from gateway.triton.server import free_port
from tests.support import GatewayProcess

LITELLM_VERSION = "1.108.7"
LITELLM_VENV = report.ROOT / "var" / "bench" / "venv-litellm"
MASTER = "sk-bench-litellm-master-0001"
CONFIG = """model_list:
  - model_name: echo
    litellm_params:
      model: openai/echo
      api_base: {api_base}
      api_key: sk-upstream-dummy
      rpm: 1000000
      tpm: 1000000000
router_settings:
  routing_strategy: simple-shuffle
  enable_pre_call_checks: true
litellm_settings:
  set_verbose: False
  json_logs: true
  request_timeout: 600
general_settings:
  master_key: {master}
"""
BODY = {"model": "echo", "messages": [{"role": "user", "content": " ".join(f"w{i}" for i in range(16))}],
        "max_tokens": 16}


def _wait(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout_s}s")


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                cwd=report.ROOT)


def start_litellm(work: Path, venv: Path) -> tuple[list[subprocess.Popen[bytes]], str, int]:
    """The echo upstream and LiteLLM's proxy; returns both processes, the proxy's URL and pid."""
    echo_port, port = free_port(), free_port()
    echo = _spawn([sys.executable, "-m", "uvicorn", "bench.echo_openai:app", "--host", "127.0.0.1", "--port",
                   str(echo_port), "--no-access-log", "--log-level", "warning"], work / "echo.log")
    _wait(f"http://127.0.0.1:{echo_port}/v1/models", echo)
    config = work / "litellm.yaml"
    config.write_text(CONFIG.format(api_base=f"http://127.0.0.1:{echo_port}/v1", master=MASTER))
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION", "LITELLM_LOG": "ERROR",
           "NO_DOCS": "True", "LITELLM_TELEMETRY": "False"}
    proxy = _spawn([str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port",
                    str(port), "--num_workers", "1"], work / "litellm.log", env)
    base = f"http://127.0.0.1:{port}"
    _wait(base + "/health/liveliness", proxy, 180)
    return [proxy, echo], base, proxy.pid


def user_key(gw: GatewayProcess) -> str:
    """A user key with rpm, tpm and concurrency limits (high enough never to refuse here)."""
    resp = httpx.post(gw.base_url + "/admin/keys", headers={"Authorization": f"Bearer {gw.admin_key}"},
                      json={"name": "bench", "rpm": 10**6, "tpm": 10**9, "max_concurrent": 1000})
    resp.raise_for_status()
    return str(resp.json()["key"])


async def measure(url: str, key: str, pid: int, stream: bool, concurrency: int, requests: int) -> dict[str, float]:
    """Closed-loop load; requests/s, latency and the CPU ms per request of ``pid``'s process tree."""
    body = {**BODY, "stream": stream}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def one() -> tuple[float, int]:
            start = time.perf_counter()
            async with http.post(url, json=body, headers=headers) as resp:
                data = await resp.read()
                assert resp.status == 200, (resp.status, data[:300])
                assert (data.count(b"data: {") >= 16) if stream else b'"choices"' in data, data[:300]
            return time.perf_counter() - start, 16

        before = report.tree_cpu_s(pid)
        warm = min(concurrency, 20)
        row = await closed_loop(one, concurrency, requests)
        cpu = report.tree_cpu_s(pid) - before
    return {**row, "cpu_ms_per_request": 1000 * cpu / (requests + warm)}


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0.0
    for p in [str(pid), *children]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return round(total, 1)


async def interleave(targets: dict[str, tuple[str, str, int]], args: argparse.Namespace) -> list[dict[str, Any]]:
    raw = []
    names = list(targets)
    for rnd in range(args.rounds):
        for mode in args.modes:
            for c in args.concurrency:
                for name in names if rnd % 2 == 0 else names[::-1]:
                    url, key, pid = targets[name]
                    row = await measure(url, key, pid, mode == "stream", c, args.requests)
                    raw.append({"round": rnd, "mode": mode, "concurrency": c, "target": name, **row})
                    print(raw[-1], flush=True)
    return raw


def summarize(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for mode, c in sorted({(r["mode"], r["concurrency"]) for r in raw}, key=lambda k: (k[0] != "plain", k[1])):
        row: dict[str, Any] = {"mode": mode, "concurrency": c}
        for target in ("chungus", "litellm"):
            ok = [r for r in raw if (r["mode"], r["concurrency"], r["target"]) == (mode, c, target)]
            row[target] = {k: statistics.median(r[k] for r in ok)
                           for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "load1")}
        row["cpu_ratio"] = row["litellm"]["cpu_ms_per_request"] / row["chungus"]["cpu_ms_per_request"]
        rows.append(row)
    return rows


def publish(rows: list[dict[str, Any]], raw: list[dict[str, Any]], memory: dict[str, float],
            args: argparse.Namespace) -> None:
    print(report.table(
        ["mode", "c", "CHUNGUS CPU ms/req", "LiteLLM CPU ms/req", "LiteLLM/CHUNGUS CPU", "CHUNGUS req/s",
         "LiteLLM req/s", "CHUNGUS p50 ms", "LiteLLM p50 ms", "load1"],
        [[r["mode"], r["concurrency"], r["chungus"]["cpu_ms_per_request"], r["litellm"]["cpu_ms_per_request"],
          r["cpu_ratio"], r["chungus"]["rps"], r["litellm"]["rps"], r["chungus"]["p50_ms"], r["litellm"]["p50_ms"],
          r["chungus"]["load1"]] for r in rows]))
    print(f"memory after the run (RSS of each gateway's process tree): {memory}")
    print(report.write_json(args.name, {"command": vars(args), "litellm_version": LITELLM_VERSION,
                                        "rss_mb_after": memory, "rows": rows, "raw": raw}, args.json_dir))
    rps: report.Series = {}
    cpu: report.Series = {}
    for r in rows:
        for target, label in (("chungus", "CHUNGUS"), ("litellm", f"LiteLLM {LITELLM_VERSION}")):
            rps.setdefault(f"{label}, {r['mode']}", []).append((r["concurrency"], r[target]["rps"]))
            cpu.setdefault(f"{label}, {r['mode']}", []).append((r["concurrency"], r[target]["p50_ms"]))
    print(report.plot(args.name, "CHUNGUS vs LiteLLM proxy, instant backends (16 tokens)", rps, cpu,
                      throughput_label="requests/s", latency_label="p50 latency (ms)", directory=args.plot_dir))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", default=["plain", "stream"], choices=["plain", "stream"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--quick", action="store_true", help="seconds: 20 requests, concurrency 1 and 4")
    report.output_args(parser, "litellm")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.concurrency, args.rounds = 20, [1, 4], 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    peers: list[subprocess.Popen[bytes]] = []
    with echo_stack() as (_, gw), tempfile.TemporaryDirectory() as tmp:
        assert gw.process is not None
        try:
            peers, litellm_url, litellm_pid = start_litellm(Path(tmp), args.litellm_venv)
            targets = {"chungus": (gw.base_url + "/v1/chat/completions", user_key(gw), gw.process.pid),
                       "litellm": (litellm_url + "/v1/chat/completions", MASTER, litellm_pid)}
            raw = asyncio.run(interleave(targets, args))
            memory = {"chungus": rss_mb(gw.process.pid), "litellm": rss_mb(litellm_pid)}
        finally:
            for proc in peers:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    publish(summarize(raw), raw, memory, args)


if __name__ == "__main__":
    main()
