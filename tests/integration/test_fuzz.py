"""Fuzz every route with schemathesis against the real app over the fake backend in a real uvicorn
process, with the admin key, with a user's key, with no key and with a wrong key.

Each response must: not be a 5xx; have a documented status and content type; match its documented
schema; carry the OpenAI error body (``{"error": {"message", "type", "param", "code"}}``) on
every 4xx, documented or not; on ``text/event-stream``, be ``data: <chunk>`` events that match
``ChatCompletionChunk`` (or the error body) ending in ``data: [DONE]``. Schema-violating requests
must be refused with a 4xx, other methods with 405 and an ``Allow`` header. Without a valid key
every keyed route answers 401 (or 429 once the address has spent its failed-authentication
budget, by design); a user's key never passes an admin route (403).

On top of the generated cases, schemathesis' coverage phase (boundary values of every field) and
stateful phase (create a key, then read, change and revoke it) run once with the admin key.

Not checked: that every schema-valid request succeeds: the schema gives types, the service also
checks values (roles, ranges, context length) and answers those with 400.

CI runs ``CHUNGUS_FUZZ_EXAMPLES`` (default 10) examples per route and mode with the key, a quarter
of that without, derandomized; ``make fuzz`` runs many more with fresh randomness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema
import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from litestar.testing import TestClient

from tests.integration.keys_support import ADMIN, GatewayServer, auth

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402  (after the importorskip)
from schemathesis.checks import CHECKS, load_all_checks  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("CHUNGUS_FUZZ_EXAMPLES", "10"))
KEYLESS = max(3, EXAMPLES // 4)  # without a valid key every request stops at the key check
RANDOM = os.environ.get("CHUNGUS_FUZZ_RANDOM", "") == "1"
WRONG_KEY = "sk-chungus-" + "w" * 32
BUILT_IN = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
            "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
            "missing_required_header", "unsupported_method", "allow_header_conformance"]
# Health probes answer 503 with their own body by design (draining, a model not ready).
OWN_BODIES = {"GET /health/ready", "GET /health/models"}

# Bugs found by this fuzzer in code owned elsewhere: operation label -> reason (strict xfail).
KNOWN: dict[str, str] = {}


def _document() -> dict[str, Any]:
    """The document the app serves, built in-process (keys on, nothing started) to name tests."""
    from gateway.app import create_app
    from gateway.backends.fake import FakeBackend
    from gateway.registry import Registry
    from gateway.settings import Settings

    settings = Settings(admin_key=ADMIN, database_url="sqlite+aiosqlite:///:memory:", access_log=False)
    app = create_app(settings, FakeBackend(), registry=Registry(models=(), base_dir="."))
    return dict(TestClient(app).get("/openapi.json").json())


DOC = _document()
LABELS = [f"{method.upper()} {path}" for path, item in DOC["paths"].items() for method in item]


def _keyed(label: str) -> bool:
    method, path = label.split(" ", 1)
    return bool(DOC["paths"][path][method.lower()]["security"])


# Checks of our own -------------------------------------------------------------------------------


def _json_body(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from exc


def openai_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx (documented or not) is the OpenAI error body, exactly."""
    if response.status_code < 400 or case.operation.label in OWN_BODIES:
        return None
    body = _json_body(response)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str), body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert error["code"] is None or isinstance(error["code"], str), body
    return True


def _validate(name: str, instance: object) -> None:
    jsonschema.validate(instance, {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]})


def sse_events(ctx: Any, response: Any, case: Any) -> bool | None:
    """A stream is ``data: <ChatCompletionChunk>`` (``<Completion>`` for /v1/completions) events (or
    one error event), then ``[DONE]``."""
    media = "".join(response.headers.get("content-type", [""]))
    if not media.startswith("text/event-stream"):
        return None
    events = response.content.decode().split("\n\n")
    if "/responses" in case.operation.path:
        return _named_events(events)
    assert events[-2:] == ["data: [DONE]", ""], events[-3:]
    for event in events[:-2]:
        assert event.startswith("data: "), event
        payload = json.loads(event[len("data: "):])
        # /v1/completions streams its response shape (Completion); chat streams chunks.
        chunk = "ChatCompletionChunk" if "/chat/" in case.operation.path else "Completion"
        _validate("ErrorResponse" if "error" in payload else chunk, payload)
    return True


