"""providers/mock.py, tested purely: chat_request -> serve_local -> the OpenAI translator -> SDK types."""

from __future__ import annotations

import base64
import json
import math
import struct

import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from providers import PROVIDER_TYPES, ErrorKind, HttpRequest, ProviderSettings, create_provider
from providers.capabilities import unsupported
from providers.mock import MockProvider
from providers.tokens import count_messages, count_text

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit", "days"],
                   "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
                                  "days": {"type": "integer", "minimum": 3, "maximum": 10},
                                  "verbose": {"type": "boolean"}}}}}
ORDER = {"type": "function", "function": {
    "name": "lookup_order",
    "parameters": {"type": "object", "required": ["id", "filters"],
                   "properties": {"id": {"type": "string", "format": "uuid"},
                                  "filters": {"type": "object", "required": ["open", "limit", "tags"],
                                              "properties": {"open": {"type": "boolean"},
                                                             "limit": {"type": "number"},
                                                             "tags": {"type": "array",
                                                                      "items": {"type": "string"}}}}}}}}


def make(**options) -> MockProvider:
    provider = create_provider(ProviderSettings(name="demo", type="mock", options=options))
    assert isinstance(provider, MockProvider)
    return provider


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def chat(provider: MockProvider, body: dict, model: str = "echo") -> ChatCompletion:
    """Non-stream round trip, validated by the official SDK's types."""
    reply = provider.serve_local(provider.chat_request(body, model, "sk-unused", stream=False))
    assert reply.status == 200, reply.parts
    assert reply.headers["content-type"] == "application/json"
    assert len(reply.parts) == 1
    return ChatCompletion.model_validate(provider.chat_response(reply.parts[0], model))


def stream(provider: MockProvider, body: dict, model: str = "echo", request: HttpRequest | None = None,
           ) -> tuple[list[ChatCompletionChunk], list[bytes]]:
    """Stream round trip: every part is one SSE event, every chunk validates."""
    request = request or provider.chat_request(body, model, None, stream=True)
    reply = provider.serve_local(request)
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.parts[-1] == b"data: [DONE]\n\n"
    translator = provider.chat_stream(model)
    raw = []
    for part in reply.parts:
        assert part.startswith(b"data: ") and part.endswith(b"\n\n") and part.count(b"\n\n") == 1
        raw.extend(translator.feed(part))
    raw.extend(translator.close())
    return [ChatCompletionChunk.model_validate(c) for c in raw], reply.parts


def accumulate(chunks: list[ChatCompletionChunk]) -> ChatCompletion:
    """What an OpenAI SDK client assembles from the stream."""
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    return state.get_final_completion()


def joined(chunks: list[ChatCompletionChunk], index: int = 0) -> str:
    """The streamed text of one choice (the SDK's accumulator refuses `length` streams)."""
    return "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index)


def test_registered_and_declared():
    assert PROVIDER_TYPES["mock"] is MockProvider
    provider = make()
    assert provider.local and provider.type == "mock" and provider.capabilities.embeddings
    request = provider.chat_request({"messages": user("hi")}, "echo", None, stream=False)
    assert (request.method, request.url) == ("POST", "local://mock/chat/completions")
    assert orjson.loads(request.body)["model"] == "echo"
    assert provider.embeddings_request({"input": "x"}, "e", None).url == "local://mock/embeddings"


def test_logprobs_are_declared_lacking_because_they_are_never_produced():
    provider = make()
    body = {"messages": user("hi"), "logprobs": True, "top_logprobs": 2}
    assert chat(provider, body).choices[0].logprobs is None
    chunks, _ = stream(provider, body)
    assert all(c.logprobs is None for chunk in chunks for c in chunk.choices)
    assert unsupported(provider.capabilities, body, "chat") == ["logprobs", "top_logprobs"]
    # everything else an OpenAI request may ask for is declared (and accepted)
    assert unsupported(provider.capabilities, {"messages": user("hi"), "seed": 1, "n": 2, "logit_bias": {"1": 1},
                                               "frequency_penalty": 1, "verbosity": "low"}, "chat") == []


