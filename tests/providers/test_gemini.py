"""GeminiProvider: requests, responses, tool loops with thought signatures, errors, Vertex, embeddings.

Every request body built here is validated with google-genai's own pydantic types (which forbid
unknown fields) and must round-trip through them unchanged; every translated response is validated
with the openai SDK's types. Fixtures in fixtures/gemini/ are real Gemini response shapes.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.genai import types
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from support.vendor_schemas import genai_roundtrip_problem, generate_content_problems

from providers.base import ProviderSettings
from providers.capabilities import unsupported, unsupported_error
from providers.errors import ErrorKind, UpstreamError
from providers.gemini import GeminiProvider
from providers.gemini_request import decode_tool_call_id, encode_tool_call_id

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
KEY = "AIzaSyTESTKEY-0123456789abcdefghijklmnop"
SIG_1 = "aWgBkEvVB/kHNrzD3blVTezxhUgpb962sZ01I7c/lV3hYpQEjGjlh/v//g=="
SIG_3 = "fg9iOt56FW0zJSEYxexUlcjfVtvEBx7TiqsDdItgvIrZyZ+TzIgXCPv//g=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def make(**settings: Any) -> GeminiProvider:
    return GeminiProvider(ProviderSettings(name="gem", type="gemini", **settings))


# -- validation helpers ----------------------------------------------------------------------------
def gemini_body(req) -> dict:
    """Decode a built request and check every piece against google-genai's wire types."""
    body = orjson.loads(req.body)
    problems = generate_content_problems(body)
    assert not problems, "\n".join(problems)
    return body


def chat(provider: GeminiProvider, body: bytes, model: str = "gemini-2.5-flash") -> dict:
    out = provider.chat_response(body, model)
    ChatCompletion.model_validate(out)
    return out


def request(messages: list, model: str = "gemini-2.5-flash", provider: GeminiProvider | None = None,
            **params: Any) -> dict:
    provider = provider or make()
    return gemini_body(provider.chat_request({"model": model, "messages": messages, **params}, model, KEY,
                                             False))


def test_validation_helper_catches_malformed_bodies():
    assert "not a valid Content" in genai_roundtrip_problem(types.Content, {"role": "user", "parts": [{"txt": "hi"}]},
                                                            "x")
    assert "not a valid GenerationConfig" in genai_roundtrip_problem(types.GenerationConfig, {"max_tokens": 5}, "x")
    # accepted by the model, but not what we sent
    assert "does not round-trip" in genai_roundtrip_problem(types.GenerationConfig,
                                                            {"maxOutputTokens": 5, "temperature": None}, "x")


GENERATE_FIXTURES = [p.name for p in sorted(FIXTURES.glob("*.json")) if not p.name.startswith(("error_", "embed"))]


def test_fixture_list_is_complete():
    assert len(GENERATE_FIXTURES) == 11


@pytest.mark.parametrize("name", GENERATE_FIXTURES)
def test_fixtures_are_gemini_responses(name: str):
    types.GenerateContentResponse.model_validate_json(fixture(name))


# -- URL, headers, basic body ----------------------------------------------------------------------
def test_ai_studio_request_url_headers_and_body():
    provider = make(headers={"x-team": "search"})
    req = provider.chat_request({"model": "g", "messages": [{"role": "user", "content": "Hi"}]},
                                "gemini-2.5-flash", KEY, False)
    assert req.method == "POST"
    assert req.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == KEY
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-team"] == "search"
    assert KEY not in req.url and "authorization" not in req.headers
    assert gemini_body(req) == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}

    stream = provider.chat_request({"messages": [{"role": "user", "content": "Hi"}]}, "models/gemini-2.0-flash",
                                   KEY, True)
    assert stream.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash"
                          ":streamGenerateContent?alt=sse")
    assert make(base_url="http://127.0.0.1:9999/", api_version="v1").chat_request(
        {"messages": [{"role": "user", "content": "x"}]}, "m", None, False).url == (
        "http://127.0.0.1:9999/v1/models/m:generateContent")


