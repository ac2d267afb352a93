"""``python -m build_engines <target> ...`` (also ``chungus build <target> ...``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from build_engines import cpu, embedding, vision
from build_engines.progress import Progress
from build_engines.stack import build_cpu_stack
from build_engines.trtllm import cli as trtllm


def _stack(args: argparse.Namespace) -> int:
    entries = build_cpu_stack(args.out, progress=Progress())
    print(f"built {', '.join(e.id for e in entries)} -> {args.out / 'registry.toml'}")
    return 0


def make_parser(prog: str = "python -m build_engines") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="target", required=True)
    stack = sub.add_parser("stack", help="every default CPU reference model")
    stack.add_argument("--out", type=Path, default=Path("var"))
    stack.set_defaults(run=_stack)
    cpu.add_parser(sub)
    embedding.add_parser(sub)
    trtllm.add_parser(sub)
    vision.add_parser(sub)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m build_engines") -> int:
    args = make_parser(prog).parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