def test_drop_params_is_not_a_mock_option_error():
    assert make(drop_params=True, latency_ms=5).drop_params is True
    with pytest.raises(ValueError, match="unknown mock option"):
        make(drop_parms=True)


def test_echo_and_usage():
    messages = [{"role": "system", "content": "Be brief."}, *user("Hello there, how are you?")]
    completion = chat(make(), {"messages": messages})
    assert completion.id.startswith("chatcmpl-mock-") and completion.object == "chat.completion"
    assert completion.model == "echo" and isinstance(completion.created, int)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "Hello there, how are you?"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage.prompt_tokens == count_messages(messages, "echo")
    assert usage.completion_tokens == count_text("Hello there, how are you?", "echo")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_unknown_model_echoes_array_content():
    content = [{"type": "text", "text": "first"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
               {"type": "text", "text": "second"}]
    completion = chat(make(), {"messages": [{"role": "user", "content": content}]}, model="anything-else")
    assert completion.choices[0].message.content == "first\nsecond"


def test_stream_with_usage():
    provider = make(chunk_tokens=2)
    text = "The quick brown fox jumps over the lazy dog, twice: 日本語 🎉!"
    chunks, parts = stream(provider, {"messages": user(text)})
    first = orjson.loads(parts[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    body_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert all(c.usage is None for c in body_chunks)
    assert all("usage" in orjson.loads(p[6:]) for p in parts[:-1])  # present as null, as OpenAI does
    pieces = [c.choices[0].delta.content for c in body_chunks[1:-1]]
    assert "".join(pieces) == text and "\ufffd" not in "".join(pieces)
    assert math.ceil(count_text(text, "echo") / 2) - 4 <= len(pieces) <= math.ceil(count_text(text, "echo") / 2)
    assert body_chunks[-1].choices[0].finish_reason == "stop"
    assert orjson.loads(parts[-3][6:])["choices"][0]["delta"] == {}
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens == count_text(text, "echo")
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + count_text(text, "echo")
    assert accumulate(chunks).choices[0].message.content == text


def test_stream_without_usage():
    provider = make()
    body = {"model": "echo", "messages": user("no usage please"), "stream": True}
    request = HttpRequest("POST", "local://mock/chat/completions", {}, orjson.dumps(body))
    chunks, parts = stream(provider, body, request=request)
    assert all(c.choices for c in chunks)
    assert all(b'"usage"' not in p for p in parts)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "no usage please"


@pytest.mark.parametrize("limit", [1, 7, 50, 333])
def test_lorem_exact_length(limit):
    completion = chat(make(), {"messages": user("x"), "max_tokens": limit}, model="lorem")
    content = completion.choices[0].message.content
    assert content.startswith("Lorem") and count_text(content, "lorem") == limit
    assert completion.usage.completion_tokens == limit
    assert completion.choices[0].finish_reason == "length"


def test_lorem_default_and_max_completion_tokens_win():
    default = chat(make(), {"messages": user("x")}, model="lorem")
    assert count_text(default.choices[0].message.content, "lorem") == 32
    assert default.choices[0].finish_reason == "stop"
    preferred = chat(make(), {"messages": user("x"), "max_tokens": 5, "max_completion_tokens": 12}, "lorem")
    assert preferred.usage.completion_tokens == 12
    chunks, _ = stream(make(), {"messages": user("x"), "max_completion_tokens": 64}, model="lorem")
    assert chunks[-1].usage.completion_tokens == 64
    assert count_text(joined(chunks), "lorem") == 64


def check_weather_args(arguments: str) -> None:
    args = json.loads(arguments)
    assert set(args) == {"city", "unit", "days"}  # the required keys
    assert isinstance(args["city"], str) and args["unit"] in ("c", "f")
    assert isinstance(args["days"], int) and 3 <= args["days"] <= 10


def test_tool_call():
    messages = user("What is the weather in Paris?")
    completion = chat(make(), {"messages": messages, "tools": [WEATHER, ORDER]})
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function" and call.function.name == "get_weather"
    check_weather_args(call.function.arguments)
    assert completion.usage.prompt_tokens == count_messages(messages, "echo", [WEATHER, ORDER])
    assert completion.usage.completion_tokens == (count_text("get_weather", "echo")
                                                  + count_text(call.function.arguments, "echo"))


def test_tool_choice_forced_parallel_and_none():
    forced = chat(make(), {"messages": user("order?"), "tools": [WEATHER, ORDER], "parallel_tool_calls": True,
                           "tool_choice": {"type": "function", "function": {"name": "lookup_order"}}})
    (call,) = forced.choices[0].message.tool_calls
    args = json.loads(call.function.arguments)
    assert call.function.name == "lookup_order" and set(args) == {"id", "filters"}
    assert set(args["filters"]) == {"open", "limit", "tags"} and isinstance(args["filters"]["tags"], list)

    parallel = chat(make(), {"messages": user("both"), "tools": [WEATHER, ORDER], "parallel_tool_calls": True})
    calls = parallel.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "lookup_order"]
    assert len({c.id for c in calls}) == 2

    none = chat(make(), {"messages": user("just talk"), "tools": [WEATHER], "tool_choice": "none"})
    assert none.choices[0].message.content == "just talk" and not none.choices[0].message.tool_calls

    bad = make().serve_local(make().chat_request(
        {"messages": user("x"), "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "echo", None, stream=False))
    assert bad.status == 400 and orjson.loads(bad.parts[0])["error"]["param"] == "tool_choice"


def test_tool_call_stream_fragments():
    chunks, parts = stream(make(chunk_tokens=3), {"messages": user("both"), "tools": [WEATHER, ORDER],
                                                  "parallel_tool_calls": True})
    events = [orjson.loads(p[6:]) for p in parts[:-1]]
    fragments = [tc for e in events for c in e["choices"] for tc in c["delta"].get("tool_calls", [])]
    heads = [f for f in fragments if "id" in f]
    assert [h["index"] for h in heads] == [0, 1]
    for head in heads:
        assert head["type"] == "function" and head["function"]["arguments"] == "" and head["function"]["name"]
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"}
               for f in fragments if "id" not in f)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    final = accumulate(chunks).choices[0]
    assert [c.function.name for c in final.message.tool_calls] == ["get_weather", "lookup_order"]
    check_weather_args(final.message.tool_calls[0].function.arguments)
    assert json.loads(final.message.tool_calls[1].function.arguments)["id"]


def test_tool_result_follow_up():
    first = chat(make(), {"messages": user("Weather in Paris?"), "tools": [WEATHER]})
    call = first.choices[0].message.tool_calls[0]
    messages = [*user("Weather in Paris?"), first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}]
    second = chat(make(), {"messages": messages, "tools": [WEATHER]})
    answer = second.choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    assert "18 degrees and sunny" in answer.message.content and "get_weather" in answer.message.content


def test_n_choices():
    completion = chat(make(), {"messages": user("twice"), "n": 2})
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content == "twice" for c in completion.choices)
    assert completion.usage.completion_tokens == 2 * count_text("twice", "echo")
    chunks, _ = stream(make(), {"messages": user("twice"), "n": 2})
    final = accumulate(chunks)
    assert [c.message.content for c in final.choices] == ["twice", "twice"]
    bad = make().serve_local(make().chat_request({"messages": user("x"), "n": 0}, "echo", None, False))
    assert bad.status == 400 and orjson.loads(bad.parts[0])["error"]["param"] == "n"


def test_json_schema_and_json_object():
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags", "address"],
              "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18},
                             "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
                             "address": {"$ref": "#/$defs/address"}, "nickname": {"type": "string"}},
              "$defs": {"address": {"type": "object", "required": ["zip"],
                                    "properties": {"zip": {"type": ["string", "null"], "maxLength": 5}}}}}
    body = {"messages": user("Describe a person"),
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}}
    completion = chat(make(), body)
    value = json.loads(completion.choices[0].message.content)
    assert set(value) == {"name", "age", "tags", "address"}
    assert isinstance(value["name"], str) and value["age"] >= 18 and value["tags"] == ["a", "a"]
    assert isinstance(value["address"]["zip"], str) and len(value["address"]["zip"]) <= 5

    obj = chat(make(), {"messages": user("JSON please"), "response_format": {"type": "json_object"}})
    assert json.loads(obj.choices[0].message.content) == {"answer": "JSON please"}


