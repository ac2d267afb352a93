"""The ``chungus`` command: serve the stack, run Triton alone, build models, manage keys and models."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import msgspec
import uvicorn

from gateway.health.state import Lifecycle
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.triton.supervisor import TritonSupervisor

log = logging.getLogger("chungus")

# Sub-command families contributed by other modules: each has add_parsers(subparsers).
_EXTENSIONS: tuple[str, ...] = ("gateway.admin.cli",)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _supervisor(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> TritonSupervisor:
    from gateway.triton.server import TritonServer
    from gateway.triton.supervisor import TritonSupervisor

    server = TritonServer(
        model_repository=Path(args.model_repository).resolve(),
        workdir=Path(args.workdir).resolve(),
        http_port=args.triton_http_port, grpc_port=args.triton_grpc_port,
        metrics_port=args.triton_metrics_port,
    )
    return TritonSupervisor(server, stopping=stop, max_backoff_s=settings.triton_restart_max_backoff_s)


def _add_triton_args(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--model-repository", default="var/model_repository")
    p.add_argument("--workdir", default="var/triton", help="Triton's log and backend folder")
    p.add_argument("--triton-http-port", type=int, default=settings.triton_http_port)
    p.add_argument("--triton-grpc-port", type=int, default=settings.triton_grpc_port)
    p.add_argument("--triton-metrics-port", type=int, default=settings.triton_metrics_port)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT, SIGTERM and SIGHUP set ``stop`` (installed explicitly: a shell may ignore SIGINT)."""
    def handler(sig: int, _frame: FrameType | None) -> None:
        log.warning("%s: stopping", signal.Signals(sig).name)
        stop.set()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)


def _start_triton(supervisor: TritonSupervisor) -> bool:
    """Start Triton under supervision; False (with the reason printed) if it did not come up."""
    from gateway.triton.server import TritonStartCancelled, TritonStartError

    server = supervisor.server
    print(f"starting Triton on {server.model_repository} (log: {server.log_path}) ...", flush=True)
    try:
        supervisor.start()
    except TritonStartCancelled:
        return False
    except TritonStartError as exc:
        print(f"Triton failed to start:\n{exc}", file=sys.stderr)
        return False
    return True


def cmd_triton(args: argparse.Namespace) -> int:
    """Run Triton on CPU, restarting it if it dies, until SIGINT, SIGTERM or SIGHUP."""
    settings = Settings.from_env(os.environ)
    stop = threading.Event()
    # Before the start: a signal while the models load must stop Triton too, not kill us alone.
    _stop_on_signals(stop)
    supervisor = _supervisor(args, settings, stop)
    try:
        if not _start_triton(supervisor):
            return 0 if stop.is_set() else 1
        server = supervisor.server
        print(f"Triton ready: grpc {server.grpc_url}, log {server.log_path}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        supervisor.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Start Triton (unless an external one is named) and the gateway; stop both on exit.

    Shutdown, whichever of SIGTERM, SIGINT or SIGHUP arrives: readiness turns 503 and new
    requests get 503, running streams may finish for ``drain_timeout_s`` (a second SIGINT cuts
    them), then Triton and its stubs are stopped. If this process is SIGKILLed, Triton gets a
    parent-death SIGTERM.
    """
    from gateway.app import build_app
    from gateway.health.drain import DrainGate
    from gateway.services import build_services

    settings = Settings.from_env(os.environ)
    generated = settings.admin_key is None and settings.auth_enabled
    if generated:
        settings = msgspec.structs.replace(settings, admin_key=f"sk-chungus-{secrets.token_urlsafe(24)}")
    stop = threading.Event()
    _stop_on_signals(stop)
    supervisor = None
    try:
        if not args.external_triton:
            supervisor = _supervisor(args, settings, stop)
            if not _start_triton(supervisor):
                return 0 if stop.is_set() else 1
            settings = msgspec.structs.replace(settings, triton_urls=(supervisor.server.grpc_url,))
        else:
            settings = msgspec.structs.replace(settings, triton_urls=tuple(args.external_triton.split(",")))
        services = build_services(settings)
        app = DrainGate(build_app(services), services.lifecycle)
        _banner(settings, generated)
        config = uvicorn_config(app, settings)
        _GatewayServer(config, services.lifecycle, settings.drain_timeout_s, stop).run()
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def uvicorn_config(app: object, settings: Settings) -> uvicorn.Config:
    """uvicorn's settings for the gateway: the drain deadline is its graceful-shutdown timeout."""
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",  # type: ignore[arg-type]  # an ASGI callable; uvicorn's type is a union of protocols
                          loop="uvloop", http="httptools",
                          timeout_keep_alive=max(1, round(settings.keep_alive_timeout_s)),
                          timeout_graceful_shutdown=max(1, round(settings.drain_timeout_s)),
                          # Connections beyond this get an immediate 503 instead of a queue.
                          limit_concurrency=settings.max_connections)


class _GatewayServer(uvicorn.Server):
    """uvicorn, draining on SIGHUP too, marking the lifecycle draining at once, never re-raising.

    uvicorn re-raises the signal it caught once it has stopped; with SIGTERM's default action
    that killed the process before ``chungus serve`` could stop Triton (which was left running).
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_s: float,
                 stop: threading.Event) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_s = drain_s
        self.stop = stop  # set by a signal that came before uvicorn took the handlers over

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        if self.stop.is_set():
            self.handle_exit(signal.SIGTERM, None)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Drain with the listener open (new requests: 503, readiness: 503), then uvicorn's stop.

        Probes and retried clients get a clear 503 rather than a refused connection; running
        requests have ``drain_s`` in all, after which uvicorn cancels them.
        """
        deadline = time.monotonic() + self.drain_s
        # uvicorn keeps its request tasks in a plain set (no event to wait on): poll it, as it does.
        while self.server_state.tasks and not self.force_exit and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        self.config.timeout_graceful_shutdown = max(1, round(deadline - time.monotonic()))
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.state != "draining":
            self.lifecycle.state = "draining"
            streams = len(self.server_state.tasks)
            log.warning("%s: draining %d open request(s) for up to %.0fs (SIGINT again: stop now)",
                        signal.Signals(sig).name, streams, self.drain_s)
        super().handle_exit(sig, frame)


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
