"""AnthropicProvider: canonical OpenAI requests in, Anthropic Messages bodies out, and back.

Every request body built here is validated with the anthropic SDK's own request types, every
response with the openai SDK's types, and the golden fixtures in `fixtures/anthropic/` (documented
Anthropic response shapes) with the anthropic SDK's response types.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion
from support.openai_chunks import feed
from support.vendor_schemas import ANTHROPIC_EVENT, ANTHROPIC_MESSAGE, anthropic_request_problems

from providers.anthropic import AnthropicProvider
from providers.base import HttpRequest, ProviderSettings
from providers.capabilities import unsupported, unsupported_error, without
from providers.errors import ErrorKind, UpstreamError
from providers.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
MODEL = "claude-sonnet-4-5"
KEY = "sk-ant-api03-SECRET-never-echo"


# -- helpers ----------------------------------------------------------------------------------
def provider(**options: Any) -> AnthropicProvider:
    headers = options.pop("headers", {})
    base_url = options.pop("base_url", None)
    return AnthropicProvider(ProviderSettings(name="anthropic", type="anthropic", base_url=base_url,
                                              headers=headers, options=options))


def validate_anthropic(body: dict, stream: bool) -> None:
    """Fail unless `body` is a valid Anthropic Messages request according to the SDK's types."""
    problems = anthropic_request_problems(body, stream)
    assert not problems, "\n".join(problems)


def build(body: dict, stream: bool = False, prov: AnthropicProvider | None = None,
          model: str = MODEL) -> dict:
    request = (prov or provider()).chat_request(body, model, KEY, stream)
    assert isinstance(request, HttpRequest)
    assert KEY.encode() not in request.body
    payload = orjson.loads(request.body)
    validate_anthropic(payload, stream)
    return payload


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def respond(name: str, prov: AnthropicProvider | None = None) -> dict:
    body = fixture_bytes(name)
    ANTHROPIC_MESSAGE.validate_python(orjson.loads(body))  # the fixture itself is a real Anthropic shape
    out = (prov or provider()).chat_response(body, MODEL)
    ChatCompletion.model_validate(out)
    return out


def stream_chunks(data: bytes, step: int | None = None, prov: AnthropicProvider | None = None) -> list[dict]:
    return feed((prov or provider()).chat_stream(MODEL), data, step)