def test_system_developer_and_multi_turn_merging():
    body = request([
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": "Quatre.", "reasoning_content": "simple sum"},
        {"role": "assistant", "content": [{"type": "text", "text": "Vraiment."}]},
        {"role": "user", "content": "Merci"},
    ])
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}, {"text": "What is 2+2?"}]},
        {"role": "model", "parts": [{"text": "Quatre."}, {"text": "Vraiment."}]},
        {"role": "user", "parts": [{"text": "Merci"}]},
    ]


def test_only_a_system_prompt_becomes_the_user_turn():
    body = request([{"role": "system", "content": "Say hi"}])
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hi"}]}]
    assert "systemInstruction" not in body


def test_images_audio_and_files():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n....").decode()
    body = request([{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photos/cat.webp?size=large"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/scans/page"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                                  "filename": "notes.txt"}},
    ]}])
    assert body["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/photos/cat.webp?size=large"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/scans/page"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                      "mimeType": "text/plain"}},
    ]


def test_bad_content_parts():
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}])
    assert err.value.kind is ErrorKind.BAD_REQUEST and err.value.param == "messages[0].content[0]"
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}])
    assert err.value.kind is ErrorKind.UNSUPPORTED
    with pytest.raises(UpstreamError) as err:
        request([{"role": "wizard", "content": "x"}])
    assert err.value.param == "messages[0].role"


def test_generation_config():
    body = request([{"role": "user", "content": "Hi"}], temperature=0.3, top_p=0.9, top_k=20,
                   max_tokens=50, max_completion_tokens=100, stop="END", n=2, seed=7,
                   presence_penalty=0.5, frequency_penalty=-0.5, user="u1", metadata={"a": "b"},
                   parallel_tool_calls=True, logprobs=False, stream_options={"include_usage": True})
    assert body["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "topK": 20, "seed": 7, "presencePenalty": 0.5,
        "frequencyPenalty": -0.5, "maxOutputTokens": 100, "stopSequences": ["END"], "candidateCount": 2}
    assert request([{"role": "user", "content": "Hi"}], stop=["a", "b"], max_tokens=10)["generationConfig"] == {
        "maxOutputTokens": 10, "stopSequences": ["a", "b"]}
    assert "generationConfig" not in request([{"role": "user", "content": "Hi"}], n=1)


def test_logprobs_and_legacy_functions_are_unsupported():
    caps = GeminiProvider.capabilities
    hi = [{"role": "user", "content": "Hi"}]
    assert unsupported(caps, {"messages": hi, "logprobs": True, "top_logprobs": 3}, "chat") == \
        ["logprobs", "top_logprobs"]
    assert unsupported(caps, {"messages": hi, "functions": [{"name": "f"}], "function_call": "auto"}, "chat") == \
        ["functions", "function_call"]
    err = unsupported_error("gem", "logprobs")
    assert err.kind is ErrorKind.UNSUPPORTED and err.param == "logprobs" and err.is_caller_error
    assert caps.logprobs is False and caps.n is True


