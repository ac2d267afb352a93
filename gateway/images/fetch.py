"""Fetch image URLs without SSRF: every hop's URL and resolved addresses checked, and the socket
connected to the checked address itself, so DNS rebinding cannot switch it. TLS still verifies
the certificate against the URL's host name."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import certifi
import httpcore
import httpx

from gateway.errors import InvalidRequestError
from gateway.images.ssrf import IP, BlockedURL, Target, UrlPolicy, parse_ip_host

log = logging.getLogger("chungus.images")

Resolver = Callable[[str, int], Awaitable[list[str]]]
_REDIRECTS = {301, 302, 303, 307, 308}


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _Unreachable(Exception):
    """The host name did not resolve to any address."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that resolves and checks a host at connect time, then connects to one of
    the checked addresses: no second lookup happens between the check and the connection."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[IP]:
        """The addresses of ``host``, all of which passed the policy.

        Raises:
            BlockedURL: any address is blocked (the client could be sent to any of them).
        """
        literal = parse_ip_host(host)
        if literal is not None:
            found: list[IP | None] = [literal]
        else:
            try:
                found = [parse_ip_host(a) for a in await self.resolver(host, port)]
            except OSError as exc:
                raise _Unreachable(host) from exc
        if not found or any(ip is None for ip in found):
            raise _Unreachable(host)
        for ip in found:
            self.policy.check_address(host, ip, None)  # type: ignore[arg-type]
        return found  # type: ignore[return-value]

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for ip in await self.addresses(host, port):
            try:
                return await self.inner.connect_tcp(str(ip), port, timeout=timeout,
                                                    local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or _Unreachable(host)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for images")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _error(message: str, code: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


class ImageFetcher:
    """One shared connection pool; each fetch is bounded in time, bytes and redirects."""

    def __init__(self, policy: UrlPolicy, *, connect_timeout_s: float, total_timeout_s: float,
                 max_bytes: int, max_redirects: int, resolver: Resolver | None = None,
                 ssl_context: ssl.SSLContext | None = None, max_connections: int = 64) -> None:
        self.policy = policy
        self.connect_timeout_s = connect_timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.backend = PinnedBackend(policy, resolver or system_resolver)
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(cafile=certifi.where()),
            max_connections=max_connections, max_keepalive_connections=16, keepalive_expiry=30,
            network_backend=self.backend)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def fetch(self, url: str, param: str) -> bytes:
        """The image bytes at ``url``.

        Raises:
            InvalidRequestError: bad or blocked URL (``invalid_image_url``,
                ``image_url_blocked``), unreachable host (``image_url_unreachable``), timeout
                (``image_fetch_timeout``), too large (``image_too_large``), an HTTP error or too
                many redirects (``image_fetch_failed``).
        """
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await self._follow(url, param)
        except BlockedURL as exc:
            exc.param = param
            raise
        except (TimeoutError, httpcore.TimeoutException) as exc:
            raise _error(f"Fetching the image took longer than {self.total_timeout_s:g}s",
                         "image_fetch_timeout", param) from exc
        except _Unreachable as exc:
            raise _error(f"Image host '{exc}' could not be resolved", "image_url_unreachable",
                         param) from exc
        except httpcore.ConnectError as exc:
            raise _error("Could not connect to the image host (refused, unreachable or a TLS "
                         "failure)", "image_url_unreachable", param) from exc
        except httpcore.NetworkError as exc:
            raise _error("The image host closed the connection", "image_fetch_failed",
                         param) from exc
        except (httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise _error("The image host broke the HTTP protocol", "image_fetch_failed",
                         param) from exc

    async def _follow(self, url: str, param: str) -> bytes:
        for _ in range(self.max_redirects + 1):
            hop = self.policy.check_url(url, param)
            location = await self._get(hop, param)
            if isinstance(location, bytes):
                return location
            try:
                url = str(httpx.URL(url).join(location))
            except (httpx.InvalidURL, ValueError) as exc:
                raise _error("Image URL redirected to an invalid URL", "image_fetch_failed",
                             param) from exc
        raise _error(f"Image URL redirected more than {self.max_redirects} times",
                     "image_fetch_failed", param)

    async def _get(self, hop: Target, param: str) -> bytes | str:
        """One GET: the body, or the redirect's Location."""
        url = httpcore.URL(scheme=hop.scheme.encode(), host=hop.host.encode(), port=hop.port,
                           target=hop.target)
        headers = [(b"Host", hop.authority), (b"User-Agent", b"chungus-image-fetcher"),
                   (b"Accept", b"image/*"), (b"Accept-Encoding", b"identity")]
        timeout = {"connect": self.connect_timeout_s, "read": self.total_timeout_s,
                   "write": self.total_timeout_s, "pool": self.total_timeout_s}
        async with self.pool.stream("GET", url, headers=headers,
                                    extensions={"timeout": timeout}) as resp:
            fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in resp.headers}
            if resp.status in _REDIRECTS and "location" in fields:
                return fields["location"]
            if resp.status != 200:
                raise _error(f"Image URL answered HTTP {resp.status}", "image_fetch_failed", param)
            declared = fields.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise _error(f"Image is larger than {self.max_bytes} bytes", "image_too_large",
                             param)
            chunks, size = [], 0
            async for chunk in resp.aiter_stream():
                size += len(chunk)
                if size > self.max_bytes:  # stop reading: the rest never enters memory
                    raise _error(f"Image is larger than {self.max_bytes} bytes",
                                 "image_too_large", param)
                chunks.append(chunk)
        log.debug("fetched %d image bytes from %s", size, hop.host)
        return b"".join(chunks)
