"""The image fetcher against real loopback HTTP and HTTPS servers: redirects to blocked targets,
byte caps while streaming, timeouts, DNS rebinding, and TLS checked against the URL's name.

DNS is the one fake: a resolver function stands in for the system's, because tests cannot make
public names resolve to loopback.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import InvalidRequestError
from gateway.images.fetch import ImageFetcher, Resolver
from gateway.images.ssrf import BlockedURL, UrlPolicy
from tests.images import ImageServer, image_server, make_certificates

P = "messages[0].content[0].image_url.url"
# The test allowlist: exactly one loopback address. 127.0.0.2 stays blocked, and a second server
# listens there to prove that nothing ever connects to it.
ALLOW = UrlPolicy(allow_http=True, allowed_hosts=("127.0.0.1/32",))


def _fetcher(policy: UrlPolicy = ALLOW, resolver: Resolver | None = None,
             ssl_context: ssl.SSLContext | None = None, **kw: float) -> ImageFetcher:
    args = {"connect_timeout_s": 1.0, "total_timeout_s": 2.0, "max_bytes": 1024 * 1024,
            "max_redirects": 2, **kw}
    return ImageFetcher(policy, resolver=resolver, ssl_context=ssl_context, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def blocked() -> Iterator[ImageServer]:
    with image_server("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="module")
def server(blocked: ImageServer) -> Iterator[ImageServer]:
    with image_server(redirects={"/to-blocked": blocked.base + "/cat.png",
                                 "/to-named": f"http://rebind.test:{blocked.port}/cat.png"}) as s:
        yield s


async def _code(fetcher: ImageFetcher, url: str) -> str | None:
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(url, P)
    assert info.value.param == P
    return info.value.code


async def test_fetches_images_and_follows_allowed_redirects(server: ImageServer) -> None:
    fetcher = _fetcher()
    try:
        assert (await fetcher.fetch(server.base + "/cat.png", P)).startswith(b"\x89PNG")
        assert (await fetcher.fetch(server.base + "/to-cat", P)).startswith(b"\x89PNG")
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(("path", "code"), [
    ("/to-metadata", "image_url_blocked"), ("/to-private", "image_url_blocked"),
    ("/to-localhost", "image_url_blocked"), ("/to-mapped", "image_url_blocked"),
    ("/to-blocked", "image_url_blocked"), ("/to-file", "invalid_image_url"),
    ("/loop", "image_fetch_failed"), ("/missing", "image_fetch_failed"),
    ("/big", "image_too_large"),
])
async def test_refusals(server: ImageServer, blocked: ImageServer, path: str, code: str) -> None:
    fetcher = _fetcher()
    try:
        assert await _code(fetcher, server.base + path) == code
    finally:
        await fetcher.aclose()
    assert blocked.hits == []


async def test_byte_cap_holds_while_streaming_without_a_length(server: ImageServer) -> None:
    fetcher = _fetcher(max_bytes=256 * 1024, total_timeout_s=10)
    try:
        start = time.monotonic()
        assert await _code(fetcher, server.base + "/endless") == "image_too_large"
        assert time.monotonic() - start < 5
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_total_timeout_covers_headers_and_a_dripping_body(server: ImageServer,
                                                                path: str) -> None:
    fetcher = _fetcher(total_timeout_s=1.0)
    try:
        start = time.monotonic()
        assert await _code(fetcher, server.base + path) == "image_fetch_timeout"
        assert time.monotonic() - start < 2.5
    finally:
        await fetcher.aclose()


async def test_unreachable_hosts() -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    fetcher = _fetcher(resolver=nowhere)
    try:
        assert await _code(fetcher, "http://127.0.0.1:1/x.png") == "image_url_unreachable"
        assert await _code(fetcher, "https://nowhere.test/x.png") == "image_url_unreachable"
    finally:
        await fetcher.aclose()


async def test_blocked_urls_are_refused_before_any_connection(blocked: ImageServer) -> None:
    fetcher = _fetcher(UrlPolicy())  # no allowlist, https only
    try:
        for url in ("https://localhost/x.png", "https://127.0.0.1/x.png", "http://8.8.8.8/x.png",
                    blocked.base.replace("http", "https") + "/cat.png", "https://0x7f.2/x.png"):
            with pytest.raises(BlockedURL):
                await fetcher.fetch(url, P)
    finally:
        await fetcher.aclose()
    assert blocked.hits == []


async def test_names_are_checked_after_resolution_and_connected_as_checked(
        server: ImageServer, blocked: ImageServer) -> None:
    answers = {"rebind.test": [["127.0.0.1"], ["127.0.0.2"]], "multi.test": [["127.0.0.1",
                                                                                "127.0.0.2"]],
               "private.test": [["10.0.0.7"]], "mapped.test": [["::ffff:127.0.0.2"]]}
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]

    fetcher = _fetcher(resolver=resolver)
    try:
        # First answer allowed (127.0.0.1); a second lookup would say 127.0.0.2. There is none:
        # the socket goes to the address that was checked.
        url = f"http://rebind.test:{server.port}/cat.png"
        assert (await fetcher.fetch(url, P)).startswith(b"\x89PNG")
        assert asked == ["rebind.test"]
        for host in ("multi.test", "private.test", "mapped.test"):  # every address must pass
            assert await _code(fetcher, f"http://{host}:{blocked.port}/cat.png") == \
                "image_url_blocked"
        # A redirect to a name that now resolves to a blocked address is refused too.
        assert await _code(fetcher, server.base + "/to-named") == "image_url_blocked"
    finally:
        await fetcher.aclose()
    assert blocked.hits == []


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ImageServer, Path]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"), ("images.test",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with image_server(tls=context) as server:
        yield server, ca


async def test_tls_verifies_the_url_name_while_connecting_to_the_checked_address(
        tls_server: tuple[ImageServer, Path]) -> None:
    server, ca = tls_server

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = _fetcher(UrlPolicy(allowed_hosts=("127.0.0.1/32",)), resolver=resolver,
                       ssl_context=ssl.create_default_context(cafile=str(ca)))
    try:
        good = f"https://images.test:{server.port}/cat.png"
        assert (await fetcher.fetch(good, P)).startswith(b"\x89PNG")
        # Same address, another name: the certificate does not match, so nothing is fetched.
        assert await _code(fetcher, f"https://other.test:{server.port}/cat.png") == \
            "image_url_unreachable"
        assert await _code(fetcher, f"https://127.0.0.1:{server.port}/cat.png") == \
            "image_url_unreachable"
        # A pooled connection to images.test is not reused for another name on the same address.
        assert (await fetcher.fetch(good, P)).startswith(b"\x89PNG")
        assert await _code(fetcher, f"https://other.test:{server.port}/cat.png") == \
            "image_url_unreachable"
    finally:
        await fetcher.aclose()
    assert server.hits == ["/cat.png", "/cat.png"]
