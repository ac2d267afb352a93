"""What every benchmark of ``make bench`` hands back: a printed table, a JSON file under
``var/bench/`` and a PNG plot under ``docs/bench/`` (throughput and latency against concurrency,
ours beside the peer). Each record carries the machine's load average, taken when it was measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JSON_DIR = ROOT / "var" / "bench"
PLOT_DIR = ROOT / "docs" / "bench"


def output_args(parser: argparse.ArgumentParser, name: str) -> None:
    """``--name`` (of the JSON and the plot), ``--json-dir`` and ``--plot-dir``, as every benchmark takes."""
    parser.add_argument("--name", default=name, help="file name of the JSON and the plot")
    parser.add_argument("--json-dir", type=Path, default=None, help=f"default: {JSON_DIR}")
    parser.add_argument("--plot-dir", type=Path, default=None, help=f"default: {PLOT_DIR}")


def load_avg() -> list[float]:
    """1, 5 and 15 minute load averages of the machine, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root`` and its living descendants (Linux)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]),
                                      (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    tree, total = {root}, 0.0
    for pid in sorted(stats):  # children have larger pids than parents, barring pid wrap-around
        if pid in tree or stats[pid][0] in tree:
            tree.add(pid)
            total += stats[pid][1]
    return total


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats with two decimals (one above 100)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any], directory: Path | None = None) -> Path:
    """``payload`` with the machine and time, to ``<directory>/<name>.json``; returns the path."""
    out = directory or JSON_DIR
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    meta = {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "machine": platform.machine(), "load_avg_end": load_avg()}
    path.write_text(json.dumps({**meta, **payload}, indent=1, default=str) + "\n")
    return path


Series = dict[str, list[tuple[float, float]]]  # label -> [(concurrency, value)]


def plot(name: str, title: str, throughput: Series, latency: Series, *, throughput_label: str,
         latency_label: str, directory: Path | None = None, x_label: str = "concurrency") -> Path:
    """Two panels side by side: throughput and latency against concurrency, one line per series
    (ours, labelled ``CHUNGUS...``, solid; peers dashed)."""
    import matplotlib  # noqa: PLC0415 (bench-only, heavy)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out = directory or PLOT_DIR
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, series, label in ((axes[0], throughput, throughput_label), (axes[1], latency, latency_label)):
        for name_, points in series.items():
            xs, ys = zip(*sorted(points), strict=True) if points else ((), ())
            ours = name_.startswith("CHUNGUS")
            ax.plot(xs, ys, marker="o" if ours else "s", linestyle="-" if ours else "--", label=name_)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ticks = sorted({x for pts in series.values() for x, _ in pts})
        if len(ticks) > 2:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
