"""Faults on the real stack (``chungus serve`` with its supervised Triton, the echo test models):
Triton killed under 50 streams, a slow or silent model, SIGTERM while streams run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.serve import ADMIN_KEY, ServeStack, build_echo_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def echo_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_echo_stack(tmp_path_factory.mktemp("echo-stack"))


@pytest.fixture
def stacks() -> Iterator[list[ServeStack]]:
    started: list[ServeStack] = []
    yield started
    for stack in started:
        stack.kill()


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def _body(model: str, words: int, stream: bool = True) -> dict[str, object]:
    return {"model": model, "stream": stream, "max_tokens": words,
            "messages": [{"role": "user", "content": _words(words)}]}


@dataclass
class Outcome:
    """What one client saw."""

    status: int = 0
    events: list[str] = field(default_factory=list)  # every ``data:`` payload, in order
    body: dict[str, object] = field(default_factory=dict)  # the error body of a non-200
    transport_error: str = ""
    first_chunk_at: float | None = None
    ended_at: float = 0.0

    @property
    def kind(self) -> str:
        """complete | sse_error | http_503 | http_<n> | broken (anything a client should not get)."""
        if self.transport_error:
            return "broken"
        if self.status != 200:
            error = self.body.get("error")
            ok = isinstance(error, dict) and {"message", "type", "param", "code"} <= error.keys()
            return f"http_{self.status}" if ok else "broken"
        if not self.events or self.events[-1] != "[DONE]":
            return "broken"
        chunks = [json.loads(e) for e in self.events[:-1]]
        errors = [c for c in chunks if "error" in c]
        if not errors:
            return "complete"
        # exactly one error event, the last one before [DONE], OpenAI-shaped
        shaped = {"message", "type", "param", "code"} <= errors[0]["error"].keys()
        return "sse_error" if len(errors) == 1 and "error" in chunks[-1] and shaped else "broken"

    def text(self) -> str:
        out = []
        for event in self.events[:-1]:
            chunk = json.loads(event)
            for choice in chunk.get("choices", []):
                out.append(choice["delta"].get("content") or "")
        return "".join(out)


async def _stream(client: httpx.AsyncClient, url: str, body: dict[str, object],
                  started: asyncio.Event | None = None) -> Outcome:
    outcome = Outcome()
    try:
        async with client.stream("POST", url, json=body, headers=HEADERS) as resp:
            outcome.status = resp.status_code
            if resp.status_code != 200:
                outcome.body = json.loads(await resp.aread())
            else:
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        if outcome.first_chunk_at is None:
                            outcome.first_chunk_at = time.monotonic()
                            if started is not None:
                                started.set()
                        outcome.events.append(line[len("data: "):])
    except httpx.HTTPError as exc:
        outcome.transport_error = f"{type(exc).__name__}: {exc}"
    outcome.ended_at = time.monotonic()
    return outcome


def _triton_ready(stack: ServeStack) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.triton_ports[0]}/v2/health/ready",
                                    timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


async def _echo_ok(client: httpx.AsyncClient, stack: ServeStack) -> bool:
    try:
        resp = await client.post(stack.base_url + "/v1/chat/completions",
                                 json=_body("echo", 3, stream=False), headers=HEADERS, timeout=10)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == _words(3)


async def test_triton_killed_under_50_streams_each_client_gets_an_error_or_503_then_it_heals(
        echo_stack: Path, tmp_path: Path, stacks: list[ServeStack]) -> None:
    stack = ServeStack(echo_stack, tmp_path / "serve").start()
    stacks.append(stack)
    url = stack.base_url + "/v1/chat/completions"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        # 50 streams of 2 s each on slow-echo (2 instances: 2 run, the rest wait in Triton's queue)
        started = asyncio.Event()
        tasks = [asyncio.create_task(_stream(client, url, _body("slow-echo", 40), started))
                 for _ in range(50)]
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(0.5)
        triton = stack.triton_pid()
        assert triton is not None
        os.kill(triton, signal.SIGKILL)
        killed = time.monotonic()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 90)
        kinds = Counter(o.kind for o in outcomes)
        assert set(kinds) <= {"complete", "sse_error", "http_503"}, (kinds, [
            (o.status, o.events[-2:], o.body, o.transport_error) for o in outcomes if o.kind == "broken"])
        assert kinds["sse_error"] >= 1  # the streams that were running when Triton died
        for o in outcomes:
            if o.kind == "sse_error":
                error = json.loads(o.events[-2])["error"]
                assert error["code"] == "service_unavailable", error
            if o.kind == "http_503":
                assert o.body["error"]["code"] in ("service_unavailable", "model_not_ready")  # type: ignore[index]
        slowest = max(o.ended_at for o in outcomes) - killed
        assert slowest < 15, slowest  # nobody waits for the restart to learn of the failure
        # Triton comes back under the supervisor; the same gateway serves again, unrestarted.
        back = await asyncio.to_thread(wait_for, lambda: _triton_ready(stack), 180, 0.1)
        assert back is not None, stack.log()[-3000:]
        back_after = time.monotonic() - killed
        serving = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            if await _echo_ok(client, stack):
                serving = time.monotonic() - t0
                break
            await asyncio.sleep(0.1)
        # gRPC's reconnect backoff (1 s growing 1.6x) sets this: ~1 s after a short outage, more
        # after a long one (docs/reliability.md, known limits)
        assert serving is not None and serving < 30, serving
        again = await asyncio.gather(*(_stream(client, url, _body("echo", 20)) for _ in range(50)))
        assert [o.kind for o in again] == ["complete"] * 50
        assert all(o.text() == _words(20) for o in again)
    print(f"\nkill under 50 streams: {dict(kinds)}; last client answered {slowest:.1f}s after the kill; "
          f"Triton ready {back_after:.1f}s after the kill; "
          f"gateway served {serving:.2f}s after Triton was ready")


async def test_a_silent_or_slow_model_times_out_and_nothing_piles_up(
        echo_stack: Path, tmp_path: Path, stacks: list[ServeStack]) -> None:
    stack = ServeStack(echo_stack, tmp_path / "serve", env={
        "CHUNGUS_TRITON_IDLE_TIMEOUT_S": "2", "CHUNGUS_TRITON_TIMEOUT_S": "4"}).start()
    stacks.append(stack)
    url = stack.base_url + "/v1/chat/completions"
    triton_log = stack.triton_dir / "triton.log"
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        # 20 requests to a model that never answers (1 instance: 19 wait in Triton's queue)
        t0 = time.monotonic()
        silent = await asyncio.gather(*(client.post(url, json=_body("hanging", 5, stream=s),
                                                    headers=HEADERS) for s in [True, False] * 10))
        took = time.monotonic() - t0
        assert [r.status_code for r in silent] == [504] * 20
        assert all(r.json()["error"]["code"] == "timeout" for r in silent)
        assert took < 2 + 6, took  # the idle timeout, not one after the other
        # every one was cancelled in Triton: the instance is free again, nothing queued
        cancelled = await asyncio.to_thread(
            wait_for, lambda: triton_log.read_text().count("echo: request cancelled") >= 20, 30)
        assert cancelled is not None, triton_log.read_text().count("echo: request cancelled")
        t1 = time.monotonic()
        again = await client.post(url, json=_body("hanging", 5, stream=False), headers=HEADERS)
        assert again.status_code == 504 and time.monotonic() - t1 < 2 + 3
        # a model slower than the limits: 200 words at 50 ms is 10 s. Not streamed, it sends
        # nothing until the end: the idle timeout (2 s) fires.
        t2 = time.monotonic()
        slow = await client.post(url, json=_body("slow-echo", 200, stream=False), headers=HEADERS)
        slow_took = time.monotonic() - t2
        assert slow.status_code == 504, slow.text
        assert slow_took < 2 + 3, slow_took
        # Streamed, a word every 50 ms keeps it from idling: the whole-call limit (4 s) fires.
        t3 = time.monotonic()
        streamed = await _stream(client, url, _body("slow-echo", 200))
        streamed_took = streamed.ended_at - t3
        assert streamed.kind == "sse_error"
        assert json.loads(streamed.events[-2])["error"]["code"] == "timeout"
        assert 0 < len(streamed.text().split()) < 200
        assert 4 <= streamed_took < 4 + 3, streamed_took
        # and the fast model is not held up by any of it
        assert await _echo_ok(client, stack)
    print(f"\nslow/silent: 20 silent calls all 504 in {took:.1f}s, all cancelled in Triton; "
          f"silent non-streamed call 504 after {slow_took:.1f}s; over-long stream cut by an SSE "
          f"timeout error after {streamed_took:.1f}s")


async def test_sigterm_during_streams_refuses_new_work_lets_streams_finish_then_exits(
        echo_stack: Path, tmp_path: Path, stacks: list[ServeStack]) -> None:
    stack = ServeStack(echo_stack, tmp_path / "serve", env={"CHUNGUS_DRAIN_TIMEOUT_S": "30"}).start()
    stacks.append(stack)
    url = stack.base_url + "/v1/chat/completions"
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        started = asyncio.Event()
        tasks = [asyncio.create_task(_stream(client, url, _body("slow-echo", 30), started))
                 for _ in range(4)]
        await asyncio.wait_for(started.wait(), 60)
        stack.signal(signal.SIGTERM)
        sent = time.monotonic()
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(timeout=10) as fresh:  # a new connection, as a new client
            ready = await fresh.get(stack.base_url + "/health/ready")
            refused = await fresh.post(url, json=_body("echo", 3, stream=False), headers=HEADERS)
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        outcomes = await asyncio.gather(*tasks)
        assert [o.kind for o in outcomes] == ["complete"] * 4
        assert all(o.text() == _words(30) for o in outcomes)
        code = await asyncio.to_thread(stack.wait, 60)
        took = time.monotonic() - sent
    assert code == 0
    assert stack.leftovers() == []
    assert took < 30, took
    print(f"\nSIGTERM with 4 streams: all finished, serve exited 0 {took:.1f}s after the signal")


async def test_the_drain_deadline_cuts_streams_that_run_too_long(
        echo_stack: Path, tmp_path: Path, stacks: list[ServeStack]) -> None:
    stack = ServeStack(echo_stack, tmp_path / "serve", env={"CHUNGUS_DRAIN_TIMEOUT_S": "2"}).start()
    stacks.append(stack)
    url = stack.base_url + "/v1/chat/completions"
    async with httpx.AsyncClient(timeout=60) as client:
        started = asyncio.Event()
        task = asyncio.create_task(_stream(client, url, _body("slow-echo", 400), started))  # 20 s
        await asyncio.wait_for(started.wait(), 60)
        stack.signal(signal.SIGTERM)
        sent = time.monotonic()
        outcome = await task
        code = await asyncio.to_thread(stack.wait, 60)
        took = time.monotonic() - sent
    assert code == 0
    assert outcome.kind == "broken" and len(outcome.text().split()) < 400  # cut at the deadline
    assert outcome.ended_at - sent < 2 + 3
    assert took < 2 + 20, took  # the deadline, then Triton's stop
    assert stack.leftovers() == []
    print(f"\ndrain deadline 2s: stream cut after {outcome.ended_at - sent:.1f}s, exit after {took:.1f}s")
