"""The anthropic SDK against `/v1/messages`, on the mock, on a fake OpenAI upstream and on a fake Anthropic.

The fakes validate what the router sends with the vendor SDK's own types (see tests/fakes); the
anthropic SDK parses every answer into its own types and raises its own exception classes, so a
shape or a status that is off fails here as it would fail a client.
"""

from __future__ import annotations

import base64
import json

import anthropic as anthropic_sdk
import orjson
import pytest
from fakes.anthropic_upstream import Fail as AnthropicFail
from fakes.anthropic_upstream import Message, text, thinking, tool_use
from fakes.openai_upstream import SECRET, Fail, Reply

KEY = "sk-messages-test"
OTHER = "sk-other-test"
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
NOW = {"name": "now", "description": "The current time", "input_schema": {"type": "object", "properties": {}}}
USER = [{"role": "user", "content": "Weather in Paris?"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def config(fake_openai, anthropic_fake=None, **extra) -> dict:
    providers = {"up": fake_openai.provider("up"), "demo": {"type": "mock"}}
    if anthropic_fake is not None:
        providers["claude"] = anthropic_fake.provider("claude")
    models = {"claude-sonnet-4-5": "up/gpt-4o-mini", "echo": "demo/echo"}
    if anthropic_fake is not None:
        models["claude-haiku-4-5"] = "claude/claude-haiku-4-5"
    keys = [{"name": "dev", "key": KEY}, {"name": "narrow", "key": OTHER, "models": ["echo", "demo/*"]}]
    return {"providers": providers, "models": models, "auth": {"keys": keys}, **extra}


@pytest.fixture
async def sdk():
    clients: list[anthropic_sdk.AsyncAnthropic] = []

    def make(base_url: str, key: str = KEY, **options) -> anthropic_sdk.AsyncAnthropic:
        client = anthropic_sdk.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


# -- on the mock ------------------------------------------------------------------------------------
async def test_create_and_stream_on_the_mock(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    msg = await client.messages.create(model="echo", max_tokens=64, messages=[{"role": "user", "content": "ping pong"}])
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "echo"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "ping pong"
    assert msg.stop_reason == "end_turn" and msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    async with client.messages.stream(model="echo", max_tokens=64,
                                      messages=[{"role": "user", "content": "stream me please"}]) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_start" in types and "content_block_delta" in types and "message_delta" in types
    assert final.content[0].text == "stream me please" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


# -- on a fake OpenAI upstream, behind an alias of a Claude name -------------------------------------
async def test_claude_name_answered_by_openai(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=100, system="Be brief.", messages=USER,
        stop_sequences=["END"], metadata={"user_id": "u-1"}, extra_body={"temperature": 0.2, "top_k": 5})
    msg = await raw.parse()
    assert msg.content[0].text == "Hello from the fake." and msg.model == "claude-sonnet-4-5"
    assert raw.headers["x-switchboard-provider"] == "up" and raw.headers["x-switchboard-model"] == "up/gpt-4o-mini"
    assert raw.headers["x-switchboard-attempts"] == "1" and float(raw.headers["x-switchboard-cost-usd"]) > 0
    assert raw.headers["x-switchboard-dropped"] == "top_k"
    assert json.loads(raw.http_response.text)["extra_fields"]["model"] == "up/gpt-4o-mini"
    # usage: OpenAI's 12 prompt tokens hold 4 cached ones
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (8, 4, 5)
    [sent] = fake_openai.bodies("up")
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Weather in Paris?"}]
    assert sent["max_tokens"] == 100 and sent["temperature"] == 0.2 and sent["stop"] == ["END"]
    assert "top_k" not in sent and "thinking" not in sent


async def test_stream_from_openai(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    fake_openai.queue("up", Reply(text="One two three four."))
    async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=USER) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    assert final.content[0].text == "One two three four."
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert len(deltas) > 1 and "".join(deltas) == "One two three four."
    assert final.usage.output_tokens == 5 and final.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_loop_through_openai(fake_openai, make_router, sdk, stream) -> None:
    """The SDK gets tool_use blocks (streamed input in pieces too), sends back exactly what it received,
    and the OpenAI upstream sees the canonical tool loop."""
    client = sdk(await make_router(config(fake_openai)))
    fake_openai.queue("up", Reply(text=None, tool_calls=[("get_weather", '{"city": "Paris"}'), ("now", "")]),
                      Reply(text="Sunny at noon."))
    kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 200, "tools": [WEATHER, NOW]}
    if stream:
        async with client.messages.stream(messages=USER, **kwargs) as s:
            first = await s.get_final_message()
    else:
        first = await client.messages.create(messages=USER, **kwargs)
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Paris"}), ("now", {})]
    history = [*USER, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": calls[0].id, "content": "Sunny"},
                   {"type": "tool_result", "tool_use_id": calls[1].id, "content": [{"type": "text", "text": "12:00"}]},
                   {"type": "text", "text": "Summarise."}]}]
    second = await client.messages.create(messages=history, **kwargs)
    assert second.content[0].text == "Sunny at noon."
    sent = fake_openai.bodies("up")[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"]
    assert [c["function"]["name"] for c in sent[1]["tool_calls"]] == ["get_weather", "now"]
    assert json.loads(sent[1]["tool_calls"][1]["function"]["arguments"]) == {}
    assert sent[2]["tool_call_id"] == calls[0].id and sent[3]["tool_call_id"] == calls[1].id


async def test_images_reach_openai_as_data_urls(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    await client.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is this?"}]}])
    parts = fake_openai.bodies("up")[0]["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert parts[1]["image_url"]["url"] == "https://example.com/cat.png"


async def test_count_tokens(fake_openai, make_router, sdk) -> None:
    url = await make_router(config(fake_openai))
    client = sdk(url)
    small = await client.messages.count_tokens(model="claude-sonnet-4-5", messages=USER)
    large = await client.messages.count_tokens(model="claude-sonnet-4-5", messages=USER, tools=[WEATHER, NOW],
                                               system="You are a weather bot. " * 20)
    assert 0 < small.input_tokens < large.input_tokens
    assert fake_openai.calls() == []  # counted here, no vendor asked
    with pytest.raises(anthropic_sdk.PermissionDeniedError):
        await sdk(url, OTHER).messages.count_tokens(model="claude-sonnet-4-5", messages=USER)


# -- errors in Anthropic's shape, with the classes the SDK raises -----------------------------------
async def test_every_error_class(fake_openai, make_router, sdk, raw) -> None:
    url = await make_router(config(fake_openai))
    client = sdk(url)
    args = {"max_tokens": 10, "messages": USER}
    with pytest.raises(anthropic_sdk.AuthenticationError) as err:
        await sdk(url, "sk-wrong").messages.create(model="echo", **args)
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic_sdk.PermissionDeniedError):
        await sdk(url, OTHER).messages.create(model="claude-sonnet-4-5", **args)
    with pytest.raises(anthropic_sdk.NotFoundError):
        await client.messages.create(model="no-such-model", **args)
    with pytest.raises(anthropic_sdk.BadRequestError) as err:
        await client.messages.create(model="echo", max_tokens=10, messages=USER, extra_body={"max_tokens": "ten"})
    assert "max_tokens" in err.value.message
    fake_openai.queue("up", Fail(429, "slow down", retry_after="7"))
    with pytest.raises(anthropic_sdk.RateLimitError) as err:
        await client.messages.create(model="claude-sonnet-4-5", **args)
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.body["error"]["type"] == "rate_limit_error"
    fake_openai.queue("up", Fail(500, "boom"))
    with pytest.raises(anthropic_sdk.InternalServerError) as err:
        await client.messages.create(model="claude-sonnet-4-5", **args)
    assert err.value.status_code == 500 and SECRET not in err.value.message
    resp = await raw.post(url + "/v1/messages", data=b"{not json", headers={"x-api-key": KEY,
                                                                            "content-type": "application/json"})
    assert resp.status == 400 and resp.json()["type"] == "error"
    resp = await raw.post(url + "/v1/messages", data=b"x" * (11 << 20), headers={
        "x-api-key": KEY, "content-type": "application/json"})
    assert resp.status == 413 and resp.json()["error"]["type"] == "request_too_large"


async def test_overloaded_anthropic_is_529(fake_openai, anthropic, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai, anthropic)))
    anthropic.queue("claude", AnthropicFail(529))
    with pytest.raises(anthropic_sdk.OverloadedError):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)