def test_parameters_gemini_maps_or_accepts_are_not_refused():
    body = {"messages": [{"role": "user", "content": "Hi"}], "n": 2, "seed": 7, "presence_penalty": 0.5,
            "frequency_penalty": 0.5, "logit_bias": {"1": 2}, "verbosity": "low", "modalities": ["text", "audio"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "tools": [WEATHER_TOOL], "tool_choice": "required",
            "logprobs": False, "functions": [], "function_call": None}
    assert unsupported(GeminiProvider.capabilities, body, "chat") == []


def test_response_format_json_object_and_json_schema():
    body = request([{"role": "user", "content": "JSON please"}], response_format={"type": "json_object"})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
              "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}}}
    body = request([{"role": "user", "content": "Who?"}],
                   response_format={"type": "json_schema", "json_schema": {"name": "p", "strict": True,
                                                                           "schema": schema}})
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER", "nullable": True}},
        "required": ["name", "age"], "propertyOrdering": ["name", "age"]}}
    passthrough = make(options={"json_schema_passthrough": True})
    body = request([{"role": "user", "content": "Who?"}], provider=passthrough,
                   response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    assert body["generationConfig"]["responseJsonSchema"] == schema
    assert "generationConfig" not in request([{"role": "user", "content": "x"}], response_format={"type": "text"})
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": "x"}], response_format={"type": "yaml"})
    assert err.value.param == "response_format"


def test_tools_and_declarations():
    body = request([{"role": "user", "content": "Weather?"}],
                   tools=[WEATHER_TOOL, {"type": "function", "function": {"name": "ping"}},
                          {"type": "function", "function": {"name": "noop", "parameters": {
                              "type": "object", "properties": {}}}}])
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Current weather", "parameters": {
            "type": "OBJECT", "properties": {"city": {"type": "STRING"},
                                             "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}},
        {"name": "ping"},
        {"name": "noop"},
    ]}]
    assert "toolConfig" not in body
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": "x"}], tools=[{"type": "custom", "custom": {"name": "c"}}])
    assert err.value.kind is ErrorKind.UNSUPPORTED and err.value.param == "tools[0].type"


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "get_weather"}}]}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice: Any, config: dict):
    body = request([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert len(body["tools"][0]["functionDeclarations"]) == 2


def test_tool_choice_allowed_tools_auto_narrows_and_unknown_is_rejected():
    body = request([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": "get_time"}}]}})
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == ["get_time"]
    for bad in ({"type": "function", "function": {"name": "nope"}}, "sometimes"):
        with pytest.raises(UpstreamError) as err:
            request([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL], tool_choice=bad)
        assert err.value.param == "tool_choice"


@pytest.mark.parametrize(("model", "effort", "config"), [
    ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-2.5-pro", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
    ("gemini-3-pro-preview", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
    ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
    ("gemini-3.1-pro", "high", {"thinkingLevel": "HIGH", "includeThoughts": True}),
])
def test_reasoning_effort(model: str, effort: str, config: dict):
    body = request([{"role": "user", "content": "Think"}], model=model, reasoning_effort=effort)
    assert body["generationConfig"]["thinkingConfig"] == config


def test_anthropic_style_thinking_and_bad_effort():
    body = request([{"role": "user", "content": "x"}], thinking={"type": "enabled", "budget_tokens": 2048})
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 2048}
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": "x"}], reasoning_effort="extreme")
    assert err.value.param == "reasoning_effort"


def test_safety_settings_and_cached_content_pass_through():
    safety = [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}]
    body = request([{"role": "user", "content": "x"}], safety_settings=safety,
                   cached_content="cachedContents/abc123")
    assert body["safetySettings"] == safety and body["cachedContent"] == "cachedContents/abc123"
    body = request([{"role": "user", "content": "x"}], provider=make(options={"safety_settings": safety}))
    assert body["safetySettings"] == safety


# -- tool-call ids and thought signatures ----------------------------------------------------------
def test_tool_call_id_codec():
    encoded = encode_tool_call_id("call_abc_0", SIG_1)
    assert encoded.startswith("call_abc_0__thought__")
    assert set(encoded) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert decode_tool_call_id(encoded) == ("call_abc_0", SIG_1)
    assert decode_tool_call_id("call_abc_0") == ("call_abc_0", None)
    assert encode_tool_call_id("call_x", None) == "call_x"
    # the unmodified base64 form (as other gateways write it) decodes to the same signature
    assert decode_tool_call_id(f"call_x__thought__{SIG_1}") == ("call_x", SIG_1)


def _sdk_round_trip(message: dict, rebuild: bool) -> dict:
    """What an OpenAI SDK client sends back: the message it received (optionally rebuilt by hand)."""
    parsed = ChatCompletion.model_validate({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                            "choices": [{"index": 0, "finish_reason": "tool_calls",
                                                         "message": message}]}).choices[0].message
    if not rebuild:
        return parsed.model_dump(mode="json", exclude_none=True)
    return {"role": "assistant", "content": parsed.content, "tool_calls": [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in parsed.tool_calls or []]}


@pytest.mark.parametrize("rebuild", [False, True])
def test_two_step_tool_loop_replays_thought_signature(rebuild: bool):
    provider = make()
    model = "gemini-3-pro-preview"
    history = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"}]
    first = request(history, model=model, provider=provider, tools=[WEATHER_TOOL])
    assert first["contents"] == [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]

    reply = chat(provider, fixture("tool_call_response.json"), model)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'}
    base, signature = decode_tool_call_id(call["id"])
    assert signature == SIG_1 and base.startswith("call_") and base.endswith("_0")

    history += [_sdk_round_trip(choice["message"], rebuild),
                {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 12, "sky": "cloudy"}'}]
    second = request(history, model=model, provider=provider, tools=[WEATHER_TOOL])
    assert second["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                      "args": {"city": "Paris", "unit": "celsius"}},
                                     "thoughtSignature": SIG_1}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"temp_c": 12, "sky": "cloudy"}}}]},
    ]
    final = chat(provider, fixture("tool_result_answer_response.json"), model)
    assert final["choices"][0]["message"]["content"] == "It is 12°C and cloudy in Paris."
    assert final["choices"][0]["finish_reason"] == "stop"


