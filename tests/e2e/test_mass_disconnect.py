"""Many clients leave mid-stream at once, on the real stack: every Triton request is cancelled
(nothing queued behind them runs on), every concurrency slot comes back, and what was streamed is
billed. CI runs 100 clients; ``CHUNGUS_DISCONNECT_CLIENTS=1000`` runs the full version."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from gateway.triton.server import TritonServer
from tests.support import GatewayProcess

CLIENTS = int(os.environ.get("CHUNGUS_DISCONNECT_CLIENTS", "100"))
WORDS = " ".join(["w"] * 200)  # slow-echo: 50 ms a word, 10 s a request if never cancelled


@pytest.fixture(scope="module")
def gateway_for_mass(triton: TritonServer, stack_dir: Path) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(triton.grpc_url, stack_dir / "registry.toml", stack_dir / "gw-mass",
                          env={"CHUNGUS_ACCESS_LOG": "false"})
    proc.start()
    yield proc
    proc.stop()


async def _leave_early(session: aiohttp.ClientSession, url: str, key: str) -> int:
    """Stream slow-echo, read up to two data events (or give up waiting at 1 s), then leave."""
    body = {"model": "slow-echo", "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": WORDS}]}
    got = 0
    try:
        async with asyncio.timeout(1.0), session.post(
                url, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
            async for line in r.content:
                if line.startswith(b"data: {"):
                    got += 1
                    if got == 2:
                        break
    except TimeoutError:
        pass  # queued in Triton behind the others: leaving before the first byte counts too
    return got


def _admin(gw: GatewayProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.admin_key}"}


def test_a_crowd_that_leaves_mid_stream_cancels_everything(gateway_for_mass: GatewayProcess) -> None:
    gw = gateway_for_mass
    created = httpx.post(gw.base_url + "/admin/keys", headers=_admin(gw),
                         json={"name": "crowd", "max_concurrent": CLIENTS}).json()
    key, key_id = created["key"], created["id"]

    async def crowd() -> list[int]:
        conn = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(connector=conn) as session:
            url = gw.base_url + "/v1/chat/completions"
            return await asyncio.gather(*(_leave_early(session, url, key) for _ in range(CLIENTS)))

    received = asyncio.run(crowd())
    assert any(received), "no client got a token: the test did not stream"
    # Triton dropped every abandoned request: a new slow-echo request starts at once instead of
    # queueing behind up to CLIENTS ten-second generations.
    started = time.monotonic()
    r = httpx.post(gw.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": "slow-echo", "max_tokens": 3,
                         "messages": [{"role": "user", "content": "a b c"}]}, timeout=60)
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 10
    # Every slot came back: CLIENTS requests at once are all admitted.

    async def burst() -> list[int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as s:
            async def one() -> int:
                async with s.post(gw.base_url + "/v1/chat/completions",
                                  headers={"Authorization": f"Bearer {key}"},
                                  json={"model": "echo", "messages": [{"role": "user", "content": "x"}]}
                                  ) as resp:
                    return resp.status
            return await asyncio.gather(*(one() for _ in range(CLIENTS)))

    statuses = asyncio.run(burst())
    assert statuses.count(429) == 0, statuses
    # Billing: at least the tokens the clients saw (the role chunk carries the first word).
    rows = httpx.get(gw.base_url + "/admin/usage", params={"key_id": key_id},
                     headers=_admin(gw)).json()["data"]
    billed = sum(int(row["completion_tokens"]) for row in rows)
    assert billed >= sum(received), (billed, sum(received))