async def test_bearer_auth_works_too(fake_openai, make_router, sdk) -> None:
    url = await make_router(config(fake_openai))
    client = sdk(url, None, auth_token=KEY)
    msg = await client.messages.create(model="echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "hi"


# -- same dialect: forwarded to Anthropic as written, relayed as Anthropic sent it -------------------
async def test_passthrough_forwards_every_member(fake_openai, anthropic, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai, anthropic)),
                 default_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    body = {"model": "claude-haiku-4-5", "max_tokens": 2048, "messages": USER,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": [WEATHER],
            "metadata": {"user_id": "u-1"}}
    raw = await client.messages.with_raw_response.create(**body, extra_body={"top_k": 3})
    msg = await raw.parse()
    assert msg.content[0].text == "Hello from Claude."
    [sent] = anthropic.calls("claude")
    assert sent.body == {**body, "top_k": 3, "model": "claude-haiku-4-5", "stream": False}
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert sent.headers["x-api-key"] != KEY and "x-switchboard-dropped" not in raw.headers
    assert raw.headers["x-switchboard-provider"] == "claude"
    assert msg.usage.cache_read_input_tokens == 100  # the vendor's own usage object


async def test_passthrough_stream_is_the_vendors_bytes(fake_openai, anthropic, make_router, sdk, raw) -> None:
    url = await make_router(config(fake_openai, anthropic))
    blocks = [thinking("Let me think."), text("Checking."), tool_use("get_weather", {"city": "Paris"})]
    anthropic.queue("claude", Message(content=blocks))
    body = {"model": "claude-haiku-4-5", "max_tokens": 2048, "messages": USER, "stream": True, "tools": [WEATHER],
            "thinking": {"type": "enabled", "budget_tokens": 1024}}
    resp = await raw.post(url + "/v1/messages", json=body, headers={"x-api-key": KEY,
                                                                     "anthropic-version": "2023-06-01"})
    assert resp.status == 200
    whole = Message(content=blocks).message("claude-haiku-4-5")
    events = [e for e in resp.body.split(b"\n\n") if e]
    sent = [e for e in b"".join(b"event: " + ev["type"].encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n"
                                for ev in Message(content=blocks).events(whole)).split(b"\n\n") if e]
    assert len(events) == len(sent)
    for got, want in zip(events, sent, strict=True):  # same events, ids aside (each reply makes its own)
        g, w = orjson.loads(got.split(b"data: ", 1)[1]), orjson.loads(want.split(b"data: ", 1)[1])
        assert g["type"] == w["type"]
    # and the SDK folds them, signature included, so the next turn can replay the thinking
    anthropic.queue("claude", Message(content=blocks))
    client = sdk(url)
    async with client.messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    anthropic.queue("claude", Message(content=[text("Sunny.")]))
    history = [*USER, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": final.content[2].id,
                                             "content": "Sunny"}]}]
    again = await client.messages.create(**{**{k: v for k, v in body.items() if k != "stream"},
                                            "messages": history})
    assert again.content[0].text == "Sunny."
    assert anthropic.calls("claude")[-1].body["messages"][1]["content"][0]["signature"] == \
        final.content[0].signature


