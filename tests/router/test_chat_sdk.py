"""The official openai SDK against a real router, whose upstream is the fake vendor or the built-in mock.

Each test runs twice: `fake` (an `openai`-type provider over HTTP to tests/fakes/openai_upstream.py)
and `mock` (the built-in offline provider). Responses must parse into the SDK's own types and carry
`extra_fields` as DESIGN.md describes.
"""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest
from fakes.openai_upstream import CHAT, DEFAULT_USAGE, EMBEDDINGS, SECRET, Reply, check_chat_request
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ValidationError

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0, "cache_read_per_mtok": 0.5}
# DEFAULT_USAGE priced with PRICES: 8 uncached + 4 cached prompt tokens, 5 completion tokens.
FAKE_COST = (8 * 1.0 + 4 * 0.5 + 5 * 2.0) / 1e6
MODELS = {"fake": "up/gpt-4o-mini", "mock": "demo/echo"}
FULL_KEYS = {"provider", "model", "model_requested", "request_type", "latency", "billed_usage", "attempts", "cache"}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city", "unit"], "additionalProperties": False}}}]
USER = [{"role": "user", "content": "Say hello to the router"}]


def config(fake, server: dict | None = None, up: dict | None = None) -> dict:
    return {"server": server or {},
            "providers": {"up": fake.provider("up", models=["gpt-4o-mini", "text-embedding-3-small"], **(up or {})),
                          "demo": {"type": "mock", "models": ["echo"]}},
            "models": {"smart": "up/gpt-4o-mini"},
            "pricing": {"up/gpt-4o-mini": PRICES, "up/text-embedding-3-small": PRICES}}


@pytest.fixture(params=["fake", "mock"])
def upstream(request) -> str:
    return request.param


@pytest.fixture
async def client(fake_openai, make_router, openai_client):
    return openai_client(await make_router(config(fake_openai)))


def expected_text(upstream: str) -> str:
    return "Hello from the fake." if upstream == "fake" else USER[0]["content"]


def assert_full_extra(extra: dict, *, upstream: str, requested: str, request_type: str, usage) -> None:
    assert set(extra) == FULL_KEYS, extra
    label = MODELS[upstream]
    assert extra["provider"] == label.split("/")[0]
    assert extra["model"] == label
    assert extra["model_requested"] == requested
    assert extra["request_type"] == request_type
    assert isinstance(extra["latency"], int | float) and 0 < extra["latency"] < 10_000
    assert extra["cache"] == {"status": "off"}
    [attempt] = extra["attempts"]
    assert attempt["model"] == label and attempt["status"] == 200 and attempt["error"] is None
    assert 0 < attempt["latency_ms"] <= extra["latency"]
    billed = extra["billed_usage"]
    assert billed["prompt_tokens"] == usage.prompt_tokens > 0
    assert billed["completion_tokens"] == usage.completion_tokens
    assert billed["total_tokens"] == usage.total_tokens
    if upstream == "fake":
        assert billed["cached_tokens"] == DEFAULT_USAGE["prompt_tokens_details"]["cached_tokens"]
        assert billed["cost_usd"] == pytest.approx(FAKE_COST)
    else:
        assert billed["cached_tokens"] == 0 and billed["cost_usd"] == 0.0  # the mock is free


def test_received_body_check_can_fail():
    check_chat_request({"model": "m", "messages": USER})
    check_chat_request({"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}})
    for bad in ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]},
                {"model": "m", "messages": USER, "fallbacks": ["x/y"]},
                {"model": "m", "messages": USER, "temperature": "hot"},
                {"model": "m"}):
        with pytest.raises((ValueError, ValidationError)):
            check_chat_request(bad)


async def test_chat_non_stream(upstream, client, fake_openai):
    resp = await client.chat.completions.create(model=MODELS[upstream], messages=USER, temperature=0.2)
    assert isinstance(resp, ChatCompletion)
    assert resp.choices[0].message.content == expected_text(upstream)
    assert resp.choices[0].finish_reason == "stop"
    assert_full_extra(resp.model_extra["extra_fields"], upstream=upstream, requested=MODELS[upstream],
                      request_type="chat.completion", usage=resp.usage)
    if upstream == "fake":
        [sent] = fake_openai.calls("up", CHAT)
        check_chat_request(sent.body)
        assert sent.body == {"model": "gpt-4o-mini", "messages": USER, "temperature": 0.2}
        assert sent.headers["Authorization"] == f"Bearer {SECRET}"


async def test_alias_is_reported_as_requested(client):
    resp = await client.chat.completions.create(model="smart", messages=USER)
    assert resp.model_extra["extra_fields"]["model_requested"] == "smart"
    assert resp.model_extra["extra_fields"]["model"] == "up/gpt-4o-mini"