def test_stop_and_length():
    stopped = chat(make(), {"messages": user("Hello world. Goodbye world."), "stop": ["bye", "."]})
    assert stopped.choices[0].message.content == "Hello world"
    assert stopped.choices[0].finish_reason == "stop"
    assert chat(make(), {"messages": user("a STOP b"), "stop": "STOP"}).choices[0].message.content == "a "

    text = "one two three four five six seven"
    cut = chat(make(), {"messages": user(text), "max_tokens": 3})
    assert cut.choices[0].message.content == "one two three"
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    chunks, _ = stream(make(), {"messages": user(text), "max_completion_tokens": 2})
    assert joined(chunks) == "one two"
    assert chunks[-2].choices[0].finish_reason == "length"


@pytest.mark.parametrize(("status", "kind"), [(503, ErrorKind.OVERLOADED), (429, ErrorKind.RATE_LIMIT),
                                              (500, ErrorKind.SERVER), (400, ErrorKind.BAD_REQUEST)])
def test_fail_models(status, kind):
    provider = make()
    for stream_flag in (False, True):
        reply = provider.serve_local(provider.chat_request({"messages": user("x")}, f"fail-{status}", None,
                                                           stream_flag))
        assert reply.status == status
        body = orjson.loads(b"".join(reply.parts))
        assert set(body["error"]) == {"message", "type", "param", "code"}
        error = provider.error(reply.status, reply.headers, b"".join(reply.parts))
        assert error.kind is kind
        if status in (429, 503):
            assert reply.headers["retry-after"] == "0" and error.retry_after == 0
        else:
            assert "retry-after" not in reply.headers
    embed = provider.serve_local(provider.embeddings_request({"input": "x"}, f"fail-{status}", None))
    assert embed.status == status