def rebuild(chunks: list[dict]) -> dict:
    """Accumulate OpenAI chunks the way an OpenAI SDK client does."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict] = {}
    blocks: list[dict] = []
    finish = None
    usage = None
    role = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            role = role or delta.get("role")
            if delta.get("content"):
                content.append(delta["content"])
            if delta.get("reasoning_content"):
                reasoning.append(delta["reasoning_content"])
            blocks += delta.get("thinking_blocks") or []
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["name"] = fn["name"]
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return {"role": role, "content": "".join(content) or None, "reasoning_content": "".join(reasoning) or None,
            "thinking_blocks": blocks or None, "tool_calls": [calls[i] for i in sorted(calls)],
            "finish_reason": finish, "usage": usage}


def flatten(response: dict) -> dict:
    """The same view of a non-stream translation."""
    choice = response["choices"][0]
    message = choice["message"]
    return {"role": message["role"], "content": message["content"] or None,
            "reasoning_content": message.get("reasoning_content"),
            "thinking_blocks": message.get("thinking_blocks"),
            "tool_calls": [{"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                           for c in message.get("tool_calls") or []],
            "finish_reason": choice["finish_reason"], "usage": response["usage"]}


def same_arguments(a: list[dict], b: list[dict]) -> bool:
    return [(c["id"], c["name"], json.loads(c["arguments"])) for c in a] == \
        [(c["id"], c["name"], json.loads(c["arguments"])) for c in b]


def raises(kind: ErrorKind, fn: Any, *args: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        fn(*args)
    assert info.value.kind is kind, info.value
    return info.value


USER = {"role": "user", "content": "What is the weather in Paris?"}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


# -- the validator itself can fail --------------------------------------------------------------
@pytest.mark.parametrize("body", [
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},  # no max_tokens
    {"model": MODEL, "max_tokens": 10, "messages": [{"role": "tool", "content": "x"}]},
    {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {"model": MODEL, "max_tokens": 10, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "{\"a\": 1}"}]}]},
    {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/bmp", "data": PNG}}]}]},
    {"model": MODEL, "max_tokens": 10, "messages": [USER], "tool_choice": {"type": "required"}},
    {"model": MODEL, "max_tokens": 10, "messages": [USER], "stop": ["x"]},
    {"model": MODEL, "max_tokens": 10, "messages": [USER], "temperature": 1.5},
])
def test_request_validator_rejects_malformed_bodies(body: dict) -> None:
    with pytest.raises(AssertionError):
        validate_anthropic(body, stream=False)


def test_request_validator_accepts_a_valid_body() -> None:
    validate_anthropic({"model": MODEL, "max_tokens": 10, "messages": [USER], "temperature": 0.2}, False)


# -- request: transport ----------------------------------------------------------------------
def test_url_headers_and_settings_headers() -> None:
    prov = provider(headers={"anthropic-beta": "context-1m-2025-08-07"})
    request = prov.chat_request({"messages": [USER]}, MODEL, KEY, False)
    assert request.method == "POST"
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers == {"content-type": "application/json", "anthropic-version": "2023-06-01",
                               "anthropic-beta": "context-1m-2025-08-07", "x-api-key": KEY}
    assert provider(base_url="https://proxy.example/anthropic/v1/").chat_request(
        {"messages": [USER]}, MODEL, None, False).url == "https://proxy.example/anthropic/v1/messages"
    assert "x-api-key" not in provider().chat_request({"messages": [USER]}, MODEL, None, False).headers


def test_capabilities_and_identity() -> None:
    caps = AnthropicProvider.capabilities
    assert AnthropicProvider.type == "anthropic"
    assert AnthropicProvider.default_base_url == "https://api.anthropic.com"
    assert (caps.n, caps.logprobs, caps.embeddings, caps.tools, caps.vision, caps.json_schema) == \
        (False, False, False, True, True, True)
    assert unsupported(caps, {"input": "x"}, "embeddings") == ["model"]
    err = raises(ErrorKind.UNSUPPORTED, provider().embeddings_request, {"input": "x"}, MODEL, KEY)
    assert (err.param, err.code, err.client_status) == ("model", "unsupported_endpoint", 400)


def test_bad_drop_params_option_is_rejected_at_start_up() -> None:
    with pytest.raises(ValueError, match=r"providers\.anthropic\.options\.drop_params"):
        provider(drop_params="yes")


def test_bad_options_are_rejected_at_start_up() -> None:
    with pytest.raises(ValueError, match="structured_output"):
        provider(structured_output="magic")


# -- request: messages ------------------------------------------------------------------------
def test_system_and_developer_messages_are_extracted() -> None:
    body = build({"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        USER,
    ], "stream": False})
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": USER["content"]}]}]
    assert body["model"] == MODEL and "stream" not in body


def test_system_cache_control_keeps_blocks() -> None:
    big = "Reference manual. " * 50
    body = build({"messages": [
        {"role": "system", "content": [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Q1", "cache_control": {"type": "ephemeral",
                                                                                        "ttl": "1h"}}]},
    ]})
    assert body["system"] == [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}},
                              {"type": "text", "text": "Be brief."}]
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_message_level_cache_control_marks_last_block() -> None:
    body = build({"messages": [{"role": "user", "content": "long document", "cache_control": {"type": "ephemeral"}}]})
    assert body["messages"][0]["content"] == [{"type": "text", "text": "long document",
                                               "cache_control": {"type": "ephemeral"}}]


def test_multi_turn_and_same_role_merging() -> None:
    body = build({"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Are you there?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "assistant", "content": [{"type": "text", "text": "How can I help?"}]},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": ""},  # empty turns are dropped (Anthropic rejects empty text)
        {"role": "user", "content": "  "},
    ]})
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["Hi", "Are you there?"]
    assert [b["text"] for b in body["messages"][1]["content"]] == ["Yes.", "How can I help?"]


def test_only_system_messages_is_a_bad_request() -> None:
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [{"role": "system", "content": "x"}]})
    assert err.param == "messages"
    raises(ErrorKind.BAD_REQUEST, build, {"messages": []})
    raises(ErrorKind.BAD_REQUEST, build, {"messages": [{"role": "narrator", "content": "x"}]})


def test_images_data_url_and_https() -> None:
    body = build({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare these"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"},
         "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
    ]}]})
    blocks = body["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[2]["source"]["media_type"] == "image/jpeg" and blocks[2]["cache_control"]
    assert blocks[3] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}}


@pytest.mark.parametrize("url", ["data:image/bmp;base64,AAAA", "data:image/png,rawdata", "ftp://x/y.png", ""])
def test_bad_images_are_bad_requests(url: str) -> None:
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]})
    assert err.param == "messages"


def test_files_pdf_and_text_and_audio() -> None:
    text = base64.b64encode(b"plain notes").decode()
    body = build({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_data": f"data:text/plain;base64,{text}"}},
        {"type": "text", "text": "Summarise"},
    ]}]})
    blocks = body["messages"][0]["content"]
    assert blocks[0] == {"type": "document", "title": "a.pdf",
                         "source": {"type": "base64", "media_type": "application/pdf", "data": PNG}}
    assert blocks[1]["source"] == {"type": "text", "media_type": "text/plain", "data": "plain notes"}
    err = raises(ErrorKind.UNSUPPORTED, build, {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
    assert err.param == "messages"
    raises(ErrorKind.UNSUPPORTED, build, {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}}]}]})


# -- request: tools -------------------------------------------------------------------------
def test_tools_are_translated() -> None:
    cached = {**TIME_TOOL, "cache_control": {"type": "ephemeral"}}
    body = build({"messages": [USER], "tools": [WEATHER_TOOL, cached,
                                                {"type": "function", "function": {"name": "ping"}}]})
    assert body["tools"] == [
        {"name": "get_weather", "description": "Current weather for a city",
         "input_schema": WEATHER_TOOL["function"]["parameters"]},
        {"name": "get_time", "input_schema": TIME_TOOL["function"]["parameters"],
         "cache_control": {"type": "ephemeral"}},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body
    raises(ErrorKind.UNSUPPORTED, build, {"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "x"}}]})


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_weather"}}, False,
     {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    (None, True, None),
])
def test_tool_choice_forms(choice: Any, parallel: bool | None, expected: dict | None) -> None:
    request: dict[str, Any] = {"messages": [USER], "tools": [WEATHER_TOOL, TIME_TOOL]}
    if choice is not None:
        request["tool_choice"] = choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    body = build(request)
    assert body.get("tool_choice") == expected


def test_tool_choice_allowed_tools_narrows_tools() -> None:
    body = build({"messages": [USER], "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": {
        "type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
            {"type": "function", "function": {"name": "get_time"}}]}}})
    assert [t["name"] for t in body["tools"]] == ["get_time"]
    assert body["tool_choice"] == {"type": "any"}


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in build({"messages": [USER], "tool_choice": "auto"})
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], "tool_choice": "required"})
    assert err.param == "tool_choice"


def test_two_step_tool_loop_with_parallel_calls() -> None:
    """call -> tool results -> answer, using the translated response as the next turn's history."""
    tools = [WEATHER_TOOL, TIME_TOOL]
    build({"messages": [USER], "tools": tools})
    first = respond("tool_use.json")
    message = ChatCompletion.model_validate(first).choices[0].message
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert [c.function.name for c in message.tool_calls] == ["get_weather", "get_time"]
    history = [USER, message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18°C, sunny"},
               {"role": "tool", "tool_call_id": message.tool_calls[1].id,
                "content": [{"type": "text", "text": "14:05"}]},
               {"role": "user", "content": "Thanks! Summarise."}]
    body = build({"messages": history, "tools": tools})
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assistant = body["messages"][1]["content"]
    assert assistant == [
        {"type": "text", "text": "I'll check both for you."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"city": "Paris", "unit": "celsius"}},
        {"type": "tool_use", "id": "toolu_01B77sd8f7s8df7s8df7s8d", "name": "get_time",
         "input": {"timezone": "Europe/Paris"}},
    ]
    results = body["messages"][2]["content"]  # both results in ONE user turn, ids kept, before the text
    assert results == [
        {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "18°C, sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_01B77sd8f7s8df7s8df7s8d",
         "content": [{"type": "text", "text": "14:05"}]},
        {"type": "text", "text": "Thanks! Summarise."},
    ]
    final = respond("text.json")
    assert final["choices"][0]["finish_reason"] == "stop"


