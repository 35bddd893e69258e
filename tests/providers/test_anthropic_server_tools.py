"""Anthropic server tools (web search, web fetch, code execution) never become client tool calls.

They run at Anthropic, so a request enabling one is refused with a 400 naming it, and a response
that holds their blocks all the same (`server_tool_use`, `web_search_tool_result`,
`code_execution_tool_result` …) has those blocks skipped, stream and non-stream alike, keeping the
text around them (see `providers/anthropic.py`). Every event and message is checked with the
anthropic SDK's own types, every translation with the openai SDK's.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion
from support.openai_chunks import assemble, feed
from support.vendor_schemas import ANTHROPIC_EVENT, ANTHROPIC_MESSAGE

from providers.anthropic import AnthropicProvider
from providers.base import ProviderSettings
from providers.errors import ErrorKind, UpstreamError

MODEL = "claude-sonnet-4-5"
SEARCH_ID = "srvtoolu_014hJH82Qum7Td6UV8gDXThB"
CODE_ID = "srvtoolu_01KV2eXbGq7E6vq1ifWBHV4T"
CITATION = {"type": "web_search_result_location", "url": "https://weather.example/paris",
            "title": "Paris weather today", "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm",
            "cited_text": "Sunny, high of 24°C."}

WEB_SEARCH = [
    {"type": "text", "text": "I'll search for the weather."},
    {"type": "server_tool_use", "id": SEARCH_ID, "name": "web_search", "input": {"query": "weather Paris today"}},
    {"type": "web_search_tool_result", "tool_use_id": SEARCH_ID, "content": [
        {"type": "web_search_result", "url": "https://weather.example/paris", "title": "Paris weather today",
         "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNjNTk1ZWI3Y2MSDC",
         "page_age": "April 30, 2025"}]},
    {"type": "text", "text": "It is sunny in Paris, 24°C.", "citations": [CITATION]},
]
CODE_EXECUTION = [
    {"type": "server_tool_use", "id": CODE_ID, "name": "code_execution", "input": {"code": "print(17 * 23)"}},
    {"type": "code_execution_tool_result", "tool_use_id": CODE_ID, "content": {
        "type": "code_execution_result", "stdout": "391\n", "stderr": "", "return_code": 0, "content": []}},
    {"type": "text", "text": "17 * 23 = 391."},
]
USAGE = {"input_tokens": 2154, "output_tokens": 410, "cache_read_input_tokens": 0,
         "cache_creation_input_tokens": 0, "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}


def provider() -> AnthropicProvider:
    return AnthropicProvider(ProviderSettings(name="anthropic", type="anthropic"))


def message(content: list[dict], stop_reason: str = "end_turn") -> dict:
    out = {"id": "msg_01ServerTools", "type": "message", "role": "assistant", "model": MODEL,
           "content": content, "stop_reason": stop_reason, "stop_sequence": None, "usage": USAGE}
    ANTHROPIC_MESSAGE.validate_python(out)
    return out


def events(whole: dict) -> list[dict]:
    """The SSE events Anthropic streams for `whole`: input as `input_json_delta`s (the first one
    empty), text as `text_delta`s after its citations, result blocks whole in their start event."""
    start = {**whole, "content": [], "stop_reason": None, "usage": {**whole["usage"], "output_tokens": 3}}
    out: list[dict] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(whole["content"]):
        deltas: list[dict] = []
        opening: dict[str, Any] = block
        if block["type"] == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "citations_delta", "citation": c} for c in block.get("citations") or []]
            deltas.append({"type": "text_delta", "text": block["text"]})
        elif block["type"] in ("tool_use", "server_tool_use"):
            opening = {**block, "input": {}}
            text = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ("", text[:9], text[9:])]
        out.append({"type": "content_block_start", "index": i, "content_block": opening})
        out += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        out.append({"type": "content_block_stop", "index": i})
    out.append({"type": "message_delta", "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": whole["usage"]["output_tokens"],
                          "server_tool_use": whole["usage"]["server_tool_use"]}})
    out.append({"type": "message_stop"})
    for event in out:
        ANTHROPIC_EVENT.validate_python(event)
    return out


def stream(whole: dict, step: int | None = None) -> list[dict]:
    data = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events(whole))
    return feed(provider().chat_stream(MODEL), data, step)


def no_tool_call_deltas(chunks: list[dict]) -> bool:
    return not any(choice["delta"].get("tool_calls") for chunk in chunks for choice in chunk["choices"])


@pytest.mark.parametrize(("content", "text"), [
    (WEB_SEARCH, "I'll search for the weather.It is sunny in Paris, 24°C."),
    (CODE_EXECUTION, "17 * 23 = 391."),
], ids=["web_search", "code_execution"])
@pytest.mark.parametrize("step", [None, 11])
def test_stream_skips_server_tool_blocks_and_keeps_the_text(content: list[dict], text: str,
                                                            step: int | None) -> None:
    chunks = stream(message(content), step)
    assert no_tool_call_deltas(chunks)
    result = assemble(chunks)
    assert (result["content"], result["finish"], result["calls"]) == (text, "stop", {})
    assert result["usage"]["prompt_tokens"] == 2154


@pytest.mark.parametrize(("content", "text"), [
    (WEB_SEARCH, "I'll search for the weather.It is sunny in Paris, 24°C."),
    (CODE_EXECUTION, "17 * 23 = 391."),
], ids=["web_search", "code_execution"])
def test_response_skips_server_tool_blocks_and_keeps_the_text(content: list[dict], text: str) -> None:
    out = provider().chat_response(orjson.dumps(message(content)), MODEL)
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["message"]["content"] == text and "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_a_client_tool_call_beside_a_server_tool_keeps_index_zero() -> None:
    client_call = {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_time",
                   "input": {"zone": "Europe/Paris"}}
    whole = message([*WEB_SEARCH, client_call], stop_reason="tool_use")
    streamed = assemble(stream(whole))
    assert streamed["calls"] == {0: {"id": client_call["id"], "name": "get_time",
                                     "arguments": '{"zone":"Europe/Paris"}'}}
    assert streamed["finish"] == "tool_calls"
    [call] = provider().chat_response(orjson.dumps(whole), MODEL)["choices"][0]["message"]["tool_calls"]
    assert (call["id"], json.loads(call["function"]["arguments"])) == (client_call["id"], {"zone": "Europe/Paris"})


@pytest.mark.parametrize("tool", [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "code_execution_20250825", "name": "code_execution"},
])
def test_a_request_enabling_a_server_tool_is_refused_naming_it(tool: dict) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [tool]}
    with pytest.raises(UpstreamError) as info:
        provider().chat_request(body, MODEL, "sk-ant-test", False)
    err = info.value
    assert err.kind is ErrorKind.UNSUPPORTED and err.param == "tools" and err.client_status == 400
    assert tool["type"] in err.message and "server tools" in err.message
