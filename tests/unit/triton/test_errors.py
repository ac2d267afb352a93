"""Every Triton failure maps to one gateway error, in one place."""

from __future__ import annotations

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from gateway.errors import (
    BadGatewayError,
    GatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from gateway.triton.errors import map_exception, mapped_errors


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def _ise(message: str, status: str | None = None) -> InferenceServerException:
    return InferenceServerException(msg=message, status=status)


@pytest.mark.parametrize(("exc", "kind", "status", "code"), [
    (_Rpc(grpc.StatusCode.UNAVAILABLE), ServiceUnavailableError, 503, "service_unavailable"),
    (_Rpc(grpc.StatusCode.CANCELLED), ServiceUnavailableError, 503, "service_unavailable"),
    (_Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), GatewayTimeoutError, 504, "timeout"),
    (_Rpc(grpc.StatusCode.NOT_FOUND), ServiceUnavailableError, 503, "model_not_ready"),
    (_Rpc(grpc.StatusCode.PERMISSION_DENIED), BadGatewayError, 502, "bad_gateway"),
    (_ise("x", "StatusCode.UNAVAILABLE"), ServiceUnavailableError, 503, "service_unavailable"),
    (_ise("x", "StatusCode.DEADLINE_EXCEEDED"), GatewayTimeoutError, 504, "timeout"),
    (_ise("x", "StatusCode.NOT_FOUND"), ServiceUnavailableError, 503, "model_not_ready"),
    (_ise("boom: internal state"), BadGatewayError, 502, "bad_gateway"),
    (_ise("model instance is not healthy"), ServiceUnavailableError, 503, "service_unavailable"),
])
def test_status_mapping(exc: BaseException, kind: type[GatewayError], status: int, code: str) -> None:
    err = map_exception(exc)
    assert type(err) is kind
    assert (err.status, err.code) == (status, code)


def test_model_refusals_are_the_callers_fault_with_the_message_kept() -> None:
    err = map_exception(_ise("invalid request: stop_words must be strings", "StatusCode.INTERNAL"))
    assert isinstance(err, InvalidRequestError)
    assert (err.status, err.message, err.code) == (400, "stop_words must be strings", None)
    for words in ("prompt exceeds the context window (2048)",
                  "Prompt length (5000) exceeds maximum input length (4096).",
                  "The sum of prompt length (9) and max_tokens should not exceed max_seq_len (8)"):
        ctx = map_exception(_ise(words))
        assert (ctx.status, ctx.code, ctx.param) == (400, "context_length_exceeded", "messages")


def test_model_internals_never_reach_the_client() -> None:
    err = map_exception(_ise("CUDA error at /src/secret/path.cu:42"))
    assert "secret" not in err.message and err.message == "the model failed to generate a response"


def test_mapped_errors_raises_from_the_original() -> None:
    original = _Rpc(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(ServiceUnavailableError) as info, mapped_errors():
        raise original
    assert info.value.__cause__ is original


def test_mapped_errors_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), mapped_errors():
        raise KeyError("x")


class _NotAStatus(Exception):
    def code(self) -> str:
        return "UNAVAILABLE"


class _CodeAttribute(Exception):
    code = grpc.StatusCode.UNAVAILABLE  # not callable: not a gRPC error


@pytest.mark.parametrize(("exc", "kind", "message"), [
    (_Rpc(grpc.StatusCode.UNAVAILABLE), ServiceUnavailableError, "the model server is unavailable"),
    (_Rpc(grpc.StatusCode.CANCELLED), ServiceUnavailableError, "the model server is unavailable"),
    (_Rpc(grpc.StatusCode.DEADLINE_EXCEEDED), GatewayTimeoutError, "the model server did not finish in time"),
    (_Rpc(grpc.StatusCode.NOT_FOUND), ServiceUnavailableError, "the model is not loaded on the model server"),
    (_Rpc(grpc.StatusCode.INTERNAL), BadGatewayError, "the model server failed the request"),
    (_NotAStatus(), BadGatewayError, "the model server failed the request"),
    (_CodeAttribute(), BadGatewayError, "the model server failed the request"),
    (ValueError("x"), BadGatewayError, "the model server failed the request"),
    (_ise("invalid request: x", "StatusCode.PERMISSION_DENIED"), BadGatewayError,
     "the model server failed the request"),
    (_ise("model is unavailable"), ServiceUnavailableError, "the model is temporarily unavailable"),
    (_ise("Model Not Healthy"), ServiceUnavailableError, "the model is temporarily unavailable"),
    (_ise(None), BadGatewayError, "the model failed to generate a response"),  # type: ignore[arg-type]
])
def test_messages_are_fixed_per_failure(exc: BaseException, kind: type[GatewayError], message: str) -> None:
    err = map_exception(exc)
    assert type(err) is kind
    assert (err.message, err.param) == (message, None)


@pytest.mark.parametrize("status", [None, "StatusCode.INTERNAL", "StatusCode.UNKNOWN",
                                    "StatusCode.INVALID_ARGUMENT"])
def test_the_models_own_statuses_carry_its_message(status: str | None) -> None:
    err = map_exception(_ise("invalid request: top_k must be positive", status))
    assert type(err) is InvalidRequestError
    assert (err.message, err.param, err.code) == ("top_k must be positive", None, None)


def test_client_markers_are_matched_ignoring_case() -> None:
    err = map_exception(_ise("INVALID REQUEST: Bad stop"))
    assert type(err) is InvalidRequestError
    assert err.message == "INVALID REQUEST: Bad stop"  # only the lower-case prefix is cut


def test_too_long_keeps_the_models_words_after_the_prefix() -> None:
    err = map_exception(_ise("invalid request:  the prompt does not fit the Context Window  "))
    assert type(err) is InvalidRequestError
    assert (err.message, err.param, err.code) == (
        "the prompt does not fit the Context Window", "messages", "context_length_exceeded")
    trt = map_exception(_ise("Prompt length (5000) Exceeds Maximum Input Length (4096)."))
    assert trt.message == "Prompt length (5000) Exceeds Maximum Input Length (4096)."
    assert (trt.status, trt.code) == (400, "context_length_exceeded")


def test_mapped_errors_translates_tritonclient_exceptions() -> None:
    original = _ise("x", "StatusCode.DEADLINE_EXCEEDED")
    with pytest.raises(GatewayTimeoutError) as info, mapped_errors():
        raise original
    assert info.value.__cause__ is original
    assert info.value.message == "the model server did not finish in time"


def test_mapped_errors_passes_when_nothing_fails() -> None:
    with mapped_errors():
        value = 1
    assert value == 1


def test_only_the_first_invalid_request_prefix_is_cut() -> None:
    err = map_exception(_ise("invalid request: stop: invalid request: nested"))
    assert err.message == "stop: invalid request: nested"
    ctx = map_exception(_ise("invalid request: context window: invalid request: x"))
    assert (ctx.message, ctx.code) == ("context window: invalid request: x", "context_length_exceeded")
