"""The key is checked before the body is read: a client without a valid key cannot make the
gateway buffer a large body (it gets its 401 while the upload is still unfinished)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.keys_support import ADMIN, GatewayServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    work = tmp_path_factory.mktemp("auth-before-body")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}"})
    gw.start()
    yield gw
    gw.stop()


def _partial_upload(port: int, path: str, authorization: str | None) -> tuple[str, float]:
    """Announce a 19 MiB body, send 1 KiB of it, and read what the server answers."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {19 * 1024 * 1024}\r\n")
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + b"{" + b" " * 1023)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode("latin-1"), time.monotonic() - started


@pytest.mark.parametrize("authorization", [None, "Bearer sk-chungus-not-a-real-key-000000",
                                           "Basic abc"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/embeddings",
                                  "/admin/keys"])
def test_unauthenticated_upload_is_refused_before_the_body(server: GatewayServer, path: str,
                                                           authorization: str | None) -> None:
    reply, took = _partial_upload(server.port, path, authorization)
    assert reply.startswith("HTTP/1.1 401"), reply[:200]
    assert '"code":"invalid_api_key"' in reply
    assert took < 3


def test_a_user_key_on_an_admin_route_is_refused_before_the_body(server: GatewayServer) -> None:
    import httpx

    created = httpx.post(server.base_url + "/admin/keys", json={"name": "user"},
                         headers={"Authorization": f"Bearer {ADMIN}"})
    user_key = created.json()["key"]
    reply, took = _partial_upload(server.port, "/admin/keys", f"Bearer {user_key}")
    assert reply.startswith("HTTP/1.1 403"), reply[:200]
    assert '"code":"admin_required"' in reply and took < 3


def test_health_and_404_need_no_key(server: GatewayServer, tmp_path: Path) -> None:
    import httpx

    assert httpx.get(server.base_url + "/health/live").status_code == 200
    missing = httpx.get(server.base_url + "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
