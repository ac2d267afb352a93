"""``make bench-quick`` in CI, so the benchmark harness cannot rot: the suite's quick runs of the
gateway-overhead and embeddings benchmarks against the real CPU stack (the peers that need their
own venvs, LiteLLM's proxy and AIPerf, run when ``make bench`` has made them, else they are
skipped), each writing its JSON and plot; plus the report helpers every benchmark shares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report, suite
from tests.support import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_table_formats_floats_by_size() -> None:
    text = report.table(["a", "b"], [[1, 2.345], ["x", 1234.56]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2.35 |", "| x | 1234.6 |"]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 0.5) == 50.0
    assert report.percentile(values, 0.99) == 99.0
    assert report.percentile([], 0.5) == 0.0


def test_json_carries_the_load_average(tmp_path: Path) -> None:
    path = report.write_json("x", {"rows": [1]}, tmp_path)
    data = json.loads(path.read_text())
    assert data["rows"] == [1] and len(data["load_avg_end"]) == 3 and data["cpus"] >= 1


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = report.plot("p", "t", {"CHUNGUS": [(1, 10.0), (16, 90.0)], "peer": [(1, 5.0), (16, 20.0)]},
                       {"CHUNGUS": [(1, 2.0), (16, 9.0)]}, throughput_label="req/s", latency_label="ms",
                       directory=tmp_path)
    assert path == tmp_path / "p.png" and path.read_bytes().startswith(PNG)


def test_quick_commands_write_under_the_quick_dir(tmp_path: Path) -> None:
    cmd = suite.command("aiperf", tmp_path)
    assert cmd[1:4] == ["-m", "bench.bench_aiperf", "--quick"]
    assert cmd[-2:] == ["--out", str(tmp_path / "aiperf")]
    assert suite.command("gateway", None)[3:] == ["--requests", "400", "--rounds", "2"]


@pytest.mark.timeout(900)
def test_bench_quick_runs_every_benchmark(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.suite", "--quick", "--no-install", "--quick-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = {r["benchmark"]: r for r in json.loads((tmp_path / "suite.json").read_text())["results"]}
    assert set(ran) == {"gateway", "litellm", "embeddings", "aiperf"}
    assert ran["gateway"]["rc"] == 0 and ran["embeddings"]["rc"] == 0

    gateway = json.loads((tmp_path / "gateway_overhead.json").read_text())
    assert [(r["mode"], r["concurrency"]) for r in gateway["rows"]] == [
        ("stream", 1), ("stream", 4), ("plain", 1), ("plain", 4)]
    for row in gateway["rows"]:
        assert row["direct"]["rps"] > 0 and row["gateway"]["rps"] > 0
        assert row["ratio_rps"] == pytest.approx(row["gateway"]["rps"] / row["direct"]["rps"])
        assert row["gateway"]["load1"] >= 0
    assert "| stream | 1 |" in proc.stdout
    embeddings = json.loads((tmp_path / "embeddings.json").read_text())
    assert [x["clients"] for x in embeddings["levels"]] == [4]
    assert embeddings["levels"][0]["gateway_sent_s"] > 0
    for name in ("gateway_overhead", "embeddings"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG)
    if not ran["litellm"].get("skipped"):
        litellm = json.loads((tmp_path / "litellm.json").read_text())
        assert {r["mode"] for r in litellm["rows"]} == {"plain", "stream"}
        assert all(r["chungus"]["cpu_ms_per_request"] > 0 for r in litellm["rows"])