async def test_failover_from_anthropic_to_openai_renders_the_canonical_answer(fake_openai, anthropic, make_router,
                                                                              sdk) -> None:
    cfg = config(fake_openai, anthropic)
    cfg["models"]["claude-haiku-4-5"] = {"targets": ["claude/claude-haiku-4-5"], "fallbacks": ["up/gpt-4o-mini"]}
    client = sdk(await make_router(cfg))
    anthropic.queue("claude", AnthropicFail(529))
    raw = await client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=10, messages=USER,
                                                         extra_body={"top_k": 4})
    assert (await raw.parse()).content[0].text == "Hello from the fake."
    assert raw.headers["x-switchboard-provider"] == "up" and raw.headers["x-switchboard-attempts"] == "2"
    assert raw.headers["x-switchboard-dropped"] == "top_k"


async def test_models_in_anthropics_shape(fake_openai, make_router, sdk) -> None:
    url = await make_router(config(fake_openai))
    page = await sdk(url).models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-5" in ids and all(m.type == "model" for m in page.data)
    one = await sdk(url).models.retrieve("claude-sonnet-4-5")
    assert one.id == "claude-sonnet-4-5" and one.display_name == "claude-sonnet-4-5"
    with pytest.raises(anthropic_sdk.NotFoundError) as err:
        await sdk(url).models.retrieve("no-such-model")
    assert err.value.body["type"] == "error"
    narrow = {m.id for m in (await sdk(url, OTHER).models.list()).data}
    assert "echo" in narrow and "claude-sonnet-4-5" not in narrow  # only what that key may use