def test_tool_results_come_first_in_their_user_turn() -> None:
    body = build({"messages": [
        USER,
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                                              "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "user", "content": "also hurry"},
        {"role": "tool", "tool_call_id": "t1", "content": ""},
    ], "tools": [TIME_TOOL]})
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "t1", "name": "get_time", "input": {}}]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "t1"},
                                              {"type": "text", "text": "also hurry"}]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", "42"])
def test_invalid_tool_arguments_are_bad_requests(arguments: str) -> None:
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER, {"role": "assistant", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": arguments}}]}],
        "tools": [TIME_TOOL]})
    assert err.param == "messages"
    assert err.client_status == 400


def test_tool_message_without_id_is_bad_request() -> None:
    raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER, {"role": "tool", "content": "x"}]})


# -- request: generation parameters ------------------------------------------------------------
def test_max_tokens_sources() -> None:
    assert build({"messages": [USER]})["max_tokens"] == 4096
    assert build({"messages": [USER]}, prov=provider(default_max_tokens=1000))["max_tokens"] == 1000
    assert build({"messages": [USER], "max_tokens": 50})["max_tokens"] == 50
    assert build({"messages": [USER], "max_tokens": 50, "max_completion_tokens": 70})["max_tokens"] == 70
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], "max_tokens": "lots"})
    assert err.param == "max_tokens"


