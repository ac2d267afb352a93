"""Keep the Triton that ``chungus serve`` / ``chungus triton`` started alive, and stop it for good.

One thread owns the ``TritonServer`` once it is up: it watches for Triton's exit without
reaping it, logs why (exit code or signal, the log's error lines), kills the whole process
group and reaps (``TritonServer.stop``), then starts Triton again on the same ports after a
backoff (1 s, doubling to ``max_backoff_s``; back to 1 s after a run that lasted
``stable_s``). The gateway's readiness poller finds the new Triton on its own. ``stop`` ends
supervision and stops Triton from that same thread, so a restart in progress is cancelled and
nothing is started after a stop was asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from gateway.triton.server import TritonServer, TritonStartCancelled, TritonStartError, describe_exit

log = logging.getLogger("chungus.triton")


@dataclass
class TritonSupervisor:
    """Start, watch and restart one ``TritonServer``.

    Args:
        server: the Triton to run.
        ready_timeout_s: how long one start may take to load the models.
        stop_timeout_s: SIGTERM to SIGKILL, when stopping.
        max_backoff_s: the longest wait between two restarts.
        stable_s: a run at least this long resets the backoff.
        first_backoff_s: the wait before the first restart.
        stopping: set to stop (a signal handler may set it; a start in progress is cancelled).
    """

    server: TritonServer
    ready_timeout_s: float = 300.0
    stop_timeout_s: float = 15.0
    max_backoff_s: float = 30.0
    stable_s: float = 60.0
    first_backoff_s: float = 1.0
    stopping: threading.Event = field(default_factory=threading.Event)
    restarts: int = field(default=0, init=False)
    exits: list[str] = field(default_factory=list, init=False)
    waits: list[float] = field(default_factory=list, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        """Start Triton in this thread (errors surface here), then watch it from another.

        Raises:
            TritonStartError: the first start failed; ``TritonStartCancelled`` if ``stopping``
                was set meanwhile. Nothing is left running either way.
        """
        self.server.start(self.ready_timeout_s, cancel=self.stopping)
        self._thread = threading.Thread(target=self._run, name="triton-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop supervising and stop Triton with its stubs; waits at most ``timeout_s``."""
        self.stopping.set()
        thread = self._thread
        if thread is None:  # never watched: the caller's thread owns the process
            self.server.stop(self.stop_timeout_s)
            return
        thread.join(timeout_s if timeout_s is not None else self.stop_timeout_s + 10)
        if thread.is_alive():
            log.error("triton supervisor did not stop in time")

    def _run(self) -> None:
        backoff = self.first_backoff_s
        try:
            while not self.stopping.is_set():
                status = self.server.exit_status()
                if status is None:
                    self.stopping.wait(0.2)
                    continue
                uptime = time.monotonic() - self.server.started_at
                if uptime >= self.stable_s:
                    backoff = self.first_backoff_s
                self._record_exit(status, uptime)
                self.server.stop(0)  # group killed while Triton is unreaped, then reaped
                backoff = self._restart(backoff)
        finally:
            if self.server.process is not None:
                self.server.stop(self.stop_timeout_s)

    def _record_exit(self, status: int, uptime: float) -> None:
        why = describe_exit(status)
        self.exits.append(why)
        log.error("tritonserver exited unexpectedly (%s) after %.0fs; its log's errors:\n%s",
                  why, uptime, self.server.log_errors())

    def _restart(self, backoff: float) -> float:
        """Start Triton again until it is up or a stop is asked for; returns the next backoff."""
        while not self.stopping.is_set():
            log.warning("restarting tritonserver in %.0fs", backoff)
            self.waits.append(backoff)
            if self.stopping.wait(backoff):
                break
            begun = time.monotonic()
            try:
                self.server.start(self.ready_timeout_s, cancel=self.stopping)
            except TritonStartCancelled:
                break
            except TritonStartError as exc:
                log.error("tritonserver restart failed: %s", exc)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self.restarts += 1
            log.warning("tritonserver restarted (ready in %.1fs, restart %d)",
                        time.monotonic() - begun, self.restarts)
            return min(backoff * 2, self.max_backoff_s)
        return backoff
