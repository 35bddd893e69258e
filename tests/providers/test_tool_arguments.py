"""A tool that takes no parameters comes back with `arguments: "{}"` from every translator.

OpenAI's `arguments` is always the text of a JSON object and clients `json.loads` it, while vendors
send nothing, an empty text or `null` for a tool without parameters. One rule covers every
translator: `base.tool_arguments` for whole responses, `base.StreamedArguments` (applied by
`StreamTranslator` itself) for streams, where a call that streamed no argument text gets a final
`"{}"` argument delta before its finish chunk. Vendor payloads are shaped as the vendors send them
and checked with their SDKs' types where those are installed.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pydantic
import pytest
from openai.types.chat import ChatCompletion
from support.openai_chunks import assemble, feed
from support.vendor_schemas import ANTHROPIC_EVENT, BEDROCK_RUNTIME, cohere_extras, shape_problems

from providers import base
from providers.anthropic import AnthropicProvider
from providers.base import ProviderSettings
from providers.bedrock import BedrockProvider
from providers.cohere import CohereProvider
from providers.eventstream import event_frame
from providers.gemini import GeminiProvider
from providers.openai import OpenAIProvider

try:
    from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse
except ImportError:  # pragma: no cover
    V2ChatResponse = V2ChatStreamResponse = None
try:
    from google.genai import types as genai_types
except ImportError:  # pragma: no cover
    genai_types = None


def settings(kind: str) -> ProviderSettings:
    return ProviderSettings(name=kind, type=kind)


def sse(events: list[dict], named: bool = True) -> bytes:
    """`event:` + `data:` frames (Anthropic, Cohere) or bare `data:` lines (OpenAI, Gemini)."""
    out = b""
    for event in events:
        head = b"event: " + event["type"].encode() + b"\n" if named else b""
        out += head + b"data: " + orjson.dumps(event) + b"\n\n"
    return out


def only_call(chunks: list[dict]) -> dict:
    """The one tool call the chunks add up to, after checking the `{}` delta precedes the finish."""
    calls = assemble(chunks)["calls"]
    assert len(calls) == 1
    finish_at = next(i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"])
    assert all(not c["choices"] or not c["choices"][0]["delta"].get("tool_calls") for c in chunks[finish_at + 1:])
    return calls[0]


# -- the rule itself ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("", "{}"), ("  ", "{}"), ("null", "{}"), (" null ", "{}"), (None, "{}"), ({}, "{}"),
    ('{"city": "Paris"}', '{"city": "Paris"}'), ({"city": "Paris"}, '{"city":"Paris"}'),
])
def test_tool_arguments_is_always_a_json_object_text(value: Any, expected: str) -> None:
    assert base.tool_arguments(value) == expected


# -- Anthropic ------------------------------------------------------------------------------------
def anthropic_stream(deltas: list[str]) -> bytes:
    """A tool_use block for `get_time` whose input arrives as these `input_json_delta` pieces."""
    events = [
        {"type": "message_start", "message": {
            "id": "msg_01NoArgs", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 310, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_01NoArgs", "name": "get_time", "input": {}}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": d}}
          for d in deltas),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 33}},
        {"type": "message_stop"},
    ]
    for event in events:
        ANTHROPIC_EVENT.validate_python(event)
    return sse(events)


@pytest.mark.parametrize("deltas", [[""], []], ids=["empty-input-json-delta", "no-delta"])
@pytest.mark.parametrize("step", [None, 7])
def test_anthropic_stream_tool_without_arguments(deltas: list[str], step: int | None) -> None:
    translator = AnthropicProvider(settings("anthropic")).chat_stream("claude-sonnet-4-5")
    call = only_call(feed(translator, anthropic_stream(deltas), step))
    assert (call["id"], call["name"]) == ("toolu_01NoArgs", "get_time")
    assert call["arguments"] == "{}" and json.loads(call["arguments"]) == {}


def test_anthropic_stream_with_arguments_is_untouched() -> None:
    translator = AnthropicProvider(settings("anthropic")).chat_stream("claude-sonnet-4-5")
    chunks = feed(translator, anthropic_stream(["", '{"zone": ', '"UTC"}']))
    assert only_call(chunks)["arguments"] == '{"zone": "UTC"}'
    assert not any(c["choices"] and (c["choices"][0]["delta"].get("tool_calls") or [{}])[0]
                   .get("function", {}).get("arguments") == "{}" for c in chunks)


# -- Cohere ---------------------------------------------------------------------------------------
def cohere_stream(fragments: list[str]) -> bytes:
    events = [
        {"type": "message-start", "id": "29f14a5a-1ab2-4f5d-bd6a-e0f3b1a0b2c1", "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look up the time."}}},
        {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            "id": "get_time_8fxmtbyd3xq0", "type": "function",
            "function": {"name": "get_time", "arguments": ""}}}}},
        *({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
            "function": {"arguments": f}}}}} for f in fragments),
        {"type": "tool-call-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {
            "billed_units": {"input_tokens": 20, "output_tokens": 9},
            "tokens": {"input_tokens": 1110, "output_tokens": 40}}}},
    ]
    if V2ChatStreamResponse is not None:
        adapter = pydantic.TypeAdapter(V2ChatStreamResponse)
        for event in events:
            assert adapter.validate_python(event).type == event["type"]
    return sse(events)


@pytest.mark.parametrize("fragments", [[], [""]], ids=["no-delta", "empty-delta"])
def test_cohere_stream_tool_without_arguments(fragments: list[str]) -> None:
    translator = CohereProvider(settings("cohere")).chat_stream("command-a-03-2025")
    call = only_call(feed(translator, cohere_stream(fragments)))
    assert call["name"] == "get_time" and json.loads(call["arguments"]) == {}


def cohere_reply(arguments: str) -> bytes:
    body = {"id": "7d1e5b3c-0f6a-4d2b-9a8e-3c5f7b9d1e2f", "finish_reason": "TOOL_CALL", "message": {
        "role": "assistant", "tool_plan": "I will look up the time.",
        "tool_calls": [{"id": "get_time_8fxmtbyd3xq0", "type": "function",
                        "function": {"name": "get_time", "arguments": arguments}}]},
        "usage": {"billed_units": {"input_tokens": 20, "output_tokens": 9},
                  "tokens": {"input_tokens": 1110, "output_tokens": 40}}}
    if V2ChatResponse is not None:
        assert not cohere_extras(pydantic.TypeAdapter(V2ChatResponse).validate_python(body), "reply")
    return orjson.dumps(body)


@pytest.mark.parametrize("arguments", ["null", "", " "])
def test_cohere_response_tool_without_arguments(arguments: str) -> None:
    out = CohereProvider(settings("cohere")).chat_response(cohere_reply(arguments), "command-a-03-2025")
    ChatCompletion.model_validate(out)
    [call] = out["choices"][0]["message"]["tool_calls"]
    assert call["function"]["arguments"] == "{}"


# -- Bedrock --------------------------------------------------------------------------------------
def bedrock_stream(fragments: list[str]) -> bytes:
    events = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {
            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_time"}}}),
        *(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": f}}}) for f in fragments),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 402, "outputTokens": 35, "totalTokens": 437},
                      "metrics": {"latencyMs": 911}}),
    ]
    if BEDROCK_RUNTIME is not None:
        union = BEDROCK_RUNTIME.shape_for("ConverseStreamOutput")
        for name, payload in events:
            assert not shape_problems(payload, union.members[name]), name
    return b"".join(event_frame(name, orjson.dumps(payload)) for name, payload in events)


@pytest.mark.parametrize("fragments", [[], [""]], ids=["no-delta", "empty-delta"])
def test_bedrock_stream_tool_without_arguments(fragments: list[str]) -> None:
    translator = BedrockProvider(settings("bedrock")).chat_stream("anthropic.claude-3-5-sonnet-20240620-v1:0")
    call = only_call(feed(translator, bedrock_stream(fragments), 5))
    assert call["name"] == "get_time" and json.loads(call["arguments"]) == {}


# -- Gemini ---------------------------------------------------------------------------------------
def test_gemini_stream_tool_without_arguments() -> None:
    event = {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "get_time"}}]},
                             "finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 41, "candidatesTokenCount": 5, "totalTokenCount": 46},
             "modelVersion": "gemini-2.5-flash", "responseId": "bXlJaLm3CZGPz7IP0tmx2Qs"}
    if genai_types is not None:
        genai_types.GenerateContentResponse.model_validate(event)
    translator = GeminiProvider(settings("gemini")).chat_stream("gemini-2.5-flash")
    call = only_call(feed(translator, sse([event], named=False)))
    assert call["name"] == "get_time" and json.loads(call["arguments"]) == {}


# -- OpenAI-compatible ----------------------------------------------------------------------------
def compat_chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-9f1c", "object": "chat.completion.chunk", "created": 1718000000,
            "model": "qwen2.5-7b-instruct", "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                        "logprobs": None}]}


def test_compatible_stream_tool_without_arguments() -> None:
    """vLLM-style: the call opens with `arguments: ""` and no argument text follows."""
    events = [compat_chunk({"role": "assistant", "content": ""}),
              compat_chunk({"tool_calls": [{"index": 0, "id": "chatcmpl-tool-7c2f", "type": "function",
                                            "function": {"name": "get_time", "arguments": ""}}]}),
              compat_chunk({}, "tool_calls")]
    translator = OpenAIProvider(settings("vllm")).chat_stream("qwen2.5-7b-instruct")
    call = only_call(feed(translator, sse(events, named=False) + b"data: [DONE]\n\n"))
    assert call["id"] == "chatcmpl-tool-7c2f" and json.loads(call["arguments"]) == {}


def test_compatible_stream_call_that_starts_in_the_finish_chunk() -> None:
    """The whole call in the finish chunk: its own arguments become `{}`, no delta is added after it."""
    events = [compat_chunk({"role": "assistant", "content": ""}),
              compat_chunk({"tool_calls": [{"index": 0, "id": "T7pQm2xZa", "type": "function",
                                            "function": {"name": "get_time", "arguments": ""}}]}, "tool_calls")]
    translator = OpenAIProvider(settings("vllm")).chat_stream("qwen2.5-7b-instruct")
    chunks = feed(translator, sse(events, named=False) + b"data: [DONE]\n\n")
    assert len(chunks) == 2 and json.loads(only_call(chunks)["arguments"]) == {}


def test_compatible_response_tool_without_arguments() -> None:
    body = {"id": "chatcmpl-9f1c", "object": "chat.completion", "created": 1718000000,
            "model": "qwen2.5-7b-instruct", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [
                    {"id": "chatcmpl-tool-7c2f", "type": "function",
                     "function": {"name": "get_time", "arguments": ""}}]}}]}
    out = OpenAIProvider(settings("vllm")).chat_response(orjson.dumps(body), "qwen2.5-7b-instruct")
    ChatCompletion.model_validate(out)
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_compatible_stream_completes_each_choice_of_n() -> None:
    """Two choices, each with a parameterless call: each gets its own `{}` before its own finish."""
    def chunk(index: int, delta: dict, finish: str | None = None) -> dict:
        return {**compat_chunk(delta, finish), "choices": [{"index": index, "delta": delta,
                                                            "finish_reason": finish, "logprobs": None}]}

    events = [chunk(i, d, f) for i in (0, 1) for d, f in (
        ({"role": "assistant", "content": ""}, None),
        ({"tool_calls": [{"index": 0, "id": f"call_{i}", "type": "function",
                          "function": {"name": "get_time", "arguments": ""}}]}, None),
        ({}, "tool_calls"))]
    translator = OpenAIProvider(settings("openai")).chat_stream("gpt-4o-mini")
    chunks = feed(translator, sse(events, named=False) + b"data: [DONE]\n\n")
    for i in (0, 1):
        mine = [c for c in chunks if c["choices"][0]["index"] == i]
        assert json.loads(assemble(mine)["calls"][0]["arguments"]) == {}
        assert mine[-2]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"arguments": "{}"}}]


def test_streamed_arguments_leave_other_tool_types_alone() -> None:
    """A custom tool's call streams `input`, not function arguments: nothing is added to it."""
    chunks = [compat_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "custom",
                                            "custom": {"name": "grammar", "input": ""}}]}),
              compat_chunk({}, "tool_calls")]
    before = json.loads(json.dumps(chunks))
    base.StreamedArguments().complete(chunks)
    assert chunks == before