def refused_without_key(ctx: Any, response: Any, case: Any) -> bool | None:
    """A keyed route never serves a request without a valid key."""
    if not _keyed(case.operation.label):
        return None
    body = _json_body(response)
    if response.status_code == 429:
        assert body["error"]["code"] == "too_many_auth_failures", body
    else:
        assert response.status_code == 401, (response.status_code, body)
    return True


def admin_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A valid key that is not an admin's never gets past an admin route."""
    if not case.operation.path.startswith("/admin/"):
        return None
    body = _json_body(response)
    assert response.status_code == 403 and body["error"]["code"] == "admin_required", body
    return True


# The server and the schema -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    work = tmp_path_factory.mktemp("fuzz")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}"}).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def schema(server: GatewayServer) -> Any:
    loaded = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    # Unknown query parameters are ignored (as OpenAI does), so sending them is not "invalid".
    loaded.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    return loaded


@pytest.fixture(scope="module")
def spare_key(server: GatewayServer) -> str:
    """The id of a key the fuzzer may read, change and revoke."""
    import httpx

    r = httpx.post(server.base_url + "/admin/keys", json={"name": "fuzz"}, headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture(scope="module")
def user_key(server: GatewayServer) -> str:
    """A valid key that is not an admin's, limited to model chat-a."""
    import httpx

    r = httpx.post(server.base_url + "/admin/keys", json={"name": "fuzz-user", "allowed_models": ["chat-a"]},
                   headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


ROLES = ("system", "user", "assistant")
PLAUSIBLE = {"model", "messages", "stream", "stream_options", "stop", "seed", "user", "max_tokens",
             "input", "encoding_format"}


def _steer(case: Any, data: st.DataObject, spare_key: str) -> None:
    """Positive cases: half of them a real model or key and plausible values, so the fuzzer gets
    past the 404s and the value checks into generation and streaming."""
    body = case.body
    if isinstance(body, dict) and "model" in body and data.draw(st.booleans(), label="plausible"):
        body["model"] = "chat-a"
        if data.draw(st.booleans(), label="plausible values only"):  # else the value checks' turn
            for name in set(body) - PLAUSIBLE:
                del body[name]
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                message["role"] = data.draw(st.sampled_from(ROLES), label="role")
                content = message.get("content")
                if isinstance(content, list):  # chat-a reads no images
                    content = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
                if not content:
                    content = data.draw(st.text(min_size=1, max_size=40), label="content")
                message["content"] = content
        if not isinstance(body.get("max_tokens"), int) or not 1 <= body["max_tokens"] <= 400:
            body.pop("max_tokens", None)
        if "messages" in body:
            body["stream"] = data.draw(st.booleans(), label="stream")
    params = case.path_parameters or {}
    if "model_id" in params and case.method == "GET" and data.draw(st.booleans(), label="real id"):
        params["model_id"] = "chat-a"
    if "key_id" in params and data.draw(st.booleans(), label="real key"):
        params["key_id"] = spare_key


def _fuzz(operation: Any, mode: GenerationMode, call: Callable[[Any], None], spare_key: str,
          settings: hypothesis.settings) -> Callable[[], None]:
    @hypothesis.given(case=operation.as_strategy(mode), data=st.data())
    @settings
    def fuzz(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            _steer(case, data, spare_key)
        call(case)

    return fuzz  # type: ignore[no-any-return]  # hypothesis fills the arguments


def _run(schema: Any, label: str, headers: dict[str, str], checks: list[Callable[..., Any]],
         base_url: str, spare_key: str, examples: int = EXAMPLES) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    settings = hypothesis.settings(
        max_examples=examples, deadline=None, database=None, derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])

    def call(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=30)

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            _fuzz(operation, mode, call, spare_key, settings)()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to negate (no body; a path string stays a string): positive covered it.
            assert mode is GenerationMode.NEGATIVE and not operation.body, label


def _params(auth_mode: str) -> list[Any]:
    out = []
    for label in LABELS:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN[label])] if label in KNOWN else []
        out.append(pytest.param(label, id=f"{label}-{auth_mode}", marks=marks))
    return out


