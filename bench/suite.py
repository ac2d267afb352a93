"""``make bench``: every benchmark against its peer, one after the other, each printing its
table, writing JSON under var/bench/ and a PNG plot under docs/bench/ (``--quick``: seconds-long
versions of each, their files under var/bench/quick/ so they never replace a real run's).

The peers live in their own venvs under var/bench/, made on first use by bench/peer_venv.sh
(LiteLLM's proxy, NVIDIA's AIPerf, llama-cpp-python's server from the wheel ``make install``
built) and llama.cpp's ``llama-server`` is built by bench/llama_server.sh; ``--no-install``
skips a benchmark whose peer is missing instead.

Run: ``.venv/bin/python -m bench.suite [--quick] [--only gateway litellm embeddings aiperf]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import report

VENVS = report.ROOT / "var" / "bench"
LITELLM = "litellm[proxy]==1.108.7"
AIPERF = "aiperf==0.13.0"
LLAMA_CPP_VERSION = "0.3.36"
# name -> (module, arguments of the full run)
BENCHMARKS = {
    "gateway": ("bench.bench_gateway", ["--requests", "400", "--rounds", "2"]),
    "litellm": ("bench.bench_litellm", ["--requests", "600", "--rounds", "2"]),
    "embeddings": ("bench.bench_embeddings", ["--sentences", "1024", "--rounds", "3"]),
    "aiperf": ("bench.bench_aiperf", ["--rounds", "1", "--per-stream", "3", "--timeout", "150"]),
}


def _venv(name: str, *specs: str, install: bool) -> bool:
    if (VENVS / name / ".ready").exists():
        return True
    if not install:
        return False
    subprocess.run([str(report.ROOT / "bench" / "peer_venv.sh"), str(VENVS / name), *specs], check=True,
                   stdout=subprocess.DEVNULL)
    return True


def _llama_cpp_wheel() -> str:
    cache = Path(os.environ.get("CHUNGUS_CACHE", Path.home() / ".cache" / "chungus")) / "wheels"
    wheels = sorted(cache.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl"))
    return f"llama-cpp-python[server] @ {wheels[0].as_uri()}" if wheels else \
        f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"


def peers_ready(name: str, install: bool) -> bool:
    """Whether benchmark ``name`` has its peer (made here when ``install``)."""
    if name == "litellm":
        return _venv("venv-litellm", LITELLM, install=install)
    if name != "aiperf":
        return True
    ok = _venv("venv-aiperf", AIPERF, install=install)
    ok = _venv("venv-llamacpp", _llama_cpp_wheel(), install=install) and ok
    script = report.ROOT / "bench" / "llama_server.sh"
    if install:
        subprocess.run([str(script)], check=True, stdout=subprocess.DEVNULL)
    return ok


def command(name: str, quick_dir: Path | None) -> list[str]:
    """The benchmark's command line: the full run, or ``--quick`` writing into ``quick_dir``."""
    module, full = BENCHMARKS[name]
    if quick_dir is None:
        return [sys.executable, "-m", module, *full]
    extra = ["--out", str(quick_dir / "aiperf")] if name == "aiperf" else []
    return [sys.executable, "-m", module, "--quick", "--json-dir", str(quick_dir), "--plot-dir", str(quick_dir),
            *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--no-install", action="store_true", help="skip benchmarks whose peer is missing")
    parser.add_argument("--quick-dir", type=Path, default=VENVS / "quick", help="where --quick writes")
    args = parser.parse_args(argv)
    quick_dir = args.quick_dir if args.quick else None
    results = []
    for name in args.only:
        started, load = time.monotonic(), report.load_avg()
        if not peers_ready(name, install=not args.no_install):
            print(f"== {name}: skipped (peer not installed; run without --no-install)", flush=True)
            results.append({"benchmark": name, "rc": None, "skipped": True, "load_avg_start": load})
            continue
        cmd = command(name, quick_dir)
        print(f"== {name}: {' '.join(cmd[1:])} (load average {load})", flush=True)
        rc = subprocess.run(cmd, cwd=report.ROOT).returncode
        results.append({"benchmark": name, "rc": rc, "seconds": round(time.monotonic() - started, 1),
                        "load_avg_start": load, "command": cmd[1:]})
    print(report.write_json("suite", {"quick": args.quick, "results": results},
                            quick_dir))
    print(json.dumps(results))
    return 1 if any(r["rc"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
