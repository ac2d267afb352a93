"""Discovery: dns:// entries parsed, resolved without blocking, followed as addresses come and go."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.triton.discovery import (
    Discovery,
    DnsTarget,
    endpoint_url,
    parse_targets,
    resolve_dns,
)
from gateway.triton.endpoints import Endpoints


def test_entries_split_into_fixed_and_dns() -> None:
    fixed, names = parse_targets(["a:1", " dns://t.ns.svc.cluster.local:8001 ", "", "dns://[fd00::1]:9"])
    assert fixed == ["a:1"]
    assert names == [DnsTarget("t.ns.svc.cluster.local", 8001), DnsTarget("fd00::1", 9)]
    assert str(names[0]) == "dns://t.ns.svc.cluster.local:8001"


@pytest.mark.parametrize("bad", ["dns://host", "dns://:8001", "dns://host:port"])
def test_a_dns_entry_needs_host_and_port(bad: str) -> None:
    with pytest.raises(ValueError, match="dns://host:port"):
        parse_targets([bad])


def test_ipv6_addresses_are_bracketed() -> None:
    assert endpoint_url("10.1.2.3", 8001) == "10.1.2.3:8001"
    assert endpoint_url("fd00::7", 8001) == "[fd00::7]:8001"


async def test_the_system_resolver_gives_every_address() -> None:
    assert await resolve_dns("127.0.0.1", 8001) == ["127.0.0.1:8001"]
    with pytest.raises(OSError):
        await resolve_dns("no-such-host.invalid", 8001)


class Answers:
    """A resolver seam: what 'DNS' answers now; an exception to fail with."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.fail: Exception | None = None
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if self.fail is not None:
            raise self.fail
        return [f"{a}:{port}" for a in self.addresses]


async def test_a_failed_resolution_keeps_the_last_answer() -> None:
    dns = Answers("10.0.0.1", "10.0.0.2")
    discovery = Discovery(["fixed:1", "dns://t.svc:8001"], dns)
    assert discovery.dynamic
    assert await discovery.urls() == ["fixed:1", "10.0.0.1:8001", "10.0.0.2:8001"]
    dns.fail = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert await discovery.urls() == ["fixed:1", "10.0.0.1:8001", "10.0.0.2:8001"]
    dns.fail, dns.addresses = None, ["10.0.0.2"]
    assert await discovery.urls() == ["fixed:1", "10.0.0.2:8001"]
    assert dns.asked == [("t.svc", 8001)] * 3


async def test_a_name_that_never_resolved_gives_nothing_yet() -> None:
    dns = Answers()
    dns.fail = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert await Discovery(["dns://t.svc:8001"], dns).urls() == []
    assert not Discovery(["a:1"], dns).dynamic


async def test_endpoints_follow_dns_and_retire_only_when_idle() -> None:
    # Closed loopback ports: clients are real, readiness fails fast, nothing is routed.
    dns = Answers("127.0.0.1", "127.0.0.2")
    eps = Endpoints(["dns://t.svc:9"], resolver=dns, timeout_s=2.0)
    await eps.discover()
    assert [ep.url for ep in eps.all] == ["127.0.0.1:9", "127.0.0.2:9"]
    assert all(not ep.healthy and ep.checked_at > 0 for ep in eps.all)  # checked when added
    first, second = eps.all
    closed: list[str] = []
    real_close = first.client.close

    async def close() -> None:
        closed.append(first.url)
        await real_close()

    first.client.close = close  # type: ignore[method-assign]  # records the reap
    first.begin("chat")
    dns.addresses = ["127.0.0.2", "127.0.0.3"]
    await eps.discover()
    assert [ep.url for ep in eps.all] == ["127.0.0.2:9", "127.0.0.3:9"]
    assert eps.all[0] is second  # a kept endpoint keeps its client and counts
    assert eps.retiring == [first]  # still serving its request
    await eps.reap()
    assert eps.retiring == [first] and closed == []
    first.end("chat")
    await eps.reap()
    assert eps.retiring == [] and closed == ["127.0.0.1:9"]
    dns.addresses = ["127.0.0.3"]
    await eps.discover()  # idle: closed at once
    assert [ep.url for ep in eps.all] == ["127.0.0.3:9"] and eps.retiring == []
    await eps.close()


async def test_an_address_that_comes_back_while_draining_is_reused() -> None:
    dns = Answers("127.0.0.1")
    eps = Endpoints(["dns://t.svc:9"], resolver=dns, timeout_s=2.0)
    await eps.discover()
    (ep,) = eps.all
    ep.begin("chat")
    dns.addresses = []
    await eps.discover()
    assert eps.all == [] and eps.retiring == [ep]
    dns.addresses = ["127.0.0.1"]
    await eps.discover()
    assert eps.all == [ep] and eps.retiring == []
    await eps.close()


async def test_start_resolves_and_polls_again() -> None:
    dns = Answers("127.0.0.1")
    eps = Endpoints(["dns://t.svc:9"], resolver=dns, timeout_s=2.0, resolve_s=0.05, poll_s=0.05)
    await eps.start()
    try:
        dns.addresses = ["127.0.0.1", "127.0.0.2"]
        for _ in range(100):
            if len(eps.all) == 2:
                break
            await asyncio.sleep(0.05)
        assert [ep.url for ep in eps.all] == ["127.0.0.1:9", "127.0.0.2:9"]
    finally:
        await eps.close()
