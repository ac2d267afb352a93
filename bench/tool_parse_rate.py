"""Tool-call parse rate of the CPU chat model (SmolLM2-135M-Instruct) with ``tool_choice: auto``.

A fixed set of prompts, each with the same three tools, greedy decoding, through the whole stack
(Triton on CPU, the gateway, the openai SDK). Per prompt: did the answer carry tool calls the
gateway parsed, is every call's name one of the tools and its arguments a JSON object, and is
the first call the one the prompt asks for.

    .venv/bin/python -m bench.tool_parse_rate            # builds the chat model into a temp dir
    .venv/bin/python -m bench.tool_parse_rate --url http://127.0.0.1:8000 --key sk-...
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai

from bench.report import output_args, table, write_json

MODEL = "smollm2-135m-instruct"
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount between two currencies",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number"}, "from_currency": {"type": "string"},
            "to_currency": {"type": "string"}}, "required": ["amount", "from_currency", "to_currency"]}}},
    {"type": "function", "function": {
        "name": "search_web", "description": "Search the web for a query",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}},
]
# (prompt, the tool it asks for)
PROMPTS: list[tuple[str, str]] = [
    ("What is the weather in Paris?", "get_weather"),
    ("How warm is it in Tokyo right now?", "get_weather"),
    ("Tell me the current weather in Berlin.", "get_weather"),
    ("Is it raining in London today?", "get_weather"),
    ("Convert 100 US dollars to euros.", "convert_currency"),
    ("How many Japanese yen is 50 British pounds?", "convert_currency"),
    ("Change 20 EUR into CHF.", "convert_currency"),
    ("What is 75 Canadian dollars in US dollars?", "convert_currency"),
    ("Search the web for the tallest building in the world.", "search_web"),
    ("Find news about the Mars rover.", "search_web"),
    ("Look up who wrote Pride and Prejudice.", "search_web"),
    ("Search for a recipe for pancakes.", "search_web"),
]


def _complete(client: openai.OpenAI, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One answer, streamed (so a busy machine's slow prefill cannot trip the gateway's idle
    timeout) and put together by the SDK's rule: strings concatenated per tool-call index."""
    content, finish = "", None
    calls: dict[int, dict[str, str]] = {}
    for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="auto", temperature=0, max_tokens=max_tokens, stream=True):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or ():
                call = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return {"content": content, "finish_reason": finish, "calls": [calls[i] for i in sorted(calls)]}


def _valid(call: dict[str, str]) -> bool:
    names = {t["function"]["name"] for t in TOOLS}
    try:
        args = json.loads(call["arguments"])
    except ValueError:
        return False
    return call["name"] in names and isinstance(args, dict)


def measure(client: openai.OpenAI, max_tokens: int) -> dict[str, Any]:
    rows = []
    for prompt, wanted in PROMPTS:
        out = _complete(client, prompt, max_tokens)
        calls = out["calls"]
        rows.append({"prompt": prompt, "wanted": wanted, "finish_reason": out["finish_reason"],
                     "calls": calls, "parsed": bool(calls),
                     "valid": bool(calls) and all(_valid(c) for c in calls),
                     "right_tool": bool(calls) and calls[0]["name"] == wanted,
                     "content": out["content"][:120]})
        print(f"  {prompt!r}: {calls or out['content'][:60]!r}", flush=True)
    n = len(rows)
    return {"model": MODEL, "prompts": n, "tool_choice": "auto", "temperature": 0,
            "parsed": sum(r["parsed"] for r in rows), "valid": sum(r["valid"] for r in rows),
            "right_tool": sum(r["right_tool"] for r in rows), "rows": rows}


@contextmanager
def _stack() -> Iterator[tuple[str, str]]:
    """The chat model built into a temp dir, Triton on CPU, the gateway: (base URL, admin key)."""
    from build_engines.cpu import build_chat
    from build_engines.progress import Progress
    from gateway.triton.server import TritonServer, free_port
    from tests.support import GatewayProcess

    with tempfile.TemporaryDirectory(prefix="tool-parse-") as tmp:
        out = Path(tmp)
        build_chat(out, progress=Progress(quiet=True))
        triton = TritonServer(out / "model_repository", out / "triton", http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port(), log_verbose=0)
        triton.start(timeout_s=300)
        gateway = GatewayProcess(triton.grpc_url, out / "registry.toml", out / "gateway")
        try:
            gateway.start()
            yield gateway.base_url, gateway.admin_key
        finally:
            gateway.stop()
            triton.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running gateway (default: start one)")
    parser.add_argument("--key", default="", help="API key for --url")
    parser.add_argument("--max-tokens", type=int, default=96)
    output_args(parser, "tool_parse_rate")
    args = parser.parse_args()

    def run(url: str, key: str) -> dict[str, Any]:
        client = openai.OpenAI(base_url=url + "/v1", api_key=key or "none", max_retries=0, timeout=300)
        return measure(client, args.max_tokens)

    if args.url:
        result = run(args.url, args.key)
    else:
        with _stack() as (url, key):
            result = run(url, key)
    n = result["prompts"]
    print(table(["prompts", "parsed calls", "valid calls", "right tool"],
                [[n, f"{result['parsed']}/{n}", f"{result['valid']}/{n}", f"{result['right_tool']}/{n}"]]))
    print(f"wrote {write_json(args.name, result, args.json_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
