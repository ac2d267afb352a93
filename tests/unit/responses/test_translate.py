"""A Responses request -> the chat request the pipeline runs; refusals name the Responses parameter."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.errors import InvalidRequestError
from gateway.responses import translate
from gateway.responses.protocol import ResponseCreateRequest
from gateway.responses.translate import (
    chat_request,
    check_request,
    input_items,
    items_to_messages,
    responses_param,
    text_format,
)


def _req(**fields: Any) -> ResponseCreateRequest:
    return msgspec.convert({"model": "m", "input": "hi", **fields}, ResponseCreateRequest)


def _refused(exc_info: pytest.ExceptionInfo[InvalidRequestError]) -> tuple[str | None, str | None]:
    return exc_info.value.param, exc_info.value.code


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    chat = chat_request(_req(instructions="Be brief.", max_output_tokens=7, temperature=0.5,
                             top_p=0.9, user="u1"), [])
    assert chat == {"model": "m", "stream": False, "temperature": 0.5, "top_p": 0.9,
                    "max_completion_tokens": 7, "user": "u1",
                    "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "hi"}]}


def test_streaming_asks_chat_for_usage() -> None:
    chat = chat_request(_req(stream=True), [])
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_message_items_parts_and_roles() -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "a"},
                                          {"type": "input_text", "text": "b"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "c", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,AA",
                                      "detail": "low"}]},
    ]
    assert items_to_messages(items, "input") == [
        {"role": "developer", "content": "ab"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}]},
    ]


def test_history_comes_between_instructions_and_input() -> None:
    history = [{"type": "message", "role": "user", "content": "first"},
               {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
                "content": [{"type": "output_text", "text": "one", "annotations": [], "logprobs": []}]}]
    chat = chat_request(_req(instructions="sys", input="second"), history)
    assert chat["messages"] == [{"role": "system", "content": "sys"},
                                {"role": "user", "content": "first"},
                                {"role": "assistant", "content": "one"},
                                {"role": "user", "content": "second"}]


def test_input_items_of_a_string() -> None:
    assert input_items(_req(input="yo")) == [{"type": "message", "role": "user", "content": "yo"}]
    assert input_items(_req(input=None)) == []


ALL_CHAT_FIELDS = frozenset({"model", "messages", "tools", "tool_choice", "parallel_tool_calls",
                             "response_format", "logprobs", "top_logprobs"})


def test_logprobs_map_to_chat_logprobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "_CHAT_FIELDS", ALL_CHAT_FIELDS)
    chat = chat_request(_req(include=["message.output_text.logprobs"]), [])
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 0)
    chat = chat_request(_req(top_logprobs=4), [])
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 4)
    assert "logprobs" not in chat_request(_req(top_logprobs=0), [])
    monkeypatch.setattr(translate, "_CHAT_FIELDS", frozenset({"model", "messages"}))
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(top_logprobs=4), [])
    assert _refused(exc) == ("include", "unsupported_parameter")


def test_function_tools_and_choices_become_chat_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "_CHAT_FIELDS", ALL_CHAT_FIELDS)
    tool = {"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {}}, "strict": True}
    req = _req(tools=[tool], tool_choice={"type": "function", "name": "get_weather"},
               parallel_tool_calls=False)
    chat = chat_request(req, [])
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {}}, "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(("tool", "param"), [
    ({"type": "web_search"}, "tools[0].type"),
    ({"type": "file_search", "vector_store_ids": ["v"]}, "tools[0].type"),
    ({"type": "computer_use_preview"}, "tools[0].type"),
    ({"type": "function"}, "tools[0].name"),
])
def test_built_in_tools_are_refused_by_name(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(tools=[tool]), [])
    assert exc.value.param == param
    assert exc.value.status == 400


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"background": True}, "background", "unsupported_parameter"),
    ({"include": ["file_search_call.results"]}, "include", "unsupported_parameter"),
    ({"truncation": "auto"}, "truncation", "unsupported_parameter"),
    ({"top_logprobs": 21}, "top_logprobs", "invalid_value"),
    ({"top_logprobs": -1}, "top_logprobs", "invalid_value"),
    ({"include": ["message.output_text.logprobs", "reasoning.encrypted_content"]}, "include",
     "unsupported_parameter"),
    ({"reasoning": {"effort": "high"}}, "reasoning", "unsupported_parameter"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
    ({"conversation": "conv_1"}, "conversation", "unsupported_parameter"),
    ({"service_tier": "flex"}, "service_tier", "unsupported_parameter"),
    ({"max_tool_calls": -1}, "max_tool_calls", "invalid_value"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "invalid_value"),
    ({"metadata": {"k" * 65: "v"}}, "metadata", "invalid_value"),
    ({"metadata": {"k": "v" * 513}}, "metadata", "invalid_value"),
])
def test_what_cannot_be_honored_is_refused(fields: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        check_request(_req(**fields))
    assert _refused(exc) == (param, code)


def test_what_changes_nothing_is_accepted() -> None:
    check_request(_req(background=False, include=["message.output_text.logprobs"],
                       truncation="disabled", top_logprobs=20,
                       reasoning={"effort": None, "summary": None}, service_tier="auto",
                       metadata={"k" * 64: "v" * 512}, max_tool_calls=0))


def test_text_formats() -> None:
    assert text_format(_req()) == {"type": "text"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "name": "A", "schema": schema, "strict": True}
    assert text_format(_req(text={"format": fmt})) == fmt
    with pytest.raises(InvalidRequestError) as exc:
        text_format(_req(text={"format": {"type": "yaml"}}))
    assert exc.value.param == "text.format"
    with pytest.raises(InvalidRequestError) as exc:
        text_format(_req(text={"verbosity": "low"}))
    assert exc.value.param == "text.verbosity"


def test_json_formats_are_chat_response_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "_CHAT_FIELDS", ALL_CHAT_FIELDS)
    schema = {"type": "object"}
    chat = chat_request(_req(text={"format": {"type": "json_object"}}), [])
    assert chat["response_format"] == {"type": "json_object"}
    chat = chat_request(_req(text={"format": {"type": "json_schema", "name": "A", "schema": schema,
                                              "strict": True, "description": "d"}}), [])
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "A", "schema": schema, "strict": True, "description": "d"}}
    allowed = {"type": "allowed_tools", "mode": "required",
               "tools": [{"type": "function", "name": "f"}]}
    chat = chat_request(_req(tool_choice=allowed), [])
    assert chat["tool_choice"] == {"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "f"}}]}}
    for bad in ("sometimes", {"type": "web_search_preview"}):
        with pytest.raises(InvalidRequestError) as exc:
            chat_request(_req(tool_choice=bad), [])
        assert exc.value.param == "tool_choice"


def test_json_schema_needs_a_schema_and_a_name() -> None:
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(text={"format": {"type": "json_schema", "name": "A"}}), [])
    assert exc.value.param == "text.format.schema"
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(text={"format": {"type": "json_schema", "schema": {}}}), [])
    assert exc.value.param == "text.format.name"


@pytest.mark.parametrize(("item", "param"), [
    ({"role": "robot", "content": "x"}, "input[0].role"),
    ({"role": "user", "content": []}, "input[0].content"),
    ({"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}, "input[0].content[0].type"),
    ({"role": "user", "content": [{"type": "input_image", "file_id": "f"}]},
     "input[0].content[0].image_url"),
    ({"role": "user", "content": [{"type": "input_text"}]}, "input[0].content[0].text"),
    ({"type": "reasoning", "summary": []}, "input[0].type"),
    ({"type": "item_reference", "id": "msg_1"}, "input[0].type"),
])
def test_bad_items_are_named(item: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        items_to_messages([item], "input")
    assert exc.value.param == param


def test_an_empty_input_without_history_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(input=[]), [])
    assert _refused(exc) == ("input", "missing_required_parameter")


def test_chat_parameter_names_become_responses_names() -> None:
    exc = InvalidRequestError("max_completion_tokens is too large: 1000", param="max_completion_tokens")
    assert responses_param(exc) is exc
    assert (exc.param, exc.message) == ("max_output_tokens", "max_output_tokens is too large: 1000")
    exc = InvalidRequestError("bad", param="messages[2].content[0].image_url.url")
    assert responses_param(exc).param == "input"
    exc = InvalidRequestError("only text", param="response_format")
    assert responses_param(exc).param == "text.format"
    exc = InvalidRequestError("response_format.json_schema.name must be 1 to 64 characters",
                              param="response_format.json_schema.name")
    assert responses_param(exc).param == "text.format.name"
    assert exc.message == "text.format.name must be 1 to 64 characters"
    exc = InvalidRequestError("logprobs are not supported by model 'x'", param="logprobs")
    assert responses_param(exc).param == "include"
    assert exc.message == "logprobs are not supported by model 'x'"
    exc = InvalidRequestError("bad", param="temperature")
    assert responses_param(exc).param == "temperature"


FUNCTION_ROUND_TRIP = [
    {"role": "user", "content": "weather in Paris and Rome?"},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather",
     "arguments": '{"city":"Paris"}'},
    {"type": "function_call", "call_id": "call_2", "name": "get_weather",
     "arguments": '{"city":"Rome"}', "id": "fc_2", "status": "completed"},
    {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
    {"type": "function_call_output", "call_id": "call_2",
     "output": [{"type": "input_text", "text": "2"}, {"type": "input_text", "text": "1C"}]},
]


def test_function_call_round_trip_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "_MESSAGE_FIELDS", frozenset({"role", "content", "tool_calls",
                                                                 "tool_call_id"}))
    assert items_to_messages(FUNCTION_ROUND_TRIP, "input") == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21C"},
    ]


def test_function_calls_are_refused_while_chat_has_no_tool_messages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "_MESSAGE_FIELDS", frozenset({"role", "content"}))
    with pytest.raises(InvalidRequestError) as exc:
        items_to_messages(FUNCTION_ROUND_TRIP, "input")
    assert _refused(exc) == ("input[1]", "unsupported_parameter")


def test_chat_fields_are_checked_before_a_parameter_could_be_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "_CHAT_FIELDS", frozenset({"model", "messages"}))
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(parallel_tool_calls=False), [])
    assert _refused(exc) == ("parallel_tool_calls", "unsupported_parameter")
    with pytest.raises(InvalidRequestError) as exc:
        chat_request(_req(text={"format": {"type": "json_object"}}), [])
    assert _refused(exc) == ("text.format", "unsupported_parameter")
