"""The Responses API on the chat pipeline: a Responses request becomes a chat completion request,
``ChatService.prepare`` validates and admits it (keys, limits, templates, images, context), and
the chat completion or its chunks become the response object or the semantic stream events."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.auth.principal import Principal
from gateway.chat.protocol import ChatCompletionRequest
from gateway.chat.service import ChatService, Prepared
from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.responses.draft import Draft, output_items, usage_from
from gateway.responses.events import EventStream
from gateway.responses.protocol import Response, ResponseCreateRequest, ResponseStatus
from gateway.responses.store import ResponseStore
from gateway.responses.translate import (
    chat_request,
    check_request,
    input_items,
    responses_param,
    text_format,
)

log = logging.getLogger("chungus.responses")


@dataclass(slots=True)
class Run:
    """An admitted response, ready to generate."""

    prep: Prepared
    draft: Draft
    key: str  # the key it is stored under
    items: list[dict[str, Any]]  # history and input: the stored conversation so far


def _key(principal: Principal) -> str:
    return principal.key_id or ""


def _not_found(response_id: str, param: str | None = None) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param=param)


class ResponsesService:
    """``POST /v1/responses`` and, with storage, ``GET``/``DELETE /v1/responses/{id}``."""

    def __init__(self, chat: ChatService, store: ResponseStore | None = None) -> None:
        self.chat = chat
        self.store = store

    async def prepare(self, principal: Principal, req: ResponseCreateRequest,
                      request_id: str) -> Run:
        """Check, translate and admit a request (through ``ChatService.prepare``).

        Raises:
            GatewayError: any refusal, naming the Responses parameter at fault.
        """
        check_request(req)
        history = await self._history(principal, req)
        try:
            chat = msgspec.convert(chat_request(req, history), ChatCompletionRequest)
        except msgspec.ValidationError as exc:
            raise _invalid(exc) from exc
        try:
            prep = await self.chat.prepare(principal, chat, request_id)
        except GatewayError as exc:
            raise responses_param(exc) from None
        store = self.store is not None and req.store is not False
        draft = Draft(req, prep.entry.id, text_format(req), store)
        return Run(prep, draft, _key(principal), history + input_items(req))

    async def _history(self, principal: Principal, req: ResponseCreateRequest) -> list[dict[str, Any]]:
        if req.previous_response_id is None:
            return []
        if self.store is None:
            raise InvalidRequestError("previous_response_id needs stored responses, which are off "
                                      "on this server (CHUNGUS_RESPONSES_STORE)",
                                      param="previous_response_id", code="unsupported_parameter")
        stored = await self.store.get(req.previous_response_id, _key(principal))
        if stored is None:
            raise _not_found(req.previous_response_id, "previous_response_id")
        return stored.items

    async def complete(self, run: Run) -> Response:
        """Generate to the end; the response object (stored when asked)."""
        try:
            completion = msgspec.to_builtins(await self.chat.complete(run.prep))
        except GatewayError as exc:
            raise responses_param(exc) from None
        output, finish = output_items(completion)
        status: ResponseStatus = "incomplete" if finish == "length" else "completed"
        response = run.draft.response(status, output, usage_from(completion.get("usage") or {}))
        await self._save(run, msgspec.to_builtins(response))
        return response

    async def stream(self, run: Run) -> AsyncIterator[bytes]:
        """Start generating (early errors keep their HTTP status); the SSE events."""
        try:
            chunks = await self.chat.stream(run.prep)
        except GatewayError as exc:
            raise responses_param(exc) from None
        return self._events(run, chunks)

    async def _events(self, run: Run, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        events = EventStream(run.draft)
        try:
            for event in events.start():
                yield event
            async for event in self._translated(run, events, chunks):
                yield event
        except Exception:  # chat reports its own failures as events; this is ours
            log.exception("response stream %s failed after the first byte", run.draft.id)
            for event in events.fail(None):
                yield event
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()

    async def _translated(self, run: Run, events: EventStream,
                          chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        finish: str | None = None
        async for raw in chunks:
            chunk = _decode(raw)
            if chunk is None:
                break
            if "error" in chunk:
                for event in events.fail(_error(chunk["error"])):
                    yield event
                return
            for choice in chunk.get("choices") or ():
                finish = choice.get("finish_reason") or finish
            for event in events.chunk(chunk):
                yield event
        closing, final = events.finish(finish)
        await self._save(run, final)
        for event in closing:
            yield event

    async def _save(self, run: Run, body: dict[str, Any]) -> None:
        if not run.draft.store or self.store is None:
            return
        items = run.items + [dict(item) for item in body["output"]]
        try:
            await self.store.save(run.draft.id, run.key, body, items)
        except Exception:  # the answer stands; only its later retrieval is lost
            log.exception("storing response %s failed", run.draft.id)

    async def get(self, principal: Principal, response_id: str) -> dict[str, Any]:
        """A stored response made with this key.

        Raises:
            NotFoundError: none such (or storage is off, or another key made it).
        """
        stored = await self.store.get(response_id, _key(principal)) if self.store else None
        if stored is None:
            raise _not_found(response_id)
        return stored.body

    async def delete(self, principal: Principal, response_id: str) -> None:
        """Delete a stored response made with this key.

        Raises:
            NotFoundError: none such.
        """
        if self.store is None or not await self.store.delete(response_id, _key(principal)):
            raise _not_found(response_id)


_AT = re.compile(r" - at `\$\.(\w+)(\[\d+\])?(?:\.function)?([^`]*)`$")


def _invalid(exc: msgspec.ValidationError) -> InvalidRequestError:
    """A translated request chat's structs refuse -> a 400 naming the Responses parameter."""
    text = str(exc)
    match = _AT.search(text)
    field, index, rest = match.groups() if match else ("messages", "", "")
    param = "input" if field == "messages" else f"{field}{index or ''}{rest}"
    return InvalidRequestError(f"{_AT.sub('', text)} at '{param}'", param=param,
                               code="invalid_value")


_chunk_decoder = msgspec.json.Decoder(dict[str, Any])


def _decode(raw: bytes) -> dict[str, Any] | None:
    """One ``data: <json>`` event of the chat stream; None for ``[DONE]``."""
    payload = raw.removeprefix(b"data: ").strip()
    return None if payload == b"[DONE]" else _chunk_decoder.decode(payload)


def _error(body: dict[str, Any]) -> GatewayError | None:
    """Chat's error event -> an error to report (None for the generic server error)."""
    if body.get("code") == "internal_error":
        return None
    exc = GatewayError(str(body.get("message", "")), param=body.get("param"), code=body.get("code"))
    return responses_param(exc)