@pytest.mark.parametrize("body", [
    {}, {"max_tokens": 50}, {"max_completion_tokens": 70, "max_tokens": 50}, {"reasoning_effort": "high"},
    {"reasoning_effort": "low", "max_tokens": 100}, {"reasoning_effort": "medium", "max_tokens": 9000},
    {"thinking": {"type": "enabled", "budget_tokens": 2048}},
])
@pytest.mark.parametrize("options", [{}, {"default_max_tokens": 1000}])
def test_output_limit_is_the_max_tokens_sent(body: dict, options: dict) -> None:
    """What a budget reserves for an Anthropic call is exactly what Anthropic may bill: the
    `max_tokens` it is sent, thinking budget included (a request's 100 with high effort is not 100)."""
    prov = provider(**options)
    assert prov.output_limit({"messages": [USER], **body}, MODEL) == \
        build({"messages": [USER], **body}, prov=prov)["max_tokens"]


def test_output_limit_of_an_untranslatable_request_is_none() -> None:
    assert provider().output_limit({"messages": [USER], "reasoning_effort": "galaxy-brain"}, MODEL) is None


def test_stop_sequences() -> None:
    assert build({"messages": [USER], "stop": "END"})["stop_sequences"] == ["END"]
    assert build({"messages": [USER], "stop": ["A", "B", ""]})["stop_sequences"] == ["A", "B"]
    assert "stop_sequences" not in build({"messages": [USER], "stop": None})
    raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], "stop": [1]})


def test_sampling_parameters() -> None:
    body = build({"messages": [USER], "temperature": 0.3, "top_p": 0.9, "top_k": 40})
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.3, 0.9, 40)
    for param, value in [("temperature", 1.5), ("temperature", -0.1), ("temperature", "hot"), ("top_p", 2)]:
        err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], param: value})
        assert err.param == param


def test_user_metadata_and_ignored_openai_members() -> None:
    body = build({"messages": [USER], "user": "user-123", "stream_options": {"include_usage": True},
                  "metadata": {"team": "a"}, "store": True, "service_tier": "default",
                  "parallel_tool_calls": True, "prompt_cache_key": "k", "n": 1, "logprobs": False,
                  "frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "modalities": ["text"]})
    assert unsupported(AnthropicProvider.capabilities, {"messages": [USER], "n": 1, "logprobs": False,
                                                        "frequency_penalty": 0, "presence_penalty": 0.0,
                                                        "logit_bias": {}, "modalities": ["text"]}, "chat") == []
    assert body["metadata"] == {"user_id": "user-123"}
    assert body["service_tier"] == "standard_only"
    assert set(body) == {"model", "messages", "max_tokens", "metadata", "service_tier"}
    assert build({"messages": [USER], "user": "u", "safety_identifier": "s"})["metadata"] == {"user_id": "s"}


@pytest.mark.parametrize(("param", "value"), [
    ("logprobs", True), ("top_logprobs", 3), ("seed", 7), ("frequency_penalty", 0.5),
    ("presence_penalty", -1), ("logit_bias", {"50256": -100}), ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]), ("prediction", {"type": "content", "content": "x"}),
    ("web_search_options", {}), ("verbosity", "low"), ("functions", [{"name": "f"}]),
    ("function_call", "auto"),
])
def test_unsupported_parameters_are_named(param: str, value: Any) -> None:
    assert unsupported(AnthropicProvider.capabilities, {"messages": [USER], param: value}, "chat") == [param]
    err = unsupported_error("anthropic", param)
    assert err.kind is ErrorKind.UNSUPPORTED and err.param == param and err.code == "unsupported_parameter"
    assert err.client_status == 400 and err.is_caller_error
    assert err.message.startswith(f"anthropic: '{param}' is not supported")


