"""Console sessions: cookie flags, CSRF and origin checks, what the Models page says a model supports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.auth.principal import Principal
from gateway.auth.store import KeyRecord
from gateway.console.service import capabilities
from gateway.console.sessions import ConsoleSession, ConsoleSessions, check_csrf, principal_of
from gateway.errors import PermissionDeniedError
from gateway.registry import ModelEntry


@dataclass
class Url:
    scheme: str


@dataclass
class FakeRequest:
    scheme: str = "http"
    headers: dict[str, str] = field(default_factory=lambda: {"host": "gw:8080"})

    @property
    def url(self) -> Url:
        return Url(self.scheme)


SESSION = ConsoleSession("d", Principal(key_id="k"), "token-123", 0.0)


def _sessions(ttl_s: float = 600.0) -> ConsoleSessions:
    return ConsoleSessions(None, None, ttl_s)  # type: ignore[arg-type]  # cookies need neither


def test_cookie_is_http_only_strict_and_secure_only_on_https() -> None:
    plain = _sessions().cookie_header(FakeRequest(), "abc")  # type: ignore[arg-type]
    assert plain == "chungus_console=abc; Path=/console; Max-Age=600; HttpOnly; SameSite=Strict"
    https = _sessions(30.5).cookie_header(FakeRequest("https"), "abc")  # type: ignore[arg-type]
    assert https.endswith("Max-Age=30; HttpOnly; SameSite=Strict; Secure")
    cleared = _sessions().cookie_header(FakeRequest(), None)  # type: ignore[arg-type]
    assert cleared.startswith("chungus_console=; Path=/console; Max-Age=0;")


@pytest.mark.parametrize(("headers", "form", "ok"), [
    ({"x-csrf-token": "token-123"}, None, True),
    ({}, "token-123", True),  # the sign-out form's hidden field
    ({"x-csrf-token": "token-123", "origin": "http://gw:8080"}, None, True),
    ({}, None, False),
    ({"x-csrf-token": "token-12"}, None, False),
    ({"x-csrf-token": "token-1234"}, None, False),
    ({"x-csrf-token": "token-123", "origin": "http://gw:8081"}, None, False),  # another port
    ({"x-csrf-token": "token-123", "origin": "https://gw:8080"}, None, False),
    ({"x-csrf-token": "token-123", "origin": "null"}, None, False),
])
def test_csrf_needs_the_token_and_this_origin(headers: dict[str, str], form: str | None, ok: bool) -> None:
    request: Any = FakeRequest(headers={"host": "gw:8080", **headers})
    if ok:
        check_csrf(request, SESSION, form)
    else:
        with pytest.raises(PermissionDeniedError) as info:
            check_csrf(request, SESSION, form)
        assert info.value.code == "csrf_failed" and info.value.status == 403


def test_a_stored_key_becomes_its_principal() -> None:
    record = KeyRecord(id="k1", digest="d", prefix="p", name="n", admin=False,
                       allowed_models=("a",), rpm=1, tpm=2, max_concurrent=3)
    assert principal_of(record) == Principal(key_id="k1", name="n", allowed_models=frozenset({"a"}),
                                             rpm=1, tpm=2, max_concurrent=3)
    assert principal_of(KeyRecord(id="k2", digest="d", prefix="p")).allowed_models is None


def test_capabilities_in_words() -> None:
    vision = ModelEntry(id="v", triton_model="v", vision=True, max_images=2, context_length=2048,
                        max_tokens_limit=512, structured_outputs=False, logprobs=False)
    assert capabilities(vision) == ["chat", "vision (up to 2 images)", "streaming",
                                    "context 2048 tokens", "max_tokens up to 512"]
    tools = ModelEntry(id="t", triton_model="t", tool_parser="hermes")
    assert capabilities(tools)[:3] == ["chat", "tools (hermes format)", "streaming"]
    assert capabilities(tools)[-2:] == ["structured outputs", "logprobs"]
    llmapi = ModelEntry(id="l", triton_model="l", contract="llmapi")
    assert "structured outputs" not in capabilities(llmapi) and "logprobs" not in capabilities(llmapi)
    emb = ModelEntry(id="e", triton_model="e", kind="embedding", embedding_dim=384,
                     supports_dimensions=True, max_input_tokens=256)
    assert capabilities(emb) == ["embeddings, 384 dimensions", "dimensions parameter", "256 input tokens"]
