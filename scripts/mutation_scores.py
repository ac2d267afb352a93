"""Per-module mutation scores from mutmut's results (run ``mutmut run`` first; see docs/testing.md).

Usage: ``mutation_scores.py [MODULE ...]`` (dotted names; all modules when none are given).

Killed counts mutants a test failed on (or that timed out); survived counts mutants no test
noticed, including those no selected test reaches ("no tests"). Exits 1 when a module is under
the floor, so ``make mutation`` fails on a regression.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

FLOOR = 80.0
_KILLED = {"killed", "timeout", "caught by type check", "segfault"}
_LINE = re.compile(r"^\s+(?P<module>[\w.]+?)\.x[_ǁ]\S*: (?P<status>.+)$")


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True,
                         text=True, check=True).stdout
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in out.splitlines():
        if m := _LINE.match(line):
            by_module[m["module"]][m["status"]] += 1
    wanted = sys.argv[1:]
    if wanted:
        by_module = defaultdict(Counter, {m: c for m, c in by_module.items() if m in wanted})
    if not by_module:
        print("no mutmut results: run `mutmut run` first", file=sys.stderr)
        return 2
    print(f"{'module':32} {'total':>6} {'killed':>7} {'survived':>9} {'score':>7}")
    low = []
    for module in sorted(by_module):
        counts = by_module[module]
        total = sum(counts.values())
        killed = sum(n for status, n in counts.items() if status in _KILLED)
        score = 100.0 * killed / total
        other = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())
                          if s not in _KILLED and s != "survived")
        print(f"{module:32} {total:6} {killed:7} {total - killed:9} {score:6.1f}%"
              + (f"  ({other})" if other else ""))
        if score < FLOOR:
            low.append(module)
    if low:
        print(f"under {FLOOR:.0f}%: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