def test_n_is_fanned_out_by_the_router_not_refused() -> None:
    assert AnthropicProvider.capabilities.n is False
    assert unsupported(AnthropicProvider.capabilities, {"messages": [USER], "n": 3}, "chat") == []
    assert "n" not in build({"messages": [USER], "n": 3})


def test_drop_params_strips_what_anthropic_cannot_honour() -> None:
    request = {"messages": [USER], "seed": 7, "logprobs": True, "presence_penalty": 1, "temperature": 0.5}
    missing = unsupported(AnthropicProvider.capabilities, request, "chat")
    assert missing == ["logprobs", "seed", "presence_penalty"]
    body = build(without(request, missing), prov=provider(drop_params=True))
    assert set(body) == {"model", "messages", "max_tokens", "temperature"}


def test_stream_flag() -> None:
    body = build({"messages": [USER], "stream": True, "stream_options": {"include_usage": True}}, stream=True)
    assert body["stream"] is True


# -- request: structured output ---------------------------------------------------------------
WEATHER_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "temperature_c", "conditions"],
                  "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"},
                                 "conditions": {"type": "string"}}}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather_report", "strict": True,
                                                             "schema": WEATHER_SCHEMA}}


def test_json_schema_native() -> None:
    body = build({"messages": [USER], "response_format": JSON_SCHEMA_FORMAT})
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}
    assert "tools" not in body


def test_json_schema_as_forced_tool_round_trip() -> None:
    prov = provider(structured_output="tool")
    body = build({"messages": [USER], "response_format": JSON_SCHEMA_FORMAT, "tools": [WEATHER_TOOL],
                  "tool_choice": "auto"}, prov=prov)
    assert "output_config" not in body
    assert body["tools"][-1]["name"] == "json_output__weather_report"
    assert body["tools"][-1]["input_schema"] == WEATHER_SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "json_output__weather_report"}
    response = respond("json_tool.json", prov)
    message = response["choices"][0]["message"]
    assert json.loads(message["content"]) == {"city": "Paris", "temperature_c": 18, "conditions": "sunny"}
    assert "tool_calls" not in message
    assert response["choices"][0]["finish_reason"] == "stop"
    streamed = rebuild(stream_chunks(fixture_bytes("json_tool.sse"), prov=prov))
    assert json.loads(streamed["content"]) == json.loads(message["content"])
    assert streamed["tool_calls"] == [] and streamed["finish_reason"] == "stop"


def test_json_schema_tool_mode_falls_back_to_native_with_thinking() -> None:
    body = build({"messages": [USER], "response_format": JSON_SCHEMA_FORMAT, "reasoning_effort": "low"},
                 prov=provider(structured_output="tool"))
    assert body["output_config"]["format"]["type"] == "json_schema" and "tools" not in body


def test_json_object_and_text_formats() -> None:
    body = build({"messages": [{"role": "system", "content": "Be terse."}, USER],
                  "response_format": {"type": "json_object"}})
    assert body["system"].startswith("Be terse.\n\n") and "JSON object" in body["system"]
    assert "system" not in build({"messages": [USER], "response_format": {"type": "text"}})
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], "response_format": {"type": "yaml"}})
    assert err.param == "response_format"


# -- request: reasoning -----------------------------------------------------------------------
def test_reasoning_effort_maps_to_thinking_budget() -> None:
    body = build({"messages": [USER], "reasoning_effort": "medium"})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["max_tokens"] == 8192 + 4096
    body = build({"messages": [USER], "reasoning_effort": "low", "max_completion_tokens": 1000})
    assert body["thinking"]["budget_tokens"] == 2048 and body["max_tokens"] == 3048
    body = build({"messages": [USER], "reasoning_effort": "low", "max_completion_tokens": 20000})
    assert body["max_tokens"] == 20000
    assert "thinking" not in build({"messages": [USER], "reasoning_effort": "none"})
    err = raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], "reasoning_effort": "extreme"})
    assert err.param == "reasoning_effort"


