"""The ``chungus`` command: serve the stack, run Triton alone, build models, manage keys and models."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import msgspec

from gateway.settings import Settings

log = logging.getLogger("chungus")

# Sub-command families contributed by other modules: each has add_parsers(subparsers).
_EXTENSIONS: tuple[str, ...] = ("gateway.admin.cli",)


def _triton(args: argparse.Namespace) -> object:
    from gateway.triton.server import TritonServer

    return TritonServer(
        model_repository=Path(args.model_repository).resolve(),
        workdir=Path(args.workdir).resolve(),
        http_port=args.triton_http_port, grpc_port=args.triton_grpc_port,
        metrics_port=args.triton_metrics_port,
    )


def _add_triton_args(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--model-repository", default="var/model_repository")
    p.add_argument("--workdir", default="var/triton", help="Triton's log and backend folder")
    p.add_argument("--triton-http-port", type=int, default=settings.triton_http_port)
    p.add_argument("--triton-grpc-port", type=int, default=settings.triton_grpc_port)
    p.add_argument("--triton-metrics-port", type=int, default=settings.triton_metrics_port)


def cmd_triton(args: argparse.Namespace) -> int:
    """Run Triton on CPU until Ctrl-C."""
    from gateway.triton.server import TritonStartError

    server = _triton(args)
    try:
        server.start()  # type: ignore[attr-defined]
    except TritonStartError as exc:
        print(f"Triton failed to start:\n{exc}", file=sys.stderr)
        return 1
    print(f"Triton ready: grpc {server.grpc_url}, log {server.log_path}")  # type: ignore[attr-defined]
    stop = {"now": False}
    # Install both handlers explicitly: a shell may start us with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and server.process and server.process.poll() is None:  # type: ignore[attr-defined]
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()  # type: ignore[attr-defined]
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Start Triton (unless an external one is named) and the gateway; stop both on exit."""
    import uvicorn

    from gateway.app import create_app
    from gateway.triton.server import TritonStartError

    settings = Settings.from_env(os.environ)
    generated = settings.admin_key is None and settings.auth_enabled
    if generated:
        settings = msgspec.structs.replace(settings, admin_key=f"sk-chungus-{secrets.token_urlsafe(24)}")
    server = None
    if not args.external_triton:
        server = _triton(args)
        print(f"starting Triton on {args.model_repository} (log: {server.log_path}) ...", flush=True)  # type: ignore[attr-defined]
        try:
            server.start()  # type: ignore[attr-defined]
        except TritonStartError as exc:
            print(f"Triton failed to start:\n{exc}", file=sys.stderr)
            return 1
        settings = msgspec.structs.replace(settings, triton_urls=(server.grpc_url,))  # type: ignore[attr-defined]
    else:
        settings = msgspec.structs.replace(settings, triton_urls=tuple(args.external_triton.split(",")))
    try:
        app = create_app(settings)
        _banner(settings, generated)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                    loop="uvloop", http="httptools", timeout_graceful_shutdown=10)
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return 0


def _banner(settings: Settings, generated: bool) -> None:
    base = f"http://{settings.host}:{settings.port}"
    # Print a key only when we just generated it: a configured one must not reach the logs.
    key = settings.admin_key if generated else "$CHUNGUS_ADMIN_KEY"
    from gateway.registry import load_registry

    models = [m.id for m in load_registry(settings.registry_path).models if m.kind == "chat"]
    model = models[0] if models else "MODEL"
    print(f"\nCHUNGUS gateway on {base} (OpenAI base URL {base}/v1)")
    if generated:
        print(f"admin key (generated; set CHUNGUS_ADMIN_KEY to choose one): {key}")
    print("try:\n"
          f"  curl {base}/v1/chat/completions -H \"Authorization: Bearer {key}\" "
          f"-H 'Content-Type: application/json' -d '{{\"model\": \"{model}\", \"messages\": "
          '[{"role": "user", "content": "Name the capital city of France."}], "temperature": 0}\'\n',
          flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from build_engines.__main__ import main as build_main

    return build_main(args.build_args, prog="chungus build")


def make_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    settings = settings or Settings.from_env(os.environ)
    parser = argparse.ArgumentParser(prog="chungus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Triton + gateway (the whole CPU stack)")
    _add_triton_args(serve, settings)
    serve.add_argument("--external-triton", metavar="HOST:PORT[,HOST:PORT...]",
                       help="use running Triton server(s) instead of starting one")
    serve.set_defaults(run=cmd_serve)
    triton = sub.add_parser("triton", help="run Triton on CPU with the built model repository")
    _add_triton_args(triton, settings)
    triton.set_defaults(run=cmd_triton)
    build = sub.add_parser("build", help="build models (same as python -m build_engines)",
                           add_help=False)
    build.add_argument("build_args", nargs=argparse.REMAINDER)
    build.set_defaults(run=cmd_build)
    for module in _EXTENSIONS:
        __import__(module, fromlist=["add_parsers"]).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env(os.environ)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = make_parser(settings).parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
