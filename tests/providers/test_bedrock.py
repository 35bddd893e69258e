"""Bedrock Converse / ConverseStream / InvokeModel translation.

Every request body is checked against botocore's own service model for `bedrock-runtime` (plus the
enum/pattern/length rules `ParamValidator` leaves out), every translated response against the
openai SDK's types, and the golden fixtures (shapes from the AWS Converse docs) against the
service model's output shapes, so a fixture cannot drift from what Bedrock really sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import orjson
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from support.openai_chunks import assemble, feed
from support.vendor_schemas import BEDROCK_RUNTIME, converse_request_problems, shape_problems

from providers.base import ProviderSettings
from providers.bedrock import BedrockProvider
from providers.bedrock_request import JSON_TOOL
from providers.capabilities import unsupported, unsupported_error
from providers.errors import ErrorKind, UpstreamError
from providers.eventstream import encode_frame, event_frame, exception_frame

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
METADATA = {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def make(**kwargs) -> BedrockProvider:
    return BedrockProvider(ProviderSettings(name="bedrock", type="bedrock", **kwargs))


# -- schema validation (skipped without botocore, an optional extra) -----------------------------
def assert_valid_converse(body: dict, *, stream: bool = False, model_id: str = CLAUDE) -> None:
    if BEDROCK_RUNTIME is None:
        return
    problems = converse_request_problems(body, model_id, stream=stream)
    assert not problems, "\n".join(problems)


def request_body(req) -> dict:
    return orjson.loads(req.body)


def chat(provider: BedrockProvider, body: dict, model: str = CLAUDE, *, stream: bool = False,
         key: str | None = "br-key") -> dict:
    req = provider.chat_request(body, model, key, stream)
    out = request_body(req)
    assert_valid_converse(out, stream=stream, model_id=provider.model_id(model))
    return out


def response(provider: BedrockProvider, data: dict, model: str = CLAUDE) -> dict:
    out = provider.chat_response(orjson.dumps(data), model)
    ChatCompletion.model_validate(out)
    return out


def frames(events: list) -> bytes:
    return b"".join(event_frame(name, orjson.dumps(payload)) for name, payload in events)


def run_stream(data: bytes, provider: BedrockProvider | None = None) -> list[dict]:
    # one byte at a time: every frame is split everywhere
    return feed((provider or make()).chat_stream(CLAUDE), data, step=1)


# -- the validators themselves ------------------------------------------------------------------
@pytest.mark.skipif(BEDROCK_RUNTIME is None, reason="botocore not installed")
@pytest.mark.parametrize("bad", [
    {"messages": [{"role": "tool", "content": [{"text": "x"}]}]},
    {"messages": [{"role": "user", "content": [{"txt": "x"}]}]},
    {"messages": [{"role": "user", "content": [
        {"text": "x", "image": {"format": "png", "source": {"bytes": "AA=="}}}]}]},
    {"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": "AA=="}}}]}]},
    {"messages": [{"role": "user", "content": [{"text": "x"}]}],
     "toolConfig": {"tools": [{"toolSpec": {"name": "", "description": "", "inputSchema": {"json": {}}}}]}},
    {"messages": [{"role": "user", "content": [{"text": "x"}]}],
     "toolConfig": {"tools": [{"toolSpec": {"name": "has space", "inputSchema": {"json": {}}}}]}},
    {"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"max_tokens": 5}},
])
def test_converse_validator_catches_malformed_bodies(bad):
    shape = BEDROCK_RUNTIME.operation_model("Converse").input_shape
    assert shape_problems({"modelId": CLAUDE, **bad}, shape)


@pytest.mark.skipif(BEDROCK_RUNTIME is None, reason="botocore not installed")
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("converse_*.json")))
def test_golden_converse_responses_match_the_service_model(name):
    shape = BEDROCK_RUNTIME.operation_model("Converse").output_shape
    assert not shape_problems(fixture(name), shape)


@pytest.mark.skipif(BEDROCK_RUNTIME is None, reason="botocore not installed")
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("stream_*.json")))
def test_golden_stream_events_match_the_service_model(name):
    union = BEDROCK_RUNTIME.shape_for("ConverseStreamOutput")
    for event, payload in fixture(name):
        payload = {k: v for k, v in payload.items() if k != "p"}  # opaque padding Bedrock adds
        assert not shape_problems(payload, union.members[event]), (event, payload)


def test_botocore_is_installed_for_schema_checks():
    pytest.importorskip("botocore", reason="install botocore to validate Converse bodies against the schema")


# -- requests -----------------------------------------------------------------------------------
def test_plain_chat_request_with_bearer_key():
    provider = make()
    req = provider.chat_request({"model": "x", "messages": [{"role": "user", "content": "Hello"}],
                                 "max_tokens": 256, "temperature": 0.2, "top_p": 0.9, "user": "u-1",
                                 "stream_options": {"include_usage": True}}, CLAUDE, "br-key", False)
    assert req.method == "POST"
    assert req.url == ("https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                       "anthropic.claude-3-5-sonnet-20240620-v1:0/converse")
    assert req.headers["authorization"] == "Bearer br-key"
    assert req.headers["content-type"] == "application/json"
    body = request_body(req)
    assert_valid_converse(body)
    assert body == {"messages": [{"role": "user", "content": [{"text": "Hello"}]}],
                    "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9}}


def test_stream_url_region_base_url_and_deployments():
    provider = make(region="eu-central-1")
    req = provider.chat_request({"messages": [{"role": "user", "content": "hi"}]}, CLAUDE, "k", True)
    assert req.url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/model/")
    assert req.url.endswith("/converse-stream")
    assert req.headers["accept"] == "application/vnd.amazon.eventstream"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
    local = make(base_url="http://127.0.0.1:9999/", deployments={"sonnet": arn})
    req = local.chat_request({"messages": [{"role": "user", "content": "hi"}]}, "sonnet", "k", False)
    assert req.url == ("http://127.0.0.1:9999/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile"
                       "%2Fus.anthropic.claude-sonnet-4-20250514-v1:0/converse")


@pytest.mark.parametrize("model_id", [CLAUDE, "arn:aws:bedrock:us-east-1:1:inference-profile/x.y-v1:0",
                                      "odd id+with@chars!"])
def test_model_id_path_is_stable_under_transport_requoting(model_id):
    """aiohttp sends `yarl.URL(url)`; SigV4 signs our string: both must be the same path."""
    yarl = pytest.importorskip("yarl")
    url = make().chat_request({"messages": [{"role": "user", "content": "hi"}]}, model_id, "k", False).url
    assert yarl.URL(url).raw_path == urlsplit(url).path
    assert yarl.URL(url).path == f"/model/{model_id}/converse"


def test_system_developer_and_multi_turn_alternation():
    body = chat(make(), {"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": "4"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "And 3+3?"},
    ]})
    assert body["system"] == [{"text": "You are terse."}, {"text": "Answer in French."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Hi"}, {"text": "What is 2+2?"}]},
        {"role": "assistant", "content": [{"text": "4"}]},
        {"role": "user", "content": [{"text": "And 3+3?"}]},
    ]


def test_images_and_documents_from_data_urls():
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    body = chat(make(), {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe these."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG_1PX}"}},
        {"type": "file", "file": {"filename": "Q3 report (final).pdf",
                                  "file_data": f"data:application/pdf;base64,{pdf}"}},
    ]}]})
    content = body["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": PNG_1PX}}}
    assert content[2]["image"]["format"] == "jpeg"
    assert content[3] == {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": pdf}}}


@pytest.mark.parametrize(("part", "param"), [
    ({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, "messages"),
    ({"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PNG_1PX}"}}, "messages[0].content[0]"),
    ({"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}, "messages[0].content[0]"),
    ({"type": "file", "file": {"file_id": "file-abc"}}, "messages[0].content[0]"),
])
def test_unsupported_content_parts(part, param):
    with pytest.raises(UpstreamError) as info:
        make().chat_request({"messages": [{"role": "user", "content": [part]}]}, CLAUDE, "k", False)
    assert info.value.kind is ErrorKind.UNSUPPORTED
    assert info.value.param == param


def test_invalid_base64_image_is_bad_request():
    with pytest.raises(UpstreamError) as info:
        make().chat_request({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not-base64@@"}}]}]}, CLAUDE, "k", False)
    assert info.value.kind is ErrorKind.BAD_REQUEST


def test_two_step_tool_loop():
    provider = make()
    first = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER_TOOL],
             "tool_choice": "auto"}
    body = chat(provider, first)
    assert body["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "description": "Current weather for a city.",
        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}]}

    out = response(provider, fixture("converse_tool_use.json"))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll look up the most popular song on WZPZ for you."
    assert choice["message"]["tool_calls"] == [{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                                                "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'}}]

    second = {"tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]}
    body = chat(provider, second)
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "call_1", "content": [{"text": '{"temp_c": 21}'}]}}]}


def test_parallel_tool_calls_and_results_merge_into_one_user_turn():
    provider = make()
    out = response(provider, fixture("converse_parallel_tools.json"))
    message = out["choices"][0]["message"]
    assert message["content"] is None
    assert [c["id"] for c in message["tool_calls"]] == ["tooluse_Paris01aBcDeFgHiJkLmNo",
                                                       "tooluse_Tokyo02pQrStUvWxYz0123"]
    assert json.loads(message["tool_calls"][1]["function"]["arguments"]) == {"city": "Tokyo", "unit": "celsius"}

    body = chat(provider, {"tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Paris and Tokyo?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": "tooluse_Paris01aBcDeFgHiJkLmNo", "content": "18C"},
        {"role": "tool", "tool_call_id": "tooluse_Tokyo02pQrStUvWxYz0123",
         "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "Which is warmer?"},
    ]})
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][0] == {"text": "Checking both."}
    last = body["messages"][2]["content"]
    assert [b.get("toolResult", {}).get("toolUseId") for b in last[:2]] == [
        "tooluse_Paris01aBcDeFgHiJkLmNo", "tooluse_Tokyo02pQrStUvWxYz0123"]
    assert last[2] == {"text": "Which is warmer?"}


def test_foreign_tool_ids_are_sanitised_consistently_and_history_gets_a_tool_config():
    body = chat(make(), {"messages": [  # no `tools` in this request, as some clients do on the last turn
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "tool_calls": [
            {"id": "functions.clock:0 #1", "type": "function", "function": {"name": "clock", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "functions.clock:0 #1", "content": "12:00"},
    ]})
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] == "functions.clock:0__1"
    assert use["input"] == {}
    assert body["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "clock", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", None),
    (None, None),
    ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "get_weather"}}]}}, {"any": {}}),
])
def test_tool_choice(choice, expected):
    body = chat(make(), {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL],
                         "tool_choice": choice})
    assert body["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_drops_tools_but_keeps_a_config_for_tool_history():
    plain = chat(make(), {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL],
                          "tool_choice": "none"})
    assert "toolConfig" not in plain
    history = chat(make(), {"tools": [WEATHER_TOOL], "tool_choice": "none", "messages": [
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]})
    assert [t["toolSpec"]["name"] for t in history["toolConfig"]["tools"]] == ["get_weather"]
    assert "toolChoice" not in history["toolConfig"]


def test_tool_choice_without_tools_is_ignored():
    body = chat(make(), {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto",
                         "parallel_tool_calls": False})
    assert "toolConfig" not in body


def test_tool_specs_are_always_valid():
    body = chat(make(), {"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "no_params"}},
        {"type": "function", "function": {"name": "empty_desc", "description": "", "parameters": {}}},
        {"type": "function", "function": {"name": "untyped", "parameters": {"properties": {"a": {"type": "string"}}}},
         "cache_control": {"type": "ephemeral"}},
    ]})
    tools = body["toolConfig"]["tools"]
    assert tools[0] == {"toolSpec": {"name": "no_params",
                                     "inputSchema": {"json": {"type": "object", "properties": {}}}}}
    assert "description" not in tools[1]["toolSpec"]
    assert tools[2]["toolSpec"]["inputSchema"]["json"] == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert tools[3] == {"cachePoint": {"type": "default"}}


@pytest.mark.parametrize(("tool", "param"), [
    ({"type": "function", "function": {"name": ""}}, "tools[0].function.name"),
    ({"type": "function", "function": {"name": "has space"}}, "tools[0].function.name"),
    ({"type": "function", "function": {}}, "tools[0].function.name"),
])
def test_invalid_tool_names_are_caller_errors(tool, param):
    with pytest.raises(UpstreamError) as info:
        make().chat_request({"messages": [{"role": "user", "content": "hi"}], "tools": [tool]}, CLAUDE, "k", False)
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert info.value.param == param


def test_custom_tools_unsupported():
    with pytest.raises(UpstreamError) as info:
        make().chat_request({"messages": [{"role": "user", "content": "hi"}],
                             "tools": [{"type": "custom", "custom": {"name": "x"}}]}, CLAUDE, "k", False)
    assert info.value.kind is ErrorKind.UNSUPPORTED and info.value.param == "tools[0].type"


def test_json_schema_becomes_a_forced_tool_and_comes_back_as_content():
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
              "required": ["name", "born"], "additionalProperties": False}
    provider = make()
    body = chat(provider, {"messages": [{"role": "user", "content": "Who wrote the first program?"}],
                           "response_format": {"type": "json_schema",
                                               "json_schema": {"name": "person", "schema": schema, "strict": True}}})
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_TOOL}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}

    out = response(provider, fixture("converse_json_tool.json"))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert json.loads(choice["message"]["content"]) == {"name": "Ada Lovelace", "born": 1815}
    assert "tool_calls" not in choice["message"]

    chunks = run_stream(frames(fixture("stream_json_tool.json")))
    result = assemble(chunks)
    assert json.loads(result["content"]) == {"name": "Ada Lovelace", "born": 1815}
    assert result["finish"] == "stop" and not result["calls"]


def test_json_schema_with_user_tools_and_json_object():
    body = chat(make(), {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL],
                         "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                             "type": "object", "properties": {}}}}})
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["get_weather", JSON_TOOL]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    body = chat(make(), {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}})
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object", "properties": {}}}


def test_stop_top_k_and_max_completion_tokens():
    body = chat(make(), {"messages": [{"role": "user", "content": "count"}], "stop": "END",
                         "max_completion_tokens": 99, "max_tokens": 5, "top_k": 40})
    assert body["inferenceConfig"] == {"maxTokens": 99, "stopSequences": ["END"]}
    assert body["additionalModelRequestFields"] == {"top_k": 40}
    body = chat(make(), {"messages": [{"role": "user", "content": "count"}], "stop": ["a", "b"], "top_k": 5},
                model="amazon.nova-pro-v1:0")
    assert body["inferenceConfig"]["stopSequences"] == ["a", "b"]
    assert body["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 5}}


def test_output_limit_is_the_max_tokens_sent():
    user = {"role": "user", "content": "x"}
    for body, model in (({"reasoning_effort": "medium"}, CLAUDE), ({"reasoning_effort": "high", "max_tokens": 3000},
                                                                    CLAUDE), ({"max_tokens": 77}, CLAUDE)):
        sent = chat(make(), {"messages": [user], **body}, model=model)["inferenceConfig"]["maxTokens"]
        assert make().output_limit({"messages": [user], **body}, model) == sent
    assert make().output_limit({"messages": [user]}, CLAUDE) is None  # no bound sent: the router's maximum applies
    assert make().output_limit({"messages": [user], "reasoning_effort": "low"}, "amazon.nova-2-lite-v1:0") is None


def test_reasoning_effort_maps_to_claude_thinking():
    body = chat(make(), {"messages": [{"role": "user", "content": "17*23?"}], "reasoning_effort": "medium"},
                model="us.anthropic.claude-sonnet-4-20250514-v1:0")
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 4096}}
    assert body["inferenceConfig"]["maxTokens"] > 4096
    small = chat(make(), {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high",
                          "max_tokens": 3000}, model=CLAUDE)
    assert small["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2999
    # thinking rules out a forced tool: the JSON tool is offered, not forced
    forced = chat(make(), {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low",
                           "response_format": {"type": "json_object"}})
    assert "toolChoice" not in forced["toolConfig"]
    assert "additionalModelRequestFields" not in chat(make(), {"messages": [{"role": "user", "content": "x"}],
                                                              "reasoning_effort": "none"})
    nova = chat(make(), {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"},
                model="amazon.nova-2-lite-v1:0")
    assert nova["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}
    with pytest.raises(UpstreamError) as info:
        make().chat_request({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"},
                            "meta.llama3-70b-instruct-v1:0", "k", False)
    assert info.value.kind is ErrorKind.UNSUPPORTED and info.value.param == "reasoning_effort"


def test_cache_control_becomes_cache_points():
    body = chat(make(), {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long policy...",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Contract text", "cache_control": {"type": "ephemeral",
                                                                                               "ttl": "1h"}},
                                     {"type": "text", "text": "Question?"}]},
        {"role": "assistant", "content": "Answer.", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "More?"},
    ]})
    assert body["system"] == [{"text": "Long policy..."}, {"cachePoint": {"type": "default"}}]
    assert body["messages"][0]["content"] == [{"text": "Contract text"},
                                              {"cachePoint": {"type": "default", "ttl": "1h"}},
                                              {"text": "Question?"}]
    assert body["messages"][1]["content"] == [{"text": "Answer."}, {"cachePoint": {"type": "default"}}]


@pytest.mark.parametrize(("param", "value"), [
    ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}), ("presence_penalty", 0.5),
    ("frequency_penalty", 1.0), ("seed", 7), ("audio", {"voice": "alloy"}), ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content", "content": "x"}), ("web_search_options", {}), ("functions", [{"name": "f"}]),
    ("function_call", "auto"),
])
def test_unsupported_parameters_name_the_field(param, value):
    body = {"messages": [{"role": "user", "content": "hi"}], param: value}
    assert unsupported(BedrockProvider.capabilities, body, "chat") == [param]
    err = unsupported_error("bedrock", param)
    assert (err.kind, err.param, err.code, err.client_status) == (
        ErrorKind.UNSUPPORTED, param, "unsupported_parameter", 400)
    assert err.is_caller_error


def test_n_and_verbosity_are_not_refused():
    # n > 1: the router makes one call per choice; verbosity has always been accepted (and ignored).
    body = {"messages": [{"role": "user", "content": "hi"}], "n": 2, "verbosity": "low"}
    assert BedrockProvider.capabilities.n is False
    assert unsupported(BedrockProvider.capabilities, body, "chat") == []
    assert chat(make(), body) == chat(make(), {"messages": body["messages"]})


def test_harmless_defaults_are_accepted():
    body = {"messages": [{"role": "user", "content": "hi"}], "n": 1, "logprobs": False, "presence_penalty": 0,
            "frequency_penalty": 0, "logit_bias": {}, "modalities": ["text"], "response_format": {"type": "text"}}
    assert unsupported(BedrockProvider.capabilities, body, "chat") == []
    chat(make(), body)


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
])
def test_malformed_requests_are_bad_requests(body, param):
    with pytest.raises(UpstreamError) as info:
        make().chat_request(body, CLAUDE, "k", False)
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert info.value.param == param


# -- responses ----------------------------------------------------------------------------------
def test_plain_response():
    out = response(make(), fixture("converse_text.json"), model="claude")
    assert out["object"] == "chat.completion" and out["model"] == "claude"
    assert out["id"].startswith("chatcmpl-")
    assert out["choices"][0]["message"] == {"role": "assistant", "content": (
        "Hello! I'm doing well, thank you for asking. How can I help you today?")}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 21, "total_tokens": 33,
                            "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0}}


def test_usage_with_cache_read_and_write():
    out = response(make(), fixture("converse_cache.json"))
    assert out["usage"] == {"prompt_tokens": 24 + 2100 + 1200, "completion_tokens": 11,
                            "total_tokens": 24 + 2100 + 1200 + 11,
                            "prompt_tokens_details": {"cached_tokens": 2100, "cache_creation_tokens": 1200}}


def test_reasoning_content():
    message = response(make(), fixture("converse_reasoning.json"))["choices"][0]["message"]
    assert message["content"] == "17 \u00d7 23 = 391."
    assert message["reasoning_content"].startswith("The user wants 17*23.")


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
])
def test_each_finish_reason(stop_reason, finish):
    data = fixture("converse_text.json") | {"stopReason": stop_reason}
    assert response(make(), data)["choices"][0]["finish_reason"] == finish
    events = [["messageStart", {"role": "assistant"}],
              ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}],
              ["messageStop", {"stopReason": stop_reason}],
              ["metadata", METADATA]]
    assert assemble(run_stream(frames(events)))["finish"] == finish


def test_guardrail_fixture():
    out = response(make(), fixture("converse_guardrail.json"))
    assert out["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("stop_reason", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_output_is_a_failure_not_a_stop(stop_reason):
    with pytest.raises(UpstreamError) as info:
        make().chat_response(orjson.dumps(fixture("converse_text.json") | {"stopReason": stop_reason}), CLAUDE)
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    assert info.value.code == stop_reason


@pytest.mark.parametrize("body", [b"<html>502</html>", b"[]", b'{"output": {}}', b'{"foo": 1}'])
def test_garbage_responses_are_invalid(body):
    with pytest.raises(UpstreamError) as info:
        make().chat_response(body, CLAUDE)
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "error_type", "message", "kind"), [
    (429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
     "Too many requests, please wait before trying again.", ErrorKind.RATE_LIMIT),
    (400, "ValidationException", "Input is too long for requested model.", ErrorKind.CONTEXT_WINDOW),
    (400, "ValidationException", "The model returned the following errors: prompt is too long: 215000 tokens > "
     "200000 maximum", ErrorKind.CONTEXT_WINDOW),
    (400, "ValidationException", "The maximum tokens you requested exceeds the model limit of 8192. Try again with "
     "a maximum tokens value that is lower than 8192.", ErrorKind.BAD_REQUEST),
    (400, "ValidationException", "messages.1.content: Conversation blocks and tool result blocks cannot be provided "
     "in the same turn.", ErrorKind.BAD_REQUEST),
    (403, "AccessDeniedException", "You don't have access to the model with the specified model ID.", ErrorKind.AUTH),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid.", ErrorKind.AUTH),
    (404, "ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier.",
     ErrorKind.NOT_FOUND),
    (429, "ModelNotReadyException", "Model is not ready for inference.", ErrorKind.OVERLOADED),
    (503, "ServiceUnavailableException", "Bedrock is unable to process your request.", ErrorKind.OVERLOADED),
    (500, "InternalServerException", "The server encountered an error processing your request.", ErrorKind.SERVER),
    (408, "ModelTimeoutException", "Model has timed out in processing the request.", ErrorKind.TIMEOUT),
    (424, "ModelErrorException", "The model returned an error.", ErrorKind.SERVER),
])
def test_error_mapping(status, error_type, message, kind):
    err = make().error(status, {"x-amzn-errortype": error_type, "retry-after": "3"},
                       orjson.dumps({"message": message}))
    assert err.kind is kind
    assert err.upstream_status == status
    assert message in err.message and err.message.startswith("bedrock: ")
    assert err.code == error_type.split(":")[0]
    assert err.retry_after == 3.0


def test_error_header_case_body_type_and_garbage():
    err = make().error(403, {"X-Amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/coral/"},
                       b'{"Message":"User: arn:aws:iam::123:user/x is not authorized to perform: bedrock:InvokeModel"}')
    assert err.kind is ErrorKind.AUTH and "not authorized" in err.message
    err = make().error(400, {}, b'{"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"}')
    assert err.kind is ErrorKind.BAD_REQUEST and err.code == "ValidationException"
    err = make().error(502, {}, b"<html>Bad Gateway</html>")
    assert err.kind is ErrorKind.SERVER and "non-JSON" in err.message
    assert make().error(503, {}, b"").kind is ErrorKind.OVERLOADED


# -- streaming ----------------------------------------------------------------------------------
def test_text_stream_one_byte_at_a_time():
    chunks = run_stream(frames(fixture("stream_text.json")))
    result = assemble(chunks)
    assert result["roles"] == ["assistant"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert result["content"] == "Hello! How can I help you today? ¿Qué tal? 👋"
    assert result["finish"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 29
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == CLAUDE for c in chunks)


def test_tool_stream_has_stable_indices_and_usage():
    chunks = run_stream(frames(fixture("stream_tool_use.json")))
    result = assemble(chunks)
    assert result["content"] == "Let me check both cities."
    assert result["calls"] == {
        0: {"id": "tooluse_Paris01aBcDeFgHiJkLmNo", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "tooluse_Tokyo02pQrStUvWxYz0123", "name": "get_weather", "arguments": '{"city": "Tokyo"}'},
    }
    assert result["finish"] == "tool_calls"
    assert result["usage"] == {"prompt_tokens": 1520, "completion_tokens": 98, "total_tokens": 1618,
                               "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 100}}
    first = next(c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert first["choices"][0]["delta"]["tool_calls"][0] == {
        "index": 0, "id": "tooluse_Paris01aBcDeFgHiJkLmNo", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}


def test_reasoning_stream():
    result = assemble(run_stream(frames(fixture("stream_reasoning.json"))))
    assert result["reasoning"] == "17*20=340, 17*3=51."
    assert result["content"] == "391"


@pytest.mark.parametrize("keep", [0, 1, 5, 6])
def test_truncated_streams_are_stream_cut(keep):
    events = fixture("stream_text.json")[:keep]  # never reaches messageStop or metadata
    stream = make().chat_stream(CLAUDE)
    stream.feed(frames(events))
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind is ErrorKind.STREAM_CUT


def test_stream_cut_mid_frame():
    data = frames(fixture("stream_text.json"))
    stream = make().chat_stream(CLAUDE)
    stream.feed(data[:-5])
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind is ErrorKind.STREAM_CUT


def test_crc_mismatch_in_stream_is_invalid_response():
    data = bytearray(frames(fixture("stream_text.json")))
    data[40] ^= 0x55
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(CLAUDE).feed(bytes(data))
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


@pytest.mark.parametrize(("exception", "kind"), [
    ("throttlingException", ErrorKind.RATE_LIMIT),
    ("modelStreamErrorException", ErrorKind.SERVER),
    ("internalServerException", ErrorKind.SERVER),
    ("serviceUnavailableException", ErrorKind.OVERLOADED),
    ("validationException", ErrorKind.BAD_REQUEST),
])
def test_exception_frames_mid_stream(exception, kind):
    events = fixture("stream_text.json")[:3]
    data = frames(events) + exception_frame(exception, b'{"message":"Something happened upstream."}')
    stream = make().chat_stream(CLAUDE)
    with pytest.raises(UpstreamError) as info:
        for i in range(len(data)):
            stream.feed(data[i:i + 1])
    assert info.value.kind is kind
    assert "Something happened upstream." in info.value.message
    assert info.value.code == exception


def test_generic_error_frame():
    frame = encode_frame({":message-type": "error", ":error-code": "InternalFailure",
                          ":error-message": "internal failure"}, b"")
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(CLAUDE).feed(frame)
    assert info.value.kind is ErrorKind.SERVER and "internal failure" in info.value.message


def test_stream_odd_but_legal_shapes():
    # no messageStart (role chunk synthesised), unknown event types ignored, malformed tool output fails
    events = [["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}],
              ["someFutureEvent", {"x": 1}],
              ["messageStop", {"stopReason": "end_turn"}],
              ["metadata", METADATA]]
    result = assemble(run_stream(frames(events)))
    assert result["roles"] == ["assistant"] and result["content"] == "hi"
    bad = [["messageStart", {"role": "assistant"}],
           ["contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}]]
    stream = make().chat_stream(CLAUDE)
    assert assemble(stream.feed(frames(bad)))["roles"] == ["assistant"]  # the chunk before the error, then it
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(CLAUDE).feed(frames([["messageStop", {"stopReason": "malformed_tool_use"}]]))
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
    with pytest.raises(UpstreamError) as info:
        make().chat_stream(CLAUDE).feed(event_frame("contentBlockDelta", b"{not json"))
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


def test_missing_metadata_is_stream_cut():
    events = fixture("stream_text.json")[:-1]
    stream = make().chat_stream(CLAUDE)
    chunks = stream.feed(frames(events))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    with pytest.raises(UpstreamError) as info:
        stream.close()
    assert info.value.kind is ErrorKind.STREAM_CUT and "metadata" in info.value.message


# -- auth ---------------------------------------------------------------------------------------
def _independent_sigv4(method: str, url: str, headers: dict[str, str], body: bytes, signed: list[str],
                       secret: str, amz_date: str, scope: str) -> str:
    """SigV4 written out from the AWS spec, to check botocore's signature without trusting it."""
    parts = urlsplit(url)
    lower = {k.lower(): v for k, v in headers.items()}
    lower.setdefault("host", parts.netloc)
    canonical_headers = "".join(f"{name}:{' '.join(lower[name].split())}\n" for name in signed)
    canonical = "\n".join([method, quote(parts.path, safe="/~"), parts.query, canonical_headers, ";".join(signed),
                           hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_sigv4_signing():
    pytest.importorskip("botocore")
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    provider = make(region="eu-west-3", headers={"x-custom": "1"},
                    options={"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": secret,
                             "aws_session_token": "FQoGZXIvYXdzEXAMPLETOKEN"})
    req = provider.chat_request({"messages": [{"role": "user", "content": "hi"}]}, CLAUDE, None, False)
    assert req.url == ("https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
                       "anthropic.claude-3-5-sonnet-20240620-v1:0/converse")
    headers = {k.lower(): v for k, v in req.headers.items()}
    match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(\d{8})/eu-west-3/bedrock/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", headers["authorization"])
    assert match, headers["authorization"]
    date, signed, signature = match.groups()
    assert headers["x-amz-date"].startswith(date) and re.fullmatch(r"\d{8}T\d{6}Z", headers["x-amz-date"])
    assert headers["x-amz-security-token"] == "FQoGZXIvYXdzEXAMPLETOKEN"
    signed_list = signed.split(";")
    assert {"host", "content-type", "x-amz-date", "x-amz-security-token", "x-custom"} <= set(signed_list)
    assert "host" not in headers  # the transport sets Host from the URL, as signed
    assert secret not in str(req.headers)
    expected = _independent_sigv4("POST", req.url, req.headers, req.body, signed_list, secret,
                                  headers["x-amz-date"], f"{date}/eu-west-3/bedrock/aws4_request")
    assert signature == expected


def test_api_key_wins_over_sigv4_and_no_credentials_sends_no_auth():
    pytest.importorskip("botocore")
    provider = make(options={"aws_access_key_id": "AKID", "aws_secret_access_key": "secret"})
    req = provider.chat_request({"messages": [{"role": "user", "content": "hi"}]}, CLAUDE, "br-key", False)
    assert req.headers["authorization"] == "Bearer br-key" and "X-Amz-Date" not in req.headers
    req = make().chat_request({"messages": [{"role": "user", "content": "hi"}]}, CLAUDE, None, False)
    assert "authorization" not in {k.lower() for k in req.headers}


def test_missing_botocore_is_a_clear_error_at_construction(monkeypatch):
    for name in ("botocore", "botocore.auth", "botocore.awsrequest", "botocore.credentials"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import botocore...` raise ImportError
    with pytest.raises(ValueError, match=r"needs botocore.*switchboard\[bedrock\]"):
        make(options={"aws_access_key_id": "AKID", "aws_secret_access_key": "secret"})
    make()  # the API-key path never needs it


def test_half_configured_credentials_fail_at_construction():
    with pytest.raises(ValueError, match="aws_secret_access_key"):
        make(options={"aws_access_key_id": "AKID"})


# -- embeddings ---------------------------------------------------------------------------------
def test_titan_embeddings():
    provider = make()
    for value in ("hello world", ["hello world"]):
        req = provider.embeddings_request({"model": "m", "input": value, "dimensions": 256,
                                           "encoding_format": "float"}, "amazon.titan-embed-text-v2:0", "k")
        assert req.url.endswith("/model/amazon.titan-embed-text-v2:0/invoke")
        assert request_body(req) == {"inputText": "hello world", "dimensions": 256}
    out = provider.embeddings_response((FIXTURES / "titan_embed.json").read_bytes(), "amazon.titan-embed-text-v2:0")
    CreateEmbeddingResponse.model_validate(out)
    assert out["data"][0]["embedding"][0] == 0.0234375
    assert out["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


def test_titan_rejects_batches_with_a_clear_message():
    with pytest.raises(UpstreamError) as info:
        make().embeddings_request({"input": ["a", "b"]}, "amazon.titan-embed-text-v2:0", "k")
    assert info.value.kind is ErrorKind.UNSUPPORTED and info.value.param == "input"
    assert "one input per request" in info.value.message


def test_cohere_embeddings_on_bedrock():
    provider = make()
    req = provider.embeddings_request({"input": ["hello world", "goodbye world"], "input_type": "search_query"},
                                      "cohere.embed-english-v3", "k")
    assert request_body(req) == {"texts": ["hello world", "goodbye world"], "input_type": "search_query",
                                 "embedding_types": ["float"]}
    assert request_body(provider.embeddings_request({"input": "x"}, "cohere.embed-v4:0", "k"))["input_type"] == \
        "search_document"
    for name, count in (("cohere_embed.json", 2), ("cohere_embed_floats.json", 1)):
        out = provider.embeddings_response((FIXTURES / name).read_bytes(), "cohere.embed-english-v3")
        CreateEmbeddingResponse.model_validate(out)
        assert [d["index"] for d in out["data"]] == list(range(count))


@pytest.mark.parametrize(("body", "model"), [
    ({"input": [[1, 2, 3]]}, "cohere.embed-english-v3"),
    ({"input": []}, "amazon.titan-embed-text-v2:0"),
    ({"input": "x"}, "anthropic.claude-3-haiku-20240307-v1:0"),
])
def test_embeddings_unsupported_inputs(body, model):
    with pytest.raises(UpstreamError) as info:
        make().embeddings_request(body, model, "k")
    assert info.value.kind is ErrorKind.UNSUPPORTED


def test_embeddings_garbage_response():
    with pytest.raises(UpstreamError) as info:
        make().embeddings_response(b'{"nope": 1}', "amazon.titan-embed-text-v2:0")
    assert info.value.kind is ErrorKind.INVALID_RESPONSE