def test_failure_rate_is_deterministic():
    def statuses(provider: MockProvider) -> list[int]:
        request = provider.chat_request({"messages": user("x")}, "echo", None, stream=False)
        return [provider.serve_local(request).status for _ in range(40)]

    first = statuses(make(failure_rate=0.5, seed=7))
    assert first == statuses(make(failure_rate=0.5, seed=7))
    assert set(first) == {200, 503}
    assert first != statuses(make(failure_rate=0.5, seed=8))
    assert set(statuses(make(failure_rate=1, failure_status=500))) == {500}
    assert set(statuses(make())) == {200}


def test_latency_options_and_drop():
    provider = make(latency_ms=250, chunk_latency_ms=20)
    reply = provider.serve_local(provider.chat_request({"messages": user("x")}, "echo", None, True))
    assert reply.first_byte_delay_s == 0.25 and reply.part_delay_s == 0.02
    dropped = provider.serve_local(provider.chat_request({"messages": user("x")}, "drop", None, False))
    assert dropped.drop_connection and not dropped.parts


@pytest.mark.parametrize("options", [{"latency": 5}, {"latency_ms": -1}, {"failure_rate": 1.5},
                                     {"chunk_tokens": 0}, {"seed": "x"}, {"embedding_dimensions": True}])
def test_bad_options_name_the_config_path(options):
    with pytest.raises(ValueError, match=r"^providers\.demo\.options\."):
        make(**options)