def test_reasoning_effort_adaptive_mode_and_explicit_thinking() -> None:
    body = build({"messages": [USER], "reasoning_effort": "high"}, prov=provider(thinking_mode="adaptive"))
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "high"}
    body = build({"messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 3000},
                  "reasoning_effort": "high", "max_tokens": 3000})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000} and body["max_tokens"] == 6000
    raises(ErrorKind.BAD_REQUEST, build, {"messages": [USER], "thinking": {"type": "on"}})


def test_thinking_blocks_are_replayed_first_in_the_assistant_turn() -> None:
    response = respond("thinking_tool.json")
    message = response["choices"][0]["message"]
    assert message["reasoning_content"].startswith("The user asks about Oslo weather.")
    assert message["thinking_blocks"][0]["signature"] == "EqQBCkYIBxgCKkB7bW9ja3NpZ25hdHVyZQ=="
    assert message["thinking_blocks"][1]["type"] == "redacted_thinking"
    assert response["usage"]["completion_tokens_details"] == {"reasoning_tokens": 48}
    replay = ChatCompletion.model_validate(response).choices[0].message.model_dump(exclude_none=True)
    body = build({"messages": [USER, replay, {"role": "tool", "tool_call_id": "toolu_01ThinkOslo",
                                              "content": "3°C"}],
                  "tools": [WEATHER_TOOL], "reasoning_effort": "low"})
    turn = body["messages"][1]["content"]
    assert [b["type"] for b in turn] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert turn[0] == message["thinking_blocks"][0]
    assert turn[1] == message["thinking_blocks"][1]


def test_unsigned_reasoning_is_not_replayed() -> None:
    body = build({"messages": [USER, {"role": "assistant", "content": "Sunny.", "reasoning_content": "hmm",
                                      "thinking_blocks": [{"type": "thinking", "thinking": "hmm"}]},
                               {"role": "user", "content": "And tomorrow?"}]})
    assert body["messages"][1]["content"] == [{"type": "text", "text": "Sunny."}]


# -- responses ------------------------------------------------------------------------------
def test_text_response_with_cache_usage() -> None:
    response = respond("text.json")
    assert response["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert response["object"] == "chat.completion" and isinstance(response["created"], int)
    assert response["model"] == "claude-haiku-4-5-20251001"
    choice = response["choices"][0]
    assert choice["message"]["content"] == "Hello! Paris is the capital of France."
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert response["usage"] == {
        "prompt_tokens": 21 + 3400 + 1200, "completion_tokens": 12, "total_tokens": 21 + 3400 + 1200 + 12,
        "prompt_tokens_details": {"cached_tokens": 3400, "cache_creation_tokens": 1200},
    }


def test_tool_use_response() -> None:
    message = respond("tool_use.json")["choices"][0]["message"]
    assert message["content"] == "I'll check both for you."
    assert message["tool_calls"][0] == {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"}, separators=(",", ":"))}}


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    (None, "stop"),
])
def test_finish_reasons(stop_reason: str | None, finish: str) -> None:
    data = orjson.loads(fixture_bytes("text.json"))
    data["stop_reason"] = stop_reason
    response = provider().chat_response(orjson.dumps(data), MODEL)
    ChatCompletion.model_validate(response)
    assert response["choices"][0]["finish_reason"] == finish
    sse = fixture_bytes("text.sse").replace(b'"stop_reason":"end_turn"',
                                            b'"stop_reason":' + orjson.dumps(stop_reason))
    assert rebuild(stream_chunks(sse))["finish_reason"] == finish


def test_refusal_response() -> None:
    response = respond("refusal.json")
    choice = response["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == ""
    assert choice["message"]["refusal"] == "This request could enable malware development."


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"[]", b'{"type":"message"}', b'{"id":1}', b""])
def test_garbage_bodies_are_invalid_responses(body: bytes) -> None:
    raises(ErrorKind.INVALID_RESPONSE, provider().chat_response, body, MODEL)