async def test_chat_stream(upstream, client, fake_openai):
    stream = await client.chat.completions.create(model=MODELS[upstream], messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks and all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_text(upstream)
    assert chunks[0].model_extra["extra_fields"] == {"provider": MODELS[upstream].split("/")[0],
                                                     "model": MODELS[upstream]}
    assert all("extra_fields" not in c.model_extra for c in chunks[1:-1])
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    # Without include_usage the client sees no usage chunk: upstream's usage rides in extra_fields only.
    assert all(c.choices and c.usage is None for c in chunks)
    usage = openai.types.CompletionUsage(**{k: last.model_extra["extra_fields"]["billed_usage"][k]
                                            for k in ("prompt_tokens", "completion_tokens", "total_tokens")})
    assert_full_extra(last.model_extra["extra_fields"], upstream=upstream, requested=MODELS[upstream],
                      request_type="chat.completion.chunk", usage=usage)
    if upstream == "fake":
        assert usage.prompt_tokens == DEFAULT_USAGE["prompt_tokens"]  # the vendor's figures, not an estimate
        [sent] = fake_openai.calls("up", CHAT)
        check_chat_request(sent.body)
        assert sent.body["stream"] is True
        assert sent.body["stream_options"] == {"include_usage": True}  # the router always asks for usage


async def test_stream_include_usage_puts_usage_chunk_last(upstream, client):
    stream = await client.chat.completions.create(model=MODELS[upstream], messages=USER, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    assert all(c.choices for c in chunks[:-1])
    assert_full_extra(last.model_extra["extra_fields"], upstream=upstream, requested=MODELS[upstream],
                      request_type="chat.completion.chunk", usage=last.usage)
    assert "billed_usage" not in chunks[-2].model_extra.get("extra_fields", {})


async def test_stream_usage_is_estimated_when_the_vendor_sends_none(client, fake_openai):
    fake_openai.queue("up", Reply(usage=None))
    stream = await client.chat.completions.create(model="up/gpt-4o-mini", messages=USER, stream=True,
                                                  stream_options={"include_usage": True})
    last = [chunk async for chunk in stream][-1]
    assert last.choices == [] and last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    billed = last.model_extra["extra_fields"]["billed_usage"]
    assert billed["estimated"] is True
    assert (billed["prompt_tokens"], billed["completion_tokens"]) == (last.usage.prompt_tokens,
                                                                      last.usage.completion_tokens)


async def test_tool_calls_non_stream(upstream, client, fake_openai):
    args = '{"city": "Paris", "unit": "c"}'
    fake_openai.queue("up", Reply(text=None, tool_calls=[("get_weather", args)]))
    resp = await client.chat.completions.create(model=MODELS[upstream], messages=USER, tools=TOOLS,
                                                tool_choice="auto")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert set(json.loads(call.function.arguments)) == {"city", "unit"}
    if upstream == "fake":
        assert json.loads(call.function.arguments) == json.loads(args)
        sent = fake_openai.calls("up", CHAT)[0].body
        check_chat_request(sent)
        assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"


async def test_tool_call_deltas_accumulate(upstream, client, fake_openai):
    args = ['{"city": "Paris", "unit": "c"}', '{"city": "Oslo", "unit": "f"}']
    fake_openai.queue("up", Reply(text=None, tool_calls=[("get_weather", a) for a in args], arg_pieces=4))
    async with client.chat.completions.stream(model=MODELS[upstream], messages=USER, tools=TOOLS,
                                              parallel_tool_calls=upstream == "fake") as stream:
        deltas = [event.chunk async for event in stream if event.type == "chunk"]
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert all(set(json.loads(c.function.arguments)) == {"city", "unit"} for c in calls)
    if upstream == "fake":
        assert [json.loads(c.function.arguments) for c in calls] == [json.loads(a) for a in args]
    pieces = [tc for d in deltas if d.choices for tc in d.choices[0].delta.tool_calls or ()]
    heads = [p for p in pieces if p.id]
    assert len(heads) == len(calls) and all(p.type == "function" and p.function.name for p in heads)
    tails = [p for p in pieces if not p.id]
    assert len(tails) >= len(calls) and all(p.function.name is None and p.function.arguments for p in tails)


async def test_n_choices(upstream, client, fake_openai):
    fake_openai.queue("up", Reply(n=2))
    resp = await client.chat.completions.create(model=MODELS[upstream], messages=USER, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content == expected_text(upstream) for c in resp.choices)
    fake_openai.queue("up", Reply(n=2))
    stream = await client.chat.completions.create(model=MODELS[upstream], messages=USER, n=2, stream=True)
    texts = {0: "", 1: ""}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: expected_text(upstream), 1: expected_text(upstream)}


class Person(BaseModel):
    name: str
    age: int


async def test_response_format_json_schema(upstream, client, fake_openai):
    fake_openai.queue("up", Reply(text='{"name": "Ada", "age": 36}'))
    parsed = await client.chat.completions.parse(model=MODELS[upstream], messages=USER, response_format=Person)
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person)
    if upstream == "fake":
        assert person == Person(name="Ada", age=36)
        sent = fake_openai.calls("up", CHAT)[0].body
        check_chat_request(sent)
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "Person"
        assert sent["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]


@pytest.mark.parametrize("encoding", ["float", "base64", None])
async def test_embeddings(upstream, encoding, client, fake_openai):
    model = "up/text-embedding-3-small" if upstream == "fake" else "demo/echo"
    kwargs = {"encoding_format": encoding} if encoding else {}
    resp = await client.embeddings.create(model=model, input=["one", "two"], **kwargs)
    assert isinstance(resp, CreateEmbeddingResponse)
    assert [d.index for d in resp.data] == [0, 1]
    vectors = [d.embedding for d in resp.data]
    if encoding == "base64":  # the SDK hands an explicitly requested base64 string back as-is
        vectors = [list(struct.unpack(f"<{len(base64.b64decode(v)) // 4}f", base64.b64decode(v))) for v in vectors]
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert vectors[0] != vectors[1] and len(vectors[0]) == len(vectors[1]) > 1
    extra = resp.model_extra["extra_fields"]
    assert extra["request_type"] == "embedding" and extra["model"] == model and extra["model_requested"] == model
    assert extra["billed_usage"]["prompt_tokens"] == resp.usage.prompt_tokens > 0
    assert extra["attempts"][0]["status"] == 200 and extra["cache"] == {"status": "off"}
    if upstream == "fake":
        assert vectors[0] == pytest.approx([0.1, 0.11, 0.12, 0.13], rel=1e-6)
        [sent] = fake_openai.calls("up", EMBEDDINGS)
        assert sent.body["model"] == "text-embedding-3-small"
        assert sent.body["encoding_format"] == (encoding or "base64")  # the SDK asks base64 by default


async def test_models_list(client):
    page = await client.models.list()
    ids = [m.id for m in page.data]
    assert sorted(ids) == ["demo/echo", "smart", "up/gpt-4o-mini", "up/text-embedding-3-small"]
    assert all(m.object == "model" and m.owned_by for m in page.data)


async def test_models_retrieve(client):
    """`models.retrieve` (the SDK quotes the `/` of `provider/model` in the path)."""
    for model_id, owner in (("smart", "switchboard"), ("up/gpt-4o-mini", "up")):
        model = await client.models.retrieve(model_id)
        assert (model.id, model.object, model.owned_by) == (model_id, "model", owner)
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("up/nope")
    assert info.value.body["code"] == "model_not_found"


RAW = {"x-switchboard-raw-response": "true"}


async def test_raw_response_only_when_asked(fake_openai, make_router, openai_client):
    client = openai_client(await make_router(config(fake_openai)))
    plain = await client.chat.completions.create(model="up/gpt-4o-mini", messages=USER)
    assert "raw_response" not in plain.model_extra["extra_fields"]
    asked = await client.chat.completions.create(model="up/gpt-4o-mini", messages=USER, extra_headers=RAW)
    raw = asked.model_extra["extra_fields"]["raw_response"]
    assert raw["system_fingerprint"] == "fp_fake" and raw["choices"][0]["message"]["content"] == "Hello from the fake."
    emb = await client.embeddings.create(model="up/text-embedding-3-small", input="x", extra_headers=RAW)
    assert emb.model_extra["extra_fields"]["raw_response"]["object"] == "list"

    always = openai_client(await make_router(config(fake_openai, up={"raw_response": True})))
    resp = await always.chat.completions.create(model="up/gpt-4o-mini", messages=USER)
    assert resp.model_extra["extra_fields"]["raw_response"]["id"] == "chatcmpl-fake123"

    locked = openai_client(await make_router(config(fake_openai, server={"allow_raw_response_header": False})))
    resp = await locked.chat.completions.create(model="up/gpt-4o-mini", messages=USER, extra_headers=RAW)
    assert "raw_response" not in resp.model_extra["extra_fields"]


async def test_extra_fields_off_everywhere(fake_openai, make_router, openai_client, raw):
    base = await make_router(config(fake_openai, server={"extra_fields": False}))
    client = openai_client(base)
    resp = await client.chat.completions.create(model="up/gpt-4o-mini", messages=USER, extra_headers=RAW)
    assert "extra_fields" not in resp.model_extra
    stream = await client.chat.completions.create(model="demo/echo", messages=USER, stream=True,
                                                  stream_options={"include_usage": True})
    assert [c async for c in stream if "extra_fields" in c.model_extra] == []
    emb = await client.embeddings.create(model="up/text-embedding-3-small", input="x")
    assert "extra_fields" not in emb.model_extra
    # Errors too: a vendor failure and a stream through the fake, checked on the raw bytes.
    failed = await raw.post(f"{base}/v1/chat/completions", json={"model": "demo/fail-503", "messages": USER})
    assert failed.status == 502 and set(failed.json()) == {"error"}
    streamed = await raw.post(f"{base}/v1/chat/completions",
                              json={"model": "up/gpt-4o-mini", "messages": USER, "stream": True})
    assert streamed.events[-1] == "[DONE]" and b"extra_fields" not in streamed.body
