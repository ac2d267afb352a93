"""Embeddings: OpenAI request -> validated strings -> backend vectors -> float or base64 response."""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from gateway.auth.principal import Guard, Principal
from gateway.backends.base import Backend
from gateway.catalog import ModelCatalog
from gateway.embeddings.protocol import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry
from gateway.tokens import Tokenizers


def _bad(message: str, code: str, param: str = "input") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def parse_input(value: Any, max_inputs: int) -> list[str]:
    """The request's ``input`` as a non-empty list of non-empty strings.

    Raises:
        InvalidRequestError: ``missing_input``, ``invalid_input`` or ``too_many_inputs``.
    """
    if value is msgspec.UNSET or value is None:
        raise _bad("'input' is required", "missing_input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _bad("'input' must be a non-empty string or a non-empty array of strings",
                   "invalid_input")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value) or all(
            isinstance(v, list) for v in value):
        raise _bad("token-id input is not supported by this server; send the text instead",
                   "unsupported_input")
    if len(value) > max_inputs:
        raise _bad(f"at most {max_inputs} inputs are allowed per request, got {len(value)}",
                   "too_many_inputs")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _bad(f"input[{i}] must be a string", "invalid_input", f"input[{i}]")
        if not item:
            raise _bad(f"input[{i}] is empty; empty strings cannot be embedded", "invalid_input",
                       f"input[{i}]")
    return value


def check_dimensions(dimensions: int | None, entry: ModelEntry) -> int | None:
    """The length to cut vectors to, or None to keep them whole; checked before any work.

    Raises:
        InvalidRequestError: the model cannot shorten its vectors, or the value is out of range.
    """
    native = entry.embedding_dim
    if dimensions is None or dimensions == native:
        return None
    if not entry.supports_dimensions:
        raise InvalidRequestError(f"Model '{entry.id}' does not support 'dimensions'"
                                  + (f" (its vectors have {native} dimensions)" if native else ""),
                                  param="dimensions", code="unsupported_parameter")
    if dimensions < 1 or (native is not None and dimensions > native):
        raise InvalidRequestError(f"'dimensions' must be between 1 and {native or 'the model size'}",
                                  param="dimensions", code="invalid_value")
    return dimensions


def reduce_dimensions(vectors: npt.NDArray[Any], dimensions: int | None) -> npt.NDArray[Any]:
    """Truncate to ``dimensions`` and renormalise (Matryoshka-style); None keeps them whole."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    cut = vectors[:, :dimensions]
    normed: npt.NDArray[Any] = cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)
    return normed


def _encode_vector(vector: npt.NDArray[Any], fmt: str) -> list[float] | str:
    if fmt == "base64":
        little = vector.astype("<f4", copy=False)
        return base64.b64encode(little.tobytes()).decode("ascii")
    return vector.tolist()  # type: ignore[no-any-return]  # a 1-d float32 array gives floats


@dataclass(frozen=True, slots=True)
class EmbeddingLimits:
    """Per-request caps (from the settings)."""

    max_inputs: int = 2048
    max_total_tokens: int = 300_000
    truncate: bool = False  # over-long inputs: truncate (True) or refuse with 400


class EmbeddingService:
    """OpenAI embeddings semantics on top of a Backend."""

    def __init__(self, catalog: ModelCatalog, backend: Backend, guard: Guard, tokens: Tokenizers,
                 limits: EmbeddingLimits) -> None:
        self.catalog = catalog
        self.backend = backend
        self.guard = guard
        self.tokens = tokens
        self.limits = limits

    async def create(self, principal: Principal,
                     req: EmbeddingRequest) -> tuple[EmbeddingList, dict[str, str]]:
        """Validate, admit and run one embeddings request.

        Returns:
            The response body and the rate-limit headers.

        Raises:
            GatewayError: any refusal.
        """
        entry = await self.catalog.resolve(req.model)
        if entry.kind != "embedding":
            raise InvalidRequestError(f"Model '{entry.id}' is not an embedding model",
                                      param="model", code="invalid_model_type")
        texts = parse_input(req.input, self.limits.max_inputs)
        dimensions = check_dimensions(req.dimensions, entry)
        estimate = self._check_lengths(entry, texts)
        admission = await self.guard.admit(principal, entry, estimate)
        used = 0
        try:
            result = await self.backend.embed(entry, texts)
            self._check_counts(entry, result.token_counts)
            used = self._billed(entry, result.token_counts)
        finally:
            await admission.finish(used, 0)
        vectors = reduce_dimensions(result.vectors, dimensions)
        data = [Embedding(index=i, embedding=_encode_vector(v, req.encoding_format))
                for i, v in enumerate(vectors)]
        return (EmbeddingList(data=data, model=entry.id,
                              usage=EmbeddingUsage(prompt_tokens=used, total_tokens=used)),
                admission.headers)

    def _check_lengths(self, entry: ModelEntry, texts: list[str]) -> int:
        counts = self.tokens.count_batch(entry, texts)
        if counts is None:
            return sum(len(t) for t in texts) // 3 + len(texts)
        self._check_counts(entry, counts)
        return self._billed(entry, counts)

    def _billed(self, entry: ModelEntry, counts: list[int]) -> int:
        # With truncation on, a long input is billed for the tokens the model actually read.
        limit = entry.max_input_tokens
        if self.limits.truncate and limit:
            return sum(min(n, limit) for n in counts)
        return sum(counts)

    def _check_counts(self, entry: ModelEntry, counts: list[int]) -> None:
        total = self._billed(entry, counts)
        if total > self.limits.max_total_tokens:
            raise _bad(f"the inputs have {total} tokens; at most "
                       f"{self.limits.max_total_tokens} are allowed per request",
                       "too_many_tokens")
        limit = entry.max_input_tokens or sys.maxsize
        if self.limits.truncate:
            return
        for i, n in enumerate(counts):
            if n > limit:
                raise _bad(f"input[{i}] has {n} tokens; model '{entry.id}' reads at most {limit}. "
                           "Shorten it (this server does not truncate silently)",
                           "context_length_exceeded", f"input[{i}]")
