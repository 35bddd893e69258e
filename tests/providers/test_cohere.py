"""Cohere v2 chat / embed translation.

Request bodies are validated against the cohere SDK's own request types (the annotations of
`RawV2Client.chat` / `.embed`), strictly: unknown members, extra keys on any message, part or tool
(the SDK models allow extras, so they are hunted for explicitly) and values outside the SDK's
literal enums all fail. Responses are validated with the openai SDK's types; the golden fixtures
(shapes from Cohere's API reference) with the cohere SDK's response types.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from support.openai_chunks import assemble, feed
from support.vendor_schemas import (
    RawV2Client,
    cohere_chat_problems,
    cohere_embed_problems,
    cohere_extras,
    cohere_sdk_problems,
)

from providers.base import ProviderSettings
from providers.capabilities import unsupported, unsupported_error
from providers.cohere import CohereProvider
from providers.errors import ErrorKind, UpstreamError

try:  # the cohere SDK is a test-only dependency; without it the schema checks (only) are skipped
    from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse
except ImportError:  # pragma: no cover
    V2ChatResponse = V2ChatStreamResponse = None

FIXTURES = Path(__file__).parent / "fixtures" / "cohere"
MODEL = "command-a-03-2025"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


def make(**kwargs) -> CohereProvider:
    return CohereProvider(ProviderSettings(name="cohere", type="cohere", **kwargs))


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


# -- schema validation (skipped without the cohere SDK) ------------------------------------------
def assert_valid_chat(body: dict) -> None:
    if RawV2Client is None:
        return
    assert isinstance(body.get("stream"), bool)  # always sent (the SDK method sets it itself)
    problems = cohere_chat_problems(body)
    assert not problems, "\n".join(problems)


def chat(body: dict, *, stream: bool = False) -> dict:
    req = make().chat_request(body, MODEL, "co-key", stream)
    out = orjson.loads(req.body)
    assert out["stream"] is stream
    assert_valid_chat(dict(out))
    return out


def response(data: dict, model: str = MODEL) -> dict:
    out = make().chat_response(orjson.dumps(data), model)
    ChatCompletion.model_validate(out)
    return out


def run_stream(data: bytes) -> list[dict]:
    return feed(make().chat_stream(MODEL), data, step=1)


def sse_events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


needs_sdk = pytest.mark.skipif(RawV2Client is None, reason="cohere SDK not installed")


@needs_sdk
@pytest.mark.parametrize("bad", [
    {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]},  # no tool_call_id
    {"model": MODEL, "messages": [{"role": "user", "content": "x", "name": "bob"}]},  # extra key
    {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]},
    {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image", "url": "x"}]}]},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tool_choice": "AUTO"},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_p": 0.5},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",
                                                                              "function": {"name": "f"}}]},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "10"},
    {"messages": [{"role": "user", "content": "x"}]},
])
def test_validator_catches_malformed_bodies(bad):
    assert cohere_sdk_problems(bad, RawV2Client.chat)


@needs_sdk
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("chat_*.json")))
def test_golden_responses_match_the_sdk_types(name):
    parsed = pydantic.TypeAdapter(V2ChatResponse).validate_python(fixture(name))
    assert not cohere_extras(parsed, name)


@needs_sdk
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("stream_*.sse")))
def test_golden_stream_events_match_the_sdk_types(name):
    adapter = pydantic.TypeAdapter(V2ChatStreamResponse)
    for event in sse_events((FIXTURES / name).read_text()):
        # (no extras check: the real message-start echoes empty content/tool_calls the SDK does not model)
        assert adapter.validate_python(event).type == event["type"]


def test_cohere_sdk_is_installed_for_schema_checks():
    pytest.importorskip("cohere", reason="install cohere to validate request bodies against its types")


# -- requests -----------------------------------------------------------------------------------
def test_plain_chat_request():
    req = make().chat_request({"model": "alias", "messages": [{"role": "user", "content": "Hello"}],
                               "temperature": 0.3, "top_p": 0.8, "top_k": 20, "max_tokens": 100, "seed": 7,
                               "frequency_penalty": 0.1, "presence_penalty": 0.2, "stop": ["END"], "user": "u1",
                               "stream_options": {"include_usage": True}, "parallel_tool_calls": True},
                              MODEL, "co-key", False)
    assert req.method == "POST"
    assert req.url == "https://api.cohere.com/v2/chat"
    assert req.headers["authorization"] == "Bearer co-key"
    body = orjson.loads(req.body)
    assert body == {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "temperature": 0.3, "p": 0.8,
                    "k": 20, "max_tokens": 100, "seed": 7, "frequency_penalty": 0.1, "presence_penalty": 0.2,
                    "stop_sequences": ["END"], "stream": False}
    assert_valid_chat(body)


def test_stream_request_and_base_url():
    req = make(base_url="https://proxy.example/v2/").chat_request(
        {"messages": [{"role": "user", "content": "hi"}], "stop": "x"}, MODEL, "k", True)
    assert req.url == "https://proxy.example/v2/chat"
    assert req.headers["accept"] == "text/event-stream"
    body = orjson.loads(req.body)
    assert body["stream"] is True and body["stop_sequences"] == ["x"]
    assert_valid_chat(body)


def test_system_multi_turn_and_images():
    body = chat({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}], "name": "bot"},
        {"role": "user", "content": "Sure?", "name": "alice"},
    ]})
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use metric units."},
        {"role": "user", "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"},
    ]


def test_two_step_tool_loop_and_parallel_calls():
    body = chat({"messages": [{"role": "user", "content": "Weather in Toronto and New York?"}],
                 "tools": [WEATHER_TOOL], "tool_choice": "auto"})
    assert body["tools"] == [WEATHER_TOOL]
    assert "tool_choice" not in body

    out = response(fixture("chat_tool_calls.json"))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "I will search for the weather in Toronto and in New York."
    assert [c["id"] for c in choice["message"]["tool_calls"]] == ["get_weather_1byjy32y4hvq",
                                                                 "get_weather_q2vydsvw2z8t"]
    assert json.loads(choice["message"]["tool_calls"][1]["function"]["arguments"]) == {"location": "New York"}

    body = chat({"tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather in Toronto and New York?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": choice["message"]["tool_calls"]},
        {"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq", "content": '{"temperature": "24C"}'},
        {"role": "tool", "tool_call_id": "get_weather_q2vydsvw2z8t",
         "content": [{"type": "text", "text": '{"temperature": "19C"}'}]},
    ]})
    assert body["messages"][1] == {"role": "assistant", "tool_plan": "Let me check.",
                                   "tool_calls": choice["message"]["tool_calls"]}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq",
                                   "content": '{"temperature": "24C"}'}
    assert body["messages"][3]["content"] == '{"temperature": "19C"}'

    final = response(fixture("chat_after_tool.json"))
    assert final["choices"][0]["message"]["content"] == "It's 24°C in Toronto and 19°C in New York."
    assert final["usage"] == {"prompt_tokens": 62, "completion_tokens": 17, "total_tokens": 79,
                              "prompt_tokens_details": {"cached_tokens": 0}}  # 896 raw of 1002: template


@pytest.mark.parametrize(("choice", "expected", "names"), [
    ("required", "REQUIRED", ["get_weather", "get_time"]),
    ("none", "NONE", ["get_weather", "get_time"]),
    ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
        {"type": "function", "function": {"name": "get_weather"}}]}}, None, ["get_weather"]),
])
def test_tool_choice(choice, expected, names):
    time_tool = {"type": "function", "function": {"name": "get_time", "strict": True,
                                                  "parameters": {"type": "object", "properties": {}}}}
    body = chat({"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL, time_tool],
                 "tool_choice": choice})
    assert body.get("tool_choice") == expected
    assert [t["function"]["name"] for t in body["tools"]] == names
    assert body["strict_tools"] is True


def test_tool_without_parameters_and_tool_choice_without_tools():
    body = chat({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required",
                 "tools": [{"type": "function", "function": {"name": "ping", "description": ""}}]})
    assert body["tools"] == [{"type": "function", "function": {"name": "ping",
                                                               "parameters": {"type": "object", "properties": {}}}}]
    body = chat({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"})
    assert "tools" not in body and "tool_choice" not in body


@pytest.mark.parametrize(("response_format", "expected"), [
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}},
     {"type": "json_object", "json_schema": {"type": "object", "properties": {"name": {"type": "string"}},
                                             "required": ["name"]}}),
    ({"type": "text"}, None),
])
def test_response_format(response_format, expected):
    body = chat({"messages": [{"role": "user", "content": "JSON please"}], "response_format": response_format})
    assert body.get("response_format") == expected


def test_json_response_translates_to_content():
    out = response(fixture("chat_json.json"))
    assert json.loads(out["choices"][0]["message"]["content"]) == {"name": "Ada Lovelace", "born": 1815}


@pytest.mark.parametrize(("effort", "thinking"), [
    ("none", {"type": "disabled"}), ("low", {"type": "enabled", "token_budget": 1024}), ("high", {"type": "enabled"}),
])
def test_reasoning_effort(effort, thinking):
    assert chat({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort})["thinking"] == thinking


@pytest.mark.parametrize(("param", "value"), [
    ("logprobs", True), ("top_logprobs", 2), ("logit_bias", {"1": 2}), ("audio", {}),
    ("modalities", ["audio"]), ("prediction", {"type": "content", "content": "x"}), ("web_search_options", {}),
    ("functions", [{"name": "f"}]), ("function_call", "auto"),
])
def test_unsupported_parameters(param, value):
    body = {"messages": [{"role": "user", "content": "x"}], param: value}
    assert unsupported(CohereProvider.capabilities, body, "chat") == [param]
    err = unsupported_error("cohere", param)
    assert (err.kind, err.param, err.code, err.client_status) == (
        ErrorKind.UNSUPPORTED, param, "unsupported_parameter", 400)


def test_parameters_cohere_honours_or_ignores_are_not_refused():
    body = {"messages": [{"role": "user", "content": "x"}], "n": 3, "seed": 7, "frequency_penalty": 0.1,
            "presence_penalty": 0.2, "verbosity": "low", "logprobs": False, "top_logprobs": 0, "logit_bias": {}}
    assert CohereProvider.capabilities.n is False  # n > 1 is fanned out by the router
    assert unsupported(CohereProvider.capabilities, body, "chat") == []
    assert "n" not in chat(body)


@pytest.mark.parametrize(("body", "kind", "param"), [
    ({"messages": []}, ErrorKind.BAD_REQUEST, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, ErrorKind.BAD_REQUEST, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     ErrorKind.UNSUPPORTED, "messages[0].content[0]"),
    ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, ErrorKind.UNSUPPORTED, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL],
      "tool_choice": {"type": "function", "function": {"name": "nope"}}}, ErrorKind.BAD_REQUEST, "tool_choice"),
    ({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}, ErrorKind.BAD_REQUEST,
     "reasoning_effort"),
])
def test_bad_requests(body, kind, param):
    with pytest.raises(UpstreamError) as info:
        make().chat_request(body, MODEL, "k", False)
    assert info.value.kind is kind
    assert info.value.param == param


def test_empty_assistant_turn_stays_valid():
    body = chat({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": None},
                              {"role": "user", "content": "b"}]})
    assert body["messages"][1] == {"role": "assistant", "content": ""}


# -- responses ----------------------------------------------------------------------------------
def test_plain_response():
    out = response(fixture("chat_text.json"), model="command")
    assert out["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert out["model"] == "command" and out["object"] == "chat.completion"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["choices"][0]["message"]["content"].startswith("LLMs stand for Large Language Models")
    assert out["usage"] == {"prompt_tokens": 5, "completion_tokens": 24, "total_tokens": 29}


def test_usage_falls_back_to_token_counts():
    data = fixture("chat_text.json")
    data["usage"] = {"tokens": {"input_tokens": 71, "output_tokens": 24}}
    assert response(data)["usage"] == {"prompt_tokens": 71, "completion_tokens": 24, "total_tokens": 95}


def test_thinking_response():
    message = response(fixture("chat_thinking.json"))["choices"][0]["message"]
    assert message["content"] == "17 \u00d7 23 = 391."
    assert message["reasoning_content"] == "17*20 is 340 and 17*3 is 51, so 391."


@pytest.mark.parametrize(("reason", "finish"), [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls"),
])
def test_each_finish_reason(reason, finish):
    assert response(fixture("chat_text.json") | {"finish_reason": reason})["choices"][0]["finish_reason"] == finish
    events = (f'event: message-start\ndata: {{"type":"message-start","id":"x"}}\n\n'
              f'event: message-end\ndata: {{"type":"message-end","delta":{{"finish_reason":"{reason}"}}}}\n\n')
    assert assemble(run_stream(events.encode()))["finish"] == finish


def test_max_tokens_fixture():
    assert response(fixture("chat_max_tokens.json"))["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(("reason", "kind"), [("ERROR", ErrorKind.SERVER), ("TIMEOUT", ErrorKind.TIMEOUT)])
def test_error_finish_reasons_are_failures(reason, kind):
    with pytest.raises(UpstreamError) as info:
        make().chat_response(orjson.dumps(fixture("chat_text.json") | {"finish_reason": reason}), MODEL)
    assert info.value.kind is kind
    delta = {"finish_reason": reason, "error": "internal failure"}
    events = f"event: message-end\ndata: {json.dumps({'type': 'message-end', 'delta': delta})}\n\n"
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(MODEL).feed(events.encode())
    assert info.value.kind is kind and "internal failure" in info.value.message


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[]", b'{"id": "x"}'])
def test_garbage_responses(body):
    with pytest.raises(UpstreamError) as info:
        make().chat_response(body, MODEL)
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


# -- streaming ----------------------------------------------------------------------------------
def test_text_stream_one_byte_at_a_time():
    chunks = run_stream((FIXTURES / "stream_text.sse").read_bytes())
    result = assemble(chunks)
    assert result["roles"] == ["assistant"]
    assert result["content"] == "Hello! ¿Qué tal? 👋"
    assert result["finish"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 9,
                                                                   "total_tokens": 12}
    assert {c["id"] for c in chunks} == {"29f14a5a-11de-4cae-9800-25e4747408ea"}


def test_tool_call_stream():
    chunks = run_stream((FIXTURES / "stream_tool_calls.sse").read_bytes())
    result = assemble(chunks)
    assert result["reasoning"] == "I will search for the weather in Toronto and New York."
    assert result["calls"] == {
        0: {"id": "get_weather_1byjy32y4hvq", "name": "get_weather", "arguments": '{"location":"Toronto"}'},
        1: {"id": "get_weather_q2vydsvw2z8t", "name": "get_weather", "arguments": '{"location":"New York"}'},
    }
    assert result["finish"] == "tool_calls"
    assert result["usage"]["prompt_tokens"] == 37


def test_thinking_stream_and_cached_tokens():
    result = assemble(run_stream((FIXTURES / "stream_thinking.sse").read_bytes()))
    assert result["reasoning"] == "17*20=340, 17*3=51."
    assert result["content"] == "391"
    assert result["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}  # 384 raw of 500, none certainly billed


@pytest.mark.parametrize("cut", [0, 1, 3, 5])
def test_truncated_stream_is_stream_cut(cut):
    text = (FIXTURES / "stream_text.sse").read_text()
    blocks = text.split("\n\n")[:cut]
    stream = make().chat_stream(MODEL)
    stream.feed("\n\n".join(blocks).encode())
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind is ErrorKind.STREAM_CUT


def test_stream_cut_inside_message_end():
    data = (FIXTURES / "stream_text.sse").read_bytes()
    end = data.index(b"event: message-end")
    stream = make().chat_stream(MODEL)
    stream.feed(data[:end + 40])
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind in (ErrorKind.STREAM_CUT, ErrorKind.INVALID_RESPONSE)


def test_stream_garbage_and_orphan_tool_delta():
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(MODEL).feed(b"data: {nope\n\n")
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    orphan = (b'data: {"type":"tool-call-delta","index":4,'
              b'"delta":{"message":{"tool_calls":{"function":{"arguments":"{}"}}}}}\n\n')
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(MODEL).feed(orphan)
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "message", "kind"), [
    (400, "invalid request: message must be at least 1 token long or tool results must be specified.",
     ErrorKind.BAD_REQUEST),
    (400, "too many tokens: size limit exceeded by 1123 tokens. Try using shorter or fewer inputs, or setting "
     "prompt_truncation='AUTO'.", ErrorKind.CONTEXT_WINDOW),
    (422, "invalid request: 'p' must be between 0.01 and 0.99.", ErrorKind.BAD_REQUEST),
    (401, "invalid api token", ErrorKind.AUTH),
    (402, "Please add a payment method", ErrorKind.AUTH),
    (403, "forbidden", ErrorKind.AUTH),
    (404, "model 'command-z' not found, make sure the correct model ID was used", ErrorKind.NOT_FOUND),
    (429, "You are using a Trial key, which is limited to 10 API calls / minute.", ErrorKind.RATE_LIMIT),
    (498, "invalid token", ErrorKind.AUTH),
    (499, "request cancelled by the user", ErrorKind.CONNECT),
    (500, "internal server error, this has been reported to our developers", ErrorKind.SERVER),
    (501, "model does not support this feature", ErrorKind.UNSUPPORTED),
    (503, "service unavailable", ErrorKind.OVERLOADED),
    (504, "gateway timeout", ErrorKind.TIMEOUT),
])
def test_error_mapping(status, message, kind):
    err = make().error(status, {"Retry-After": "2"}, orjson.dumps({"id": "9f2d", "message": message}))
    assert err.kind is kind
    assert err.upstream_status == status
    assert err.message == f"cohere: {message}"
    assert err.retry_after == 2.0


def test_error_non_json_body():
    err = make().error(502, {}, b"<html>Bad Gateway</html>")
    assert err.kind is ErrorKind.SERVER and "non-JSON" in err.message


# -- embeddings ---------------------------------------------------------------------------------
def test_embeddings():
    provider = make()
    req = provider.embeddings_request({"model": "alias", "input": ["hello", "goodbye"], "encoding_format": "float",
                                       "dimensions": 512}, "embed-v4.0", "co-key")
    assert req.url == "https://api.cohere.com/v2/embed"
    body = orjson.loads(req.body)
    assert body == {"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_document",
                    "embedding_types": ["float"], "output_dimension": 512}
    if RawV2Client is not None:
        assert not cohere_embed_problems(body)
    single = orjson.loads(provider.embeddings_request({"input": "q", "input_type": "search_query"},
                                                      "embed-english-v3.0", "k").body)
    assert single["texts"] == ["q"] and single["input_type"] == "search_query"

    out = provider.embeddings_response((FIXTURES / "embed.json").read_bytes(), "embed-v4.0")
    CreateEmbeddingResponse.model_validate(out)
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][0]["embedding"][0] == 0.016296387
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_embeddings_errors():
    with pytest.raises(UpstreamError) as info:
        make().embeddings_request({"input": [[1, 2]]}, "embed-v4.0", "k")
    assert info.value.kind is ErrorKind.UNSUPPORTED and info.value.param == "input"
    with pytest.raises(UpstreamError) as info:
        make().embeddings_response(b'{"embeddings": {"int8": [[1]]}}', "embed-v4.0")
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