def test_same_response_gives_same_ids_and_different_responses_do_not_collide():
    provider = make()
    a = chat(provider, fixture("tool_call_response.json"))["choices"][0]["message"]["tool_calls"][0]["id"]
    b = chat(provider, fixture("tool_call_response.json"))["choices"][0]["message"]["tool_calls"][0]["id"]
    other = orjson.loads(fixture("tool_call_response.json"))
    other["responseId"] = "another"
    c = chat(provider, orjson.dumps(other))["choices"][0]["message"]["tool_calls"][0]["id"]
    assert a == b != c
    assert len(decode_tool_call_id(a)[0]) <= 40


def test_parallel_tool_calls_keep_order_indices_and_signature():
    provider = make()
    reply = chat(provider, fixture("parallel_tool_calls_response.json"), "gemini-3-flash-preview")
    message = reply["choices"][0]["message"]
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_weather", "get_time"]
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"}, {"city": "London"}, {"timezone": "Europe/London"}]
    assert [decode_tool_call_id(c["id"])[0].rsplit("_", 1)[1] for c in calls] == ["0", "1", "2"]
    assert [decode_tool_call_id(c["id"])[1] for c in calls] == [SIG_3, None, None]
    assert len({c["id"] for c in calls}) == 3
    assert reply["choices"][0]["finish_reason"] == "tool_calls"

    history = [{"role": "user", "content": "Paris and London?"}, _sdk_round_trip(message, rebuild=False)]
    history += [{"role": "tool", "tool_call_id": c["id"], "content": content}
                for c, content in zip(calls, ["sunny", '{"temp": 9}', '"12:00"'], strict=True)]
    body = request(history, provider=provider, model="gemini-3-flash-preview", tools=[WEATHER_TOOL, TIME_TOOL])
    assert body["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG_3},
        {"functionCall": {"name": "get_weather", "args": {"city": "London"}}},
        {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/London"}}},
    ]}
    assert body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
        {"functionResponse": {"name": "get_weather", "response": {"temp": 9}}},
        {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
    ]}


def test_foreign_tool_calls_get_the_documented_bypass_signature():
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_Xy12", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            {"id": "call_Zz34", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_Xy12", "content": "warm"},
        {"role": "tool", "tool_call_id": "call_Zz34", "content": [{"type": "text", "text": "cold"}]},
        {"role": "user", "content": "And tomorrow?"},
    ]
    body = request(history, model="gemini-3-pro-preview")
    assert body["contents"][1]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}},
         "thoughtSignature": "skip_thought_signature_validator"},
        {"functionCall": {"name": "get_weather", "args": {}}},
    ]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "warm"}}},
        {"functionResponse": {"name": "get_weather", "response": {"output": "cold"}}},
        {"text": "And tomorrow?"},
    ]
    off = request(history, provider=make(options={"thought_signature_fallback": ""}))
    assert all("thoughtSignature" not in p for p in off["contents"][1]["parts"])


def test_extra_content_signature_is_read():
    history = [{"role": "user", "content": "x"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "fc_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"},
                    "extra_content": {"google": {"thought_signature": SIG_3}}}]},
               {"role": "tool", "tool_call_id": "fc_1", "content": "noon"}]
    body = request(history)
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == SIG_3