def test_error_object_in_a_2xx_body_is_classified() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    raises(ErrorKind.OVERLOADED, provider().chat_response, body, MODEL)


# -- streams ---------------------------------------------------------------------------------
STREAM_PAIRS = [("text.sse", "text.json"), ("tool_use.sse", "tool_use.json"),
                ("thinking_tool.sse", "thinking_tool.json")]


@pytest.mark.parametrize("name", ["text.sse", "tool_use.sse", "thinking_tool.sse", "json_tool.sse",
                                  "error_midstream.sse"])
def test_fixture_streams_are_real_anthropic_events(name: str) -> None:
    events = SSEDecoder().feed(fixture_bytes(name))
    assert events
    for event, data in events:
        parsed = orjson.loads(data)
        assert event == parsed["type"]  # Anthropic sends the type twice: event line and JSON
        if event not in ("ping", "error"):  # not members of the SDK's event union
            ANTHROPIC_EVENT.validate_python(parsed)


@pytest.mark.parametrize(("sse", "body"), STREAM_PAIRS)
def test_stream_rebuilds_the_non_stream_translation(sse: str, body: str) -> None:
    chunks = stream_chunks(fixture_bytes(sse))
    streamed, whole = rebuild(chunks), flatten(respond(body))
    assert streamed["role"] == "assistant"
    assert streamed["content"] == whole["content"]
    assert streamed["reasoning_content"] == whole["reasoning_content"]
    assert streamed["thinking_blocks"] == whole["thinking_blocks"]
    assert same_arguments(streamed["tool_calls"], whole["tool_calls"])
    assert streamed["finish_reason"] == whole["finish_reason"]
    assert streamed["usage"] == whole["usage"]


