"""Chat chunks -> the Responses stream's semantic events: order, numbering, content, spec shape."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from gateway.errors import ServiceUnavailableError
from gateway.responses.draft import Draft, output_items
from gateway.responses.events import EventStream
from gateway.responses.protocol import ResponseCreateRequest
from tests.spec import validate


def _draft(**fields: Any) -> Draft:
    req = msgspec.convert({"model": "m", "input": "hi", "stream": True, **fields}, ResponseCreateRequest)
    return Draft(req, "m", {"type": "text"}, store=False)


def _decode(frames: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for frame in frames:
        head, data, rest = frame.split(b"\n", 2)
        assert rest == b"\n", "one blank line ends each event"
        event = json.loads(data.removeprefix(b"data: "))
        assert head == b"event: " + event["type"].encode()
        validate("ResponseStreamEvent", event)
        events.append(event)
    return events


def _text(content: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}


def _call(index: int, *, id: str | None = None, name: str | None = None,
          arguments: str | None = None) -> dict[str, Any]:
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    call: dict[str, Any] = {"index": index, "function": function}
    if id:
        call.update(id=id, type="function")
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def _run(chunks: list[dict[str, Any]], finish: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    stream = EventStream(_draft())
    frames = stream.start()
    for chunk in chunks:
        frames += stream.chunk(chunk)
    closing, final = stream.finish(finish)
    return _decode(frames + closing), final


def test_text_stream_in_the_spec_order() -> None:
    events, final = _run([{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                          _text("Hel"), _text("lo"), USAGE], "stop")
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(10))
    assert [e["delta"] for e in events if e["type"].endswith("text.delta")] == ["Hel", "lo"]
    item_id = events[2]["item"]["id"]
    assert item_id.startswith("msg_")
    assert {e.get("item_id", item_id) for e in events[3:9]} == {item_id}
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["content"] == []
    assert events[6]["text"] == "Hello"
    assert events[8]["item"]["content"] == [{"type": "output_text", "text": "Hello",
                                             "annotations": [], "logprobs": []}]
    done = events[-1]["response"]
    assert done == final
    assert done["status"] == "completed" and done["incomplete_details"] is None
    assert done["usage"]["input_tokens"] == 5 and done["usage"]["output_tokens"] == 2
    assert done["usage"]["total_tokens"] == 7
    assert events[0]["response"]["status"] == "in_progress" and "usage" not in events[0]["response"]


def test_cut_by_max_output_tokens_is_incomplete() -> None:
    events, final = _run([_text("a")], "length")
    assert events[-1]["type"] == "response.incomplete"
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    assert final["completed_at"] is None


def test_nothing_generated_is_one_empty_message() -> None:
    events, final = _run([], "stop")
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added", "response.content_part.added", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert final["output"][0]["content"][0]["text"] == ""


def test_text_then_two_function_calls() -> None:
    chunks = [_text("Checking."), _call(0, id="call_a", name="get_weather", arguments=""),
              _call(0, arguments='{"city":'), _call(0, arguments='"Paris"}'),
              _call(1, id="call_b", name="get_time", arguments='{}'), USAGE]
    events, final = _run(chunks, "tool_calls")
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    first = events[8]["item"]
    assert (first["type"], first["call_id"], first["name"], first["arguments"]) == (
        "function_call", "call_a", "get_weather", "")
    assert events[8]["output_index"] == 1 and events[13]["output_index"] == 2
    assert events[11]["arguments"] == '{"city":"Paris"}' and events[11]["name"] == "get_weather"
    assert final["status"] == "completed"
    assert [(o["type"], o.get("call_id")) for o in final["output"]] == [
        ("message", None), ("function_call", "call_a"), ("function_call", "call_b")]
    assert final["output"][1]["arguments"] == '{"city":"Paris"}'
    assert final["output"][2]["status"] == "completed"


def test_error_after_the_first_byte() -> None:
    stream = EventStream(_draft())
    frames = stream.start() + stream.chunk(_text("par"))
    frames += stream.fail(ServiceUnavailableError("Triton went away"))
    events = _decode(frames)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    error = events[-2]
    assert (error["code"], error["message"], error["param"]) == (
        "service_unavailable", "Triton went away", None)
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "Triton went away"}
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_an_unexpected_error_says_nothing_of_itself() -> None:
    stream = EventStream(_draft())
    events = _decode(stream.fail(None))
    assert events[0]["message"] == "The server had an error while processing your request."
    assert events[0]["code"] == "internal_error"


def test_non_streaming_output_items() -> None:
    completion = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}
    items, finish = output_items(completion)
    assert finish == "tool_calls"
    assert [msgspec.to_builtins(i) for i in items] == [{
        "type": "function_call", "id": items[0].id, "call_id": "call_x", "name": "f",
        "arguments": "{}", "status": "completed"}]
    items, finish = output_items({"choices": [{"finish_reason": "length",
                                               "message": {"content": "abc"}}]})
    assert finish == "length"
    assert msgspec.to_builtins(items[0])["status"] == "incomplete"
    assert msgspec.to_builtins(items[0])["content"][0]["text"] == "abc"


def test_response_object_echoes_the_request() -> None:
    draft = _draft(instructions="sys", max_output_tokens=9, temperature=0.2, top_p=0.5, user="u",
                   metadata={"a": "b"}, parallel_tool_calls=False, tool_choice="required",
                   tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}])
    body = msgspec.to_builtins(draft.response("completed", []))
    validate("Response", body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert (body["instructions"], body["max_output_tokens"], body["temperature"], body["top_p"],
            body["user"], body["metadata"], body["parallel_tool_calls"], body["tool_choice"]) == (
        "sys", 9, 0.2, 0.5, "u", {"a": "b"}, False, "required")
    assert body["tools"] == [{"type": "function", "name": "f", "description": None,
                              "parameters": {"type": "object"}, "strict": None}]
    assert body["text"] == {"format": {"type": "text"}}
    assert body["store"] is False and body["truncation"] == "disabled"


def _lp(token: str, logprob: float, top: tuple[tuple[str, float], ...] = ()) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": None,
            "top_logprobs": [{"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in top]}


def test_logprobs_ride_on_deltas_and_the_final_text() -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": "Hi"},
                            "logprobs": {"content": [_lp("Hi", -0.5, (("Hi", -0.5), ("Yo", -1.5)))]}}]},
              {"choices": [{"index": 0, "delta": {"content": "!"},
                            "logprobs": {"content": [_lp("!", -0.25)]}}]}]
    events, final = _run(chunks, "stop")
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert deltas[0]["logprobs"] == [{"token": "Hi", "logprob": -0.5, "top_logprobs": [
        {"token": "Hi", "logprob": -0.5}, {"token": "Yo", "logprob": -1.5}]}]
    assert deltas[1]["logprobs"] == [{"token": "!", "logprob": -0.25, "top_logprobs": []}]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert [lp["token"] for lp in done["logprobs"]] == ["Hi", "!"]
    part = final["output"][0]["content"][0]
    assert part["logprobs"] == [
        {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
            {"token": "Yo", "logprob": -1.5, "bytes": [89, 111]}]},
        {"token": "!", "logprob": -0.25, "bytes": [33], "top_logprobs": []}]
    validate("Response", final)


def test_non_streaming_logprobs() -> None:
    items, _ = output_items({"choices": [{"finish_reason": "stop", "message": {"content": "A"},
                                          "logprobs": {"content": [_lp("A", -1.0)]}}]})
    body = msgspec.to_builtins(items[0])
    assert body["content"][0]["logprobs"] == [{"token": "A", "logprob": -1.0, "bytes": [65],
                                               "top_logprobs": []}]