def test_tool_message_errors():
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}])
    assert err.value.kind is ErrorKind.BAD_REQUEST and err.value.param == "messages[1].tool_call_id"
    body = request([{"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "nope", "name": "get_time", "content": "r"}])
    assert body["contents"][0]["parts"][1] == {"functionResponse": {"name": "get_time",
                                                                    "response": {"output": "r"}}}
    with pytest.raises(UpstreamError) as err:
        request([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}])
    assert err.value.param == "messages[1].tool_calls[0].function.arguments"


# -- responses -------------------------------------------------------------------------------------
def test_text_response_with_reasoning_and_usage():
    out = chat(make(), fixture("text_response.json"))
    assert out["id"] == "chatcmpl-ZOBpaJ3dBNixz7IPxK2G-QQ"
    assert out["object"] == "chat.completion" and out["model"] == "gemini-2.5-flash"
    message = out["choices"][0]["message"]
    assert message == {"role": "assistant",
                       "content": "The capital of France is Paris. It has been the capital since 987.",
                       "reasoning_content": "**Recalling the capital**\n\nThe user asks for the capital of France."}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 1200, "completion_tokens": 54, "total_tokens": 1254,
                            "prompt_tokens_details": {"cached_tokens": 1024},
                            "completion_tokens_details": {"reasoning_tokens": 40}}


def test_usage_counts_tool_use_prompt_tokens():
    data = orjson.loads(fixture("max_tokens_response.json"))
    data["usageMetadata"]["toolUsePromptTokenCount"] = 30
    usage = chat(make(), orjson.dumps(data))["usage"]
    assert usage["prompt_tokens"] == 36 and usage["total_tokens"] == 44


def _with_finish(reason: str, parts: list | None = None) -> bytes:
    data = orjson.loads(fixture("max_tokens_response.json"))
    data["candidates"][0]["finishReason"] = reason
    if parts is not None:
        data["candidates"][0]["content"]["parts"] = parts
    return orjson.dumps(data)


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"), ("LANGUAGE", "stop"), ("OTHER", "stop"),
    ("FINISH_REASON_UNSPECIFIED", "stop"),
])
def test_finish_reasons(reason: str, expected: str):
    assert chat(make(), _with_finish(reason))["choices"][0]["finish_reason"] == expected


def test_stop_with_function_call_is_tool_calls_and_max_tokens_stays_length():
    call = [{"functionCall": {"name": "get_time", "args": {}}}]
    assert chat(make(), _with_finish("STOP", call))["choices"][0]["finish_reason"] == "tool_calls"
    assert chat(make(), _with_finish("MAX_TOKENS", call))["choices"][0]["finish_reason"] == "length"


def test_safety_and_length_fixtures():
    out = chat(make(), fixture("safety_response.json"))
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] == ""
    out = chat(make(), fixture("max_tokens_response.json"))
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["content"] == "Once upon a time, in a land far"


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_failed_function_calls_are_errors_not_stop(reason: str):
    body = fixture("malformed_function_call_response.json") if reason == "MALFORMED_FUNCTION_CALL" else (
        _with_finish(reason, []))
    with pytest.raises(UpstreamError) as err:
        make().chat_response(body, "gemini-2.5-flash")
    assert err.value.kind is ErrorKind.INVALID_RESPONSE
    assert err.value.code == reason.lower()
    assert not err.value.is_caller_error  # retried / fallen back on like any bad upstream answer
    if reason == "MALFORMED_FUNCTION_CALL":
        assert "print(default_api.get_weather" in err.value.message


def test_blocked_prompt_is_content_policy():
    with pytest.raises(UpstreamError) as err:
        make().chat_response(fixture("prompt_blocked_response.json"), "gemini-2.5-flash")
    assert err.value.kind is ErrorKind.CONTENT_POLICY
    assert err.value.code == "content_filter" and "PROHIBITED_CONTENT" in err.value.message
    assert err.value.client_status == 400


