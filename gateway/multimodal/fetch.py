"""Fetch an image URL without SSRF: every hop's addresses checked, and the checked address is the one
connected to (TLS still verifies the host name), so DNS rebinding cannot switch it."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urljoin

import httpx

from gateway.errors import InvalidRequestError
from gateway.multimodal.ssrf import IP, UrlPolicy, parse_ip_host

_REDIRECTS = {301, 302, 303, 307, 308}


def _error(message: str, code: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


class ImageFetcher:
    """One shared HTTP client; each fetch is bounded in time, bytes and redirects."""

    def __init__(self, policy: UrlPolicy, *, connect_timeout_s: float, total_timeout_s: float,
                 max_bytes: int, max_redirects: int) -> None:
        self.policy = policy
        self.total_timeout_s = total_timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(total_timeout_s, connect=connect_timeout_s),
            headers={"User-Agent": "chungus-image-fetcher", "Accept": "image/*"})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, url: str, param: str) -> bytes:
        """The image bytes at ``url``.

        Raises:
            InvalidRequestError: blocked, unreachable, timed out, too large, too many redirects.
        """
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await self._follow(url, param)
        except TimeoutError as exc:
            raise _error(f"Fetching the image took longer than {self.total_timeout_s:g}s",
                         "image_fetch_timeout", param) from exc
        except httpx.TimeoutException as exc:
            raise _error("Timed out fetching the image", "image_fetch_timeout", param) from exc
        except httpx.HTTPError as exc:
            raise _error(f"Could not fetch the image: {type(exc).__name__}", "image_fetch_failed",
                         param) from exc

    async def _follow(self, url: str, param: str) -> bytes:
        for _ in range(self.max_redirects + 1):
            scheme, host, port = self.policy.check_url(url, param)
            ip = await self._resolve(host, port, param)
            target = httpx.URL(url).copy_with(host=str(ip))
            extensions = {"sni_hostname": host} if scheme == "https" else {}
            headers = {"Host": httpx.URL(url).netloc.decode("ascii")}
            async with self.client.stream("GET", target, headers=headers,
                                          extensions=extensions) as resp:
                if resp.status_code in _REDIRECTS and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    raise _error(f"Image URL answered HTTP {resp.status_code}",
                                 "image_fetch_failed", param)
                return await self._read(resp, param)
        raise _error(f"Image URL redirected more than {self.max_redirects} times",
                     "image_fetch_failed", param)

    async def _resolve(self, host: str, port: int, param: str) -> IP:
        literal = parse_ip_host(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise _error(f"Image host '{host}' could not be resolved", "image_fetch_failed",
                             param) from exc
            addresses = [parse_ip_host(str(info[4][0])) for info in infos]
        for ip in addresses:  # every address must pass: the client could be sent to any
            if ip is None:
                raise _error(f"Image host '{host}' resolved to an unusable address",
                             "image_fetch_failed", param)
            self.policy.check_address(host, ip, param)
        return addresses[0]  # type: ignore[return-value]

    async def _read(self, resp: httpx.Response, param: str) -> bytes:
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise _error(f"Image is larger than {self.max_bytes} bytes", "image_too_large", param)
        chunks, size = [], 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise _error(f"Image is larger than {self.max_bytes} bytes", "image_too_large", param)
            chunks.append(chunk)
        return b"".join(chunks)
