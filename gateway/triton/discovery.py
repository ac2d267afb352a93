"""Triton targets: fixed ``host:port`` entries, and ``dns://host:port`` names resolved to every pod.

A headless Kubernetes Service answers with one A/AAAA record per ready pod, so resolving its
name periodically follows the pods an HPA adds and removes. Resolution goes through an injectable
``Resolver`` (``loop.getaddrinfo`` by default), so tests can answer with several loopback ports.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("chungus.triton")

DNS_SCHEME = "dns://"

# host, port -> the endpoints ("address:port") the name stands for now
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class DnsTarget:
    """A name to resolve to every address behind it, each served on ``port``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{DNS_SCHEME}{self.host}:{self.port}"


def parse_targets(entries: Sequence[str]) -> tuple[list[str], list[DnsTarget]]:
    """Split ``CHUNGUS_TRITON_URLS`` entries into fixed endpoints and DNS names.

    Returns:
        Fixed ``host:port`` entries as given (gRPC resolves them itself), and the ``dns://``
        entries.

    Raises:
        ValueError: a ``dns://`` entry without a host or a numeric port.
    """
    fixed: list[str] = []
    names: list[DnsTarget] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if not entry.startswith(DNS_SCHEME):
            fixed.append(entry)
            continue
        host, sep, port = entry[len(DNS_SCHEME):].rstrip("/").rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{entry!r}: expected dns://host:port")
        names.append(DnsTarget(host, int(port)))
    return fixed, names


def endpoint_url(address: str, port: int) -> str:
    """``address:port`` as gRPC wants it (IPv6 in brackets)."""
    try:
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]:{port}"
    except ValueError:
        pass
    return f"{address}:{port}"


async def resolve_dns(host: str, port: int) -> list[str]:
    """Every A and AAAA address of ``host`` as ``address:port``, sorted; without blocking the loop.

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({endpoint_url(str(info[4][0]).split("%")[0], port) for info in infos})


class Discovery:
    """The endpoints all targets stand for now; a name that fails to resolve keeps its last answer.

    A DNS hiccup must not empty the pool: the readiness poll already skips pods that are gone.
    """

    def __init__(self, entries: Sequence[str], resolver: Resolver | None = None, *,
                 timeout_s: float = 5.0) -> None:
        self.fixed, self.names = parse_targets(entries)
        self.resolver = resolver or resolve_dns
        self.timeout_s = timeout_s
        self.last: dict[DnsTarget, list[str]] = {}

    @property
    def dynamic(self) -> bool:
        return bool(self.names)

    async def urls(self) -> list[str]:
        """Fixed entries, then every resolved address, without duplicates."""
        answers = await asyncio.gather(*(self._resolve(t) for t in self.names))
        seen: dict[str, None] = dict.fromkeys(self.fixed)
        for found in answers:
            seen.update(dict.fromkeys(found))
        return list(seen)

    async def _resolve(self, target: DnsTarget) -> list[str]:
        try:
            found = await asyncio.wait_for(self.resolver(target.host, target.port),
                                           self.timeout_s)
        except (OSError, TimeoutError) as exc:
            if target not in self.last:
                log.warning("triton %s does not resolve yet: %s", target, exc)
            else:
                log.warning("triton %s did not resolve (%s); keeping %d endpoints", target, exc,
                            len(self.last[target]))
            return self.last.get(target, [])
        self.last[target] = found
        return found