def test_n_candidates_become_choices():
    out = chat(make(), fixture("two_candidates_response.json"))
    assert [(c["index"], c["message"]["content"]) for c in out["choices"]] == [(0, "Red."), (1, "Blue.")]


def test_invalid_bodies():
    for body in (b"<html>502</html>", b"[]", b'{"candidates": []}', b'{"usageMetadata": {}}'):
        with pytest.raises(UpstreamError) as err:
            make().chat_response(body, "m")
        assert err.value.kind is ErrorKind.INVALID_RESPONSE
    with pytest.raises(UpstreamError) as err:
        make().chat_response(b'{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}', "m")
    assert err.value.kind is ErrorKind.OVERLOADED


# -- errors ----------------------------------------------------------------------------------------
def _google_error(code: int, status: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status}})


@pytest.mark.parametrize(("code", "status", "message", "kind"), [
    (400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"foo\"", ErrorKind.BAD_REQUEST),
    (400, "INVALID_ARGUMENT", "Function call is missing a thought_signature in functionCall parts.",
     ErrorKind.BAD_REQUEST),
    (400, "INVALID_ARGUMENT", "Request payload size exceeds the limit: 20971520 bytes.", ErrorKind.TOO_LARGE),
    (400, "FAILED_PRECONDITION", "Precondition check failed.", ErrorKind.BAD_REQUEST),
    (400, "FAILED_PRECONDITION", "User location is not supported for the API use.", ErrorKind.AUTH),
    (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", ErrorKind.AUTH),
    (401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", ErrorKind.AUTH),
    (404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta", ErrorKind.NOT_FOUND),
    (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", ErrorKind.RATE_LIMIT),
    (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", ErrorKind.OVERLOADED),
    (500, "INTERNAL", "An internal error has occurred.", ErrorKind.SERVER),
    (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", ErrorKind.TIMEOUT),
])
def test_error_mapping(code: int, status: str, message: str, kind: ErrorKind):
    err = make().error(code, {}, _google_error(code, status, message))
    assert err.kind is kind
    assert err.upstream_status == code and err.code == status
    assert err.message == f"gem: {message}"


def test_error_fixtures():
    provider = make()
    err = provider.error(429, {}, fixture("error_resource_exhausted.json"))
    assert err.kind is ErrorKind.RATE_LIMIT and err.retry_after == 37.0
    err = provider.error(429, {"retry-after": "5"}, fixture("error_resource_exhausted.json"))
    assert err.retry_after == 5.0  # the header wins
    err = provider.error(400, {}, fixture("error_api_key_invalid.json"))
    assert err.kind is ErrorKind.AUTH and not err.is_caller_error
    err = provider.error(400, {}, fixture("error_context_window.json"))
    assert err.kind is ErrorKind.CONTEXT_WINDOW
    err = provider.error(404, {}, fixture("error_vertex_list.json"))
    assert err.kind is ErrorKind.NOT_FOUND and "gemini-9-ultra" in err.message


def test_errors_without_google_body_and_secret_redaction():
    err = make().error(502, {}, b"<html><body>Bad Gateway</body></html>")
    assert err.kind is ErrorKind.SERVER and "Bad Gateway" in err.message
    err = make().error(503, {"retry-after": "2"}, b"")
    assert err.kind is ErrorKind.OVERLOADED and err.retry_after == 2.0
    leaky = _google_error(400, "INVALID_ARGUMENT",
                          f"bad request to https://x.googleapis.com/v1beta/models/m?key={KEY}&alt=sse "
                          "token ya29.a0AfB_byC-secret-token")
    err = make().error(400, {}, leaky)
    assert KEY not in err.message and "ya29.a0AfB" not in err.message and "[redacted]" in err.message
    assert KEY not in str(err.to_openai())


# -- Vertex AI -------------------------------------------------------------------------------------
def test_vertex_urls_and_bearer_auth():
    provider = make(project="my-proj", region="us-central1")
    req = provider.chat_request({"messages": [{"role": "user", "content": "Hi"}]}, "gemini-2.5-pro", "ya29.tok",
                                False)
    assert req.url == ("https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1"
                       "/publishers/google/models/gemini-2.5-pro:generateContent")
    assert req.headers["authorization"] == "Bearer ya29.tok"
    assert "x-goog-api-key" not in req.headers
    assert gemini_body(req)["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]

    stream = make(project="p", region="global").chat_request(
        {"messages": [{"role": "user", "content": "Hi"}]}, "gemini-3-pro-preview", "t", True)
    assert stream.url == ("https://aiplatform.googleapis.com/v1/projects/p/locations/global"
                          "/publishers/google/models/gemini-3-pro-preview:streamGenerateContent?alt=sse")
    custom = make(project="p", region="europe-west4", base_url="http://127.0.0.1:8081/", api_version="v1beta1")
    assert custom.chat_request({"messages": [{"role": "user", "content": "x"}]}, "gemini-2.0-flash", "t",
                               False).url == ("http://127.0.0.1:8081/v1beta1/projects/p/locations/europe-west4"
                                              "/publishers/google/models/gemini-2.0-flash:generateContent")
    tuned = provider.chat_request({"messages": [{"role": "user", "content": "x"}]},
                                  "projects/my-proj/locations/us-central1/endpoints/123", "t", False)
    assert tuned.url == ("https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/"
                         "us-central1/endpoints/123:generateContent")
    # only project, or only region: AI Studio
    assert make(project="p").chat_request({"messages": [{"role": "user", "content": "x"}]}, "m", "k",
                                          False).url.startswith("https://generativelanguage.googleapis.com/")


# -- embeddings ------------------------------------------------------------------------------------
def test_embeddings_ai_studio_batch():
    provider = make()
    req = provider.embeddings_request({"model": "e", "input": ["hello", "world"], "dimensions": 4,
                                       "encoding_format": "float"}, "gemini-embedding-001", KEY)
    assert req.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001"
                       ":batchEmbedContents")
    assert req.headers["x-goog-api-key"] == KEY
    body = orjson.loads(req.body)
    assert body == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world"}]}, "outputDimensionality": 4},
    ]}
    for item in body["requests"]:
        assert genai_roundtrip_problem(types.Content, item["content"], "content") is None
    single = orjson.loads(provider.embeddings_request({"input": "one"}, "text-embedding-004", KEY).body)
    assert single == {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "one"}]}}]}

    out = provider.embeddings_response(fixture("embeddings_batch_response.json"), "gemini-embedding-001")
    CreateEmbeddingResponse.model_validate(out)
    assert out["object"] == "list" and out["model"] == "gemini-embedding-001"
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][1]["embedding"] == [-0.0321, 0.0654, -0.0987, 0.0021]
    assert out["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


def test_embeddings_vertex_predict():
    provider = make(project="p", region="us-central1")
    req = provider.embeddings_request({"input": ["a b c", "d"], "dimensions": 3}, "text-embedding-005", "tok")
    assert req.url == ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1"
                       "/publishers/google/models/text-embedding-005:predict")
    assert orjson.loads(req.body) == {"instances": [{"content": "a b c"}, {"content": "d"}],
                                      "parameters": {"outputDimensionality": 3}}
    out = provider.embeddings_response(fixture("embeddings_vertex_predict_response.json"), "text-embedding-005")
    CreateEmbeddingResponse.model_validate(out)
    assert out["usage"] == {"prompt_tokens": 10, "total_tokens": 10}
    assert len(out["data"]) == 2


def test_embeddings_bad_input_and_bad_response():
    with pytest.raises(UpstreamError) as err:
        make().embeddings_request({"input": [[1, 2, 3]]}, "e", KEY)
    assert err.value.kind is ErrorKind.UNSUPPORTED and err.value.param == "input"
    with pytest.raises(UpstreamError) as err:
        make().embeddings_request({"input": 5}, "e", KEY)
    assert err.value.kind is ErrorKind.BAD_REQUEST
    with pytest.raises(UpstreamError) as err:
        make().embeddings_response(b'{"something": 1}', "e")
    assert err.value.kind is ErrorKind.INVALID_RESPONSE
    assert GeminiProvider.capabilities.embeddings is True