def test_bad_json_body():
    reply = make().serve_local(HttpRequest("POST", "local://mock/chat/completions", {}, b"{nope"))
    assert reply.status == 400 and orjson.loads(reply.parts[0])["error"]["type"] == "invalid_request_error"


def embed(provider: MockProvider, body: dict, model: str = "embed") -> CreateEmbeddingResponse:
    reply = provider.serve_local(provider.embeddings_request(body, model, None))
    assert reply.status == 200, reply.parts
    return CreateEmbeddingResponse.model_validate(provider.embeddings_response(reply.parts[0], model))


def test_embeddings_float():
    result = embed(make(), {"input": ["hello", "world", "hello"]})
    assert result.object == "list" and result.model == "embed"
    assert [d.index for d in result.data] == [0, 1, 2] and all(d.object == "embedding" for d in result.data)
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 16 for v in vectors)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    assert result.usage.prompt_tokens == result.usage.total_tokens == 3
    assert embed(make(), {"input": "hello"}).data[0].embedding == vectors[0]  # same across calls


def test_embeddings_tokens_dimensions_and_base64():
    provider = make(embedding_dimensions=8)
    text = embed(provider, {"input": "hello world"})
    assert len(text.data[0].embedding) == 8
    ids = make().serve_local(make().embeddings_request({"input": "hello world"}, "embed", None))
    token_ids = [15339, 1917]  # "hello world" in cl100k
    assert orjson.loads(ids.parts[0])["usage"]["prompt_tokens"] == 2
    assert embed(provider, {"input": token_ids}).data[0].embedding == text.data[0].embedding
    both = embed(provider, {"input": [token_ids, [1, 2, 3]], "dimensions": 32})
    assert [len(d.embedding) for d in both.data] == [32, 32] and both.usage.prompt_tokens == 5

    floats = embed(provider, {"input": "hello world", "dimensions": 12}).data[0].embedding
    body = {"input": "hello world", "dimensions": 12, "encoding_format": "base64"}
    reply = provider.serve_local(provider.embeddings_request(body, "embed", None))
    encoded = provider.embeddings_response(reply.parts[0], "embed")
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert len(raw) == 12 * 4 and list(struct.unpack("<12f", raw)) == floats
    encoded["data"][0]["embedding"] = floats  # what the SDK does with base64 before validating
    CreateEmbeddingResponse.model_validate(encoded)


@pytest.mark.parametrize("body", [{"input": ""}, {"input": []}, {"input": [1, "a"]}, {"input": None},
                                  {"input": "x", "dimensions": 0}, {"input": "x", "encoding_format": "hex"}])
def test_embeddings_bad_input(body):
    provider = make()
    reply = provider.serve_local(provider.embeddings_request(body, "embed", None))
    assert reply.status == 400
    error = provider.error(reply.status, reply.headers, reply.parts[0])
    assert error.kind is ErrorKind.BAD_REQUEST and error.param in ("input", "dimensions", "encoding_format")


def test_odd_tool_schemas_still_give_object_arguments():
    merged = {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                        {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]}
    tools = [{"type": "function", "function": {"name": "no_params"}},
             {"type": "function", "function": {"name": "junk", "parameters": "nope"}},
             {"type": "function", "function": {"name": "merged", "parameters": merged}}]
    expected = {"no_params": {}, "junk": {}, "merged": {"a": "example a", "b": 1}}
    for name, args in expected.items():
        body = {"messages": user("x"), "tools": tools,
                "tool_choice": {"type": "function", "function": {"name": name}}}
        (call,) = chat(make(), body).choices[0].message.tool_calls
        assert json.loads(call.function.arguments) == args
    assert "properties" not in merged  # the request's schema is not modified