def _checks(*extra: Callable[..., Any]) -> list[Callable[..., Any]]:
    load_all_checks()
    return [*CHECKS.get_by_names(BUILT_IN), openai_error_body, sse_events, *extra]


@pytest.mark.parametrize("label", _params("key"))
def test_fuzz_with_a_valid_key(label: str, schema: Any, server: GatewayServer, spare_key: str) -> None:
    _run(schema, label, auth(ADMIN), _checks(), server.base_url, spare_key)


@pytest.mark.parametrize("label", [p for p in _params("user-key") if _keyed(p.values[0])])
def test_fuzz_with_a_user_key(label: str, schema: Any, server: GatewayServer, spare_key: str,
                              user_key: str) -> None:
    _run(schema, label, auth(user_key), _checks(admin_only), server.base_url, spare_key, KEYLESS)


@pytest.mark.parametrize("label", [p for p in _params("no-key") if _keyed(p.values[0])])
def test_fuzz_without_a_key(label: str, schema: Any, server: GatewayServer, spare_key: str) -> None:
    _run(schema, label, {}, _checks(refused_without_key), server.base_url, spare_key, KEYLESS)


@pytest.mark.parametrize("label", [p for p in _params("wrong-key") if _keyed(p.values[0])])
def test_fuzz_with_a_wrong_key(label: str, schema: Any, server: GatewayServer, spare_key: str) -> None:
    _run(schema, label, auth(WRONG_KEY), _checks(refused_without_key), server.base_url, spare_key, KEYLESS)


def _named_events(events: list[str]) -> bool:
    """The Responses API streams ``event: <type>`` + ``data: <event>`` pairs, numbered from 0, with
    no ``[DONE]``; it ends with a terminal event (or ``error`` then ``response.failed``)."""
    assert events[-1] == "", events[-2:]
    kinds = []
    for number, event in enumerate(events[:-1]):
        head, _, data = event.partition("\n")
        assert head.startswith("event: ") and data.startswith("data: "), event
        payload = json.loads(data[len("data: "):])
        assert payload["type"] == head[len("event: "):], event
        assert payload["sequence_number"] == number, event
        kinds.append(payload["type"])
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed"), kinds
    return True


def test_boundary_values_and_request_sequences(server: GatewayServer, tmp_path: Path) -> None:
    """schemathesis' own phases over the admin key: *coverage* (the boundaries of every field,
    missing and wrong-typed fields, for every route) and *stateful* (sequences linked through
    responses: create a key, then read, change and revoke it)."""
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", server.base_url + "/openapi.json",
               "--phases", "coverage,stateful", "--max-examples", str(EXAMPLES), "--checks", ",".join(
                   ["not_a_server_error", "status_code_conformance", "content_type_conformance",
                    "response_schema_conformance", "negative_data_rejection"]),
               "--header", f"Authorization: Bearer {ADMIN}", "--workers", "1", "--no-color",
               "--request-timeout", "30", "--generation-with-security-parameters", "false"]
    if not RANDOM:
        command += ["--seed", "1"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Tested: 32" in run.stdout  # every route but /openapi.json itself


def test_the_fuzzer_reaches_every_route(server: GatewayServer) -> None:
    """The server serves the document the tests were named from."""
    import httpx

    served = httpx.get(server.base_url + "/openapi.json").json()
    assert sorted(served["paths"]) == sorted(DOC["paths"])
    assert len(LABELS) == 33
