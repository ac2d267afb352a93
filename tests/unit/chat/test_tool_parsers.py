"""Tool-call parsers per model family: text around calls, several calls, calls split at every
byte of a stream (streamed events reassemble to exactly the non-streamed parse)."""

from __future__ import annotations

import pytest

from gateway.chat.tools.parsers import FAMILIES, Parsed, ParsedCall, ToolStream, call_id, collect, parse

WEATHER = ParsedCall("get_weather", '{"city": "Paris", "days": [1, {"x": "}\\"]"}]}')
TIME = ParsedCall("get_time", '{"tz": "CET"}')

CASES = [
    ("hermes", 'Checking.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": '
               '[1, {"x": "}\\"]"}]}}\n</tool_call>\n<tool_call>{"arguments": {"tz": "CET"}, '
               '"name": "get_time"}</tool_call>', Parsed("Checking.", [WEATHER, TIME])),
    ("hermes", '<tool_call>{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}</tool_call>',
     Parsed(None, [TIME])),
    ("hermes", '<tool_call>{"name": "get_time", "arguments": {"tz": "CET"}}', Parsed(None, [TIME])),
    ("hermes", "The answer is 4 < 5 and <tool", Parsed("The answer is 4 < 5 and <tool")),
    ("hermes", "x <tool_call>not json", Parsed("x <tool_call>not json")),
    ("hermes", '<tool_call>{"name": "ping"}</tool_call>', Parsed(None, [ParsedCall("ping", "{}")])),
    ("smollm2", '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris", "days": '
                '[1, {"x": "}\\"]"}]}}, {"name": "get_time", "arguments": {"tz": "CET"}}]</tool_call>',
     Parsed(None, [WEATHER, TIME])),
    ("smollm2", "<tool_call>[]</tool_call>", Parsed("<tool_call>[]</tool_call>")),
    ("llama3_json", ' {"name": "get_time", "parameters": {"tz": "CET"}}; {"name": "get_weather", '
                    '"parameters": {"city": "Paris", "days": [1, {"x": "}\\"]"}]}}',
     Parsed(None, [TIME, WEATHER])),
    ("llama3_json", '<|python_tag|>{"name": "get_time", "arguments": {"tz": "CET"}}',
     Parsed(None, [TIME])),
    ("llama3_json", 'Sure: {"name": "x"} is JSON', Parsed('Sure: {"name": "x"} is JSON')),
    ("llama3_json", '{"answer": 3}', Parsed('{"answer": 3}')),
    ("mistral", 'Ok.[TOOL_CALLS] [{"name": "get_time", "arguments": {"tz": "CET"}}]',
     Parsed("Ok.", [TIME])),
    ("mistral", '[TOOL_CALLS]get_time{"tz": "CET"}[TOOL_CALLS]get_weather{"city": "Paris", '
                '"days": [1, {"x": "}\\"]"}]}', Parsed(None, [TIME, WEATHER])),
    ("mistral", '[TOOL_CALLS]get_time[ARGS]{"tz": "CET"}', Parsed(None, [TIME])),
]


@pytest.mark.parametrize(("family", "text", "expected"), CASES)
def test_whole_text(family: str, text: str, expected: Parsed) -> None:
    assert parse(ToolStream(FAMILIES[family]), text) == expected


@pytest.mark.parametrize(("family", "text", "expected"), CASES)
def test_split_at_every_byte_equals_the_whole(family: str, text: str, expected: Parsed) -> None:
    for cut in range(len(text) + 1):
        stream = ToolStream(FAMILIES[family])
        assert collect(stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.finish()) == expected
    stream = ToolStream(FAMILIES[family])
    events = [e for ch in text for e in stream.feed(ch)] + stream.finish()
    assert collect(events) == expected
    names = [e for e in events if e.kind == "name"]
    assert [e.index for e in names] == list(range(len(expected.calls)))  # one name per call, in order


def test_the_name_comes_before_any_argument_and_arguments_come_in_pieces() -> None:
    stream = ToolStream(FAMILIES["hermes"])
    events = [e for ch in CASES[0][1] for e in stream.feed(ch)]
    first = [e.kind for e in events if e.index == 0]
    assert first[0] == "name" and first.count("name") == 1 and first.count("args") > 10


def test_content_is_held_back_only_while_a_marker_may_start() -> None:
    stream = ToolStream(FAMILIES["hermes"])
    assert [e.text for e in stream.feed("Hi <tool_")] == ["Hi "]
    assert [e.text for e in stream.feed("x>")] == ["<tool_x>"]
    assert [e.text for e in stream.feed(" <")] == [" "]
    assert [e.text for e in stream.finish()] == ["<"]


def test_parallel_false_keeps_the_first_call_only() -> None:
    stream = ToolStream(FAMILIES["hermes"], parallel=False)
    assert parse(stream, CASES[0][1]) == Parsed("Checking.", [WEATHER])


def test_forced_calls_read_a_bare_array_and_named_calls_are_all_arguments() -> None:
    required = ToolStream(FAMILIES["hermes"], in_calls=True)
    assert parse(required, '[{"name": "get_time", "arguments": {"tz": "CET"}}]') == Parsed(None, [TIME])
    named = ToolStream(FAMILIES["mistral"], named="get_time")
    assert collect(named.feed('{"tz": ') + named.feed('"CET"}') + named.finish()) == Parsed(None, [TIME])
    empty = ToolStream(FAMILIES["hermes"], named="ping")
    assert collect(empty.finish()) == Parsed(None, [ParsedCall("ping", "")])


def test_call_ids() -> None:
    assert call_id(FAMILIES["hermes"]).startswith("call_") and len(call_id(FAMILIES["hermes"])) == 29
    mistral = call_id(FAMILIES["mistral"])
    assert len(mistral) == 9 and mistral.isalnum()