@pytest.mark.parametrize(("sse", "body"), STREAM_PAIRS)
def test_stream_chunk_shapes(sse: str, body: str) -> None:
    chunks = stream_chunks(fixture_bytes(sse))
    first, finish, usage = chunks[0], chunks[-2], chunks[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert finish["choices"][0]["finish_reason"] and finish["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    assert sum(1 for c in chunks for ch in c["choices"] if ch["finish_reason"]) == 1
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("msg_")
    assert {c["created"] for c in chunks} == {first["created"]}


def test_stream_tool_call_deltas() -> None:
    chunks = stream_chunks(fixture_bytes("tool_use.sse"))
    calls = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or []]
    assert calls[0] == {"index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(c) == {"index", "function"} and set(c["function"]) == {"arguments"}
               for c in calls if "id" not in c)
    assert [c["index"] for c in calls] == [0, 0, 0, 1, 1, 1]  # stable index per tool_use block, in order
    assert calls[3]["id"] == "toolu_01B77sd8f7s8df7s8df7s8d"


@pytest.mark.parametrize("name", ["text.sse", "tool_use.sse", "thinking_tool.sse", "json_tool.sse"])
def test_stream_split_at_every_byte_gives_the_same_chunks(name: str) -> None:
    def timeless(chunks: list[dict]) -> list[dict]:  # `created` is the clock's: a run may cross a second
        return [{k: v for k, v in c.items() if k != "created"} for c in chunks]

    data = fixture_bytes(name)
    whole = timeless(stream_chunks(data))
    assert timeless(stream_chunks(data, step=1)) == whole
    assert timeless(stream_chunks(data.replace(b"\n", b"\r\n"), step=1)) == whole
    assert timeless(stream_chunks(data, step=7)) == whole


def test_stream_pings_are_ignored() -> None:
    data = fixture_bytes("text.sse")
    assert b"event: ping" in data
    without = b"\n\n".join(e for e in data.split(b"\n\n") if b"ping" not in e)
    assert stream_chunks(without) == stream_chunks(data)
    assert stream_chunks(b": keep-alive\n\n" + data) == stream_chunks(data)


@pytest.mark.parametrize(("etype", "kind"), [
    ("overloaded_error", ErrorKind.OVERLOADED), ("rate_limit_error", ErrorKind.RATE_LIMIT),
    ("api_error", ErrorKind.SERVER), ("invalid_request_error", ErrorKind.BAD_REQUEST),
    ("authentication_error", ErrorKind.AUTH), ("permission_error", ErrorKind.AUTH),
    ("not_found_error", ErrorKind.NOT_FOUND), ("request_too_large", ErrorKind.TOO_LARGE),
    ("timeout_error", ErrorKind.TIMEOUT), ("something_new", ErrorKind.SERVER),
])
def test_stream_mid_stream_error(etype: str, kind: ErrorKind) -> None:
    data = fixture_bytes("error_midstream.sse").replace(b"overloaded_error", etype.encode())
    translator = provider().chat_stream(MODEL)
    head, _, tail = data.partition(b"event: error")
    chunks = translator.feed(head)
    assert rebuild(chunks)["content"] == "Once upon"
    with pytest.raises(UpstreamError) as info:
        translator.feed(b"event: error" + tail)
    assert info.value.kind is kind
    assert info.value.code == etype


def test_stream_error_without_trailing_blank_line_is_raised_at_close() -> None:
    data = fixture_bytes("error_midstream.sse").rstrip(b"\n")
    translator = provider().chat_stream(MODEL)
    translator.feed(data)
    raises(ErrorKind.OVERLOADED, translator.close)


def test_truncated_stream_is_stream_cut_at_every_byte() -> None:
    data = fixture_bytes("tool_use.sse")
    end = data.index(b'data: {"type":"message_stop"}') + len(b'data: {"type":"message_stop"}')
    for cut in range(end):
        translator = provider().chat_stream(MODEL)
        translator.feed(data[:cut])
        with pytest.raises(UpstreamError) as info:
            translator.close()
        assert info.value.kind is ErrorKind.STREAM_CUT, cut
    translator = provider().chat_stream(MODEL)
    translator.feed(data[:end])
    assert translator.close()[-1]["choices"] == []  # the final event is dispatched at end of input


def test_garbled_stream_event_is_invalid_response() -> None:
    translator = provider().chat_stream(MODEL)
    raises(ErrorKind.INVALID_RESPONSE, translator.feed, b"event: message_start\ndata: {nope\n\n")


def test_stream_usage_takes_newer_cumulative_fields_from_message_delta() -> None:
    data = fixture_bytes("text.sse").replace(
        b'"usage":{"output_tokens":12}',
        b'"usage":{"output_tokens":15,"input_tokens":25,"cache_read_input_tokens":3400,'
        b'"cache_creation_input_tokens":null}')
    usage = stream_chunks(data)[-1]["usage"]
    assert usage["prompt_tokens"] == 25 + 3400 + 1200 and usage["completion_tokens"] == 15


def test_stream_without_usage_has_no_usage_chunk() -> None:
    data = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
            b'"role":"assistant","content":[],"model":"claude-x"}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    chunks = stream_chunks(data)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]
    assert all("usage" not in c for c in chunks)


def test_stream_events_after_message_stop_are_ignored() -> None:
    data = fixture_bytes("text.sse")
    assert stream_chunks(data + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                                b'"delta":{"type":"text_delta","text":"late"}}\n\n') == stream_chunks(data)


# -- errors ----------------------------------------------------------------------------------
ERROR_CASES = orjson.loads(fixture_bytes("errors.json"))


@pytest.mark.parametrize("case", ERROR_CASES, ids=[f"{c['status']}-{c['kind']}" for c in ERROR_CASES])
def test_http_errors_are_classified(case: dict) -> None:
    err = provider().error(case["status"], case["headers"], orjson.dumps(case["body"]))
    assert err.kind.value == case["kind"]
    assert err.upstream_status == case["status"]
    assert err.code == case["body"]["error"]["type"]
    assert err.param == case["param"]
    assert err.retry_after == case.get("retry_after")
    assert case["body"]["error"]["message"] in err.message and err.message.startswith("anthropic: ")
    assert KEY not in err.message


@pytest.mark.parametrize(("status", "kind"), [(529, ErrorKind.OVERLOADED), (502, ErrorKind.SERVER),
                                              (413, ErrorKind.TOO_LARGE), (429, ErrorKind.RATE_LIMIT)])
def test_non_json_error_bodies_fall_back_to_status(status: int, kind: ErrorKind) -> None:
    err = provider().error(status, {"retry-after-ms": "1500"}, b"<html>upstream says no</html>")
    assert err.kind is kind and err.retry_after == 1.5 and "upstream says no" in err.message


def test_error_content_policy_message() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                    "message": "Output blocked by content filtering policy"}})
    assert provider().error(400, {}, body).kind is ErrorKind.CONTENT_POLICY
