"""The openai SDK's `client.responses` against `/v1/responses`, on the mock, a Chat-Completions-only fake
and a fake Anthropic: create, stream, tool loop, structured output, stored responses and their scope.

The fakes validate what the router sends with the vendor SDK's own types; the openai SDK parses every
answer and every event into its own types, so a shape that is off fails here as it would in a client.
"""

from __future__ import annotations

import json

import openai
import pytest
from fakes.anthropic_upstream import Message, text, thinking, tool_use
from fakes.openai_upstream import Fail, Reply
from pydantic import BaseModel

KEY = "sk-responses-test"
OTHER = "sk-responses-other"
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}
NOW = {"type": "function", "name": "now", "description": "The current time",
       "parameters": {"type": "object", "properties": {}}, "strict": False}


def config(fake_openai, anthropic=None, **extra) -> dict:
    providers = {"up": fake_openai.provider("up"), "demo": {"type": "mock"}}
    models = {"gpt-4.1": "up/gpt-4o-mini", "echo": "demo/echo"}
    if anthropic is not None:
        providers["claude"] = anthropic.provider("claude")
        models["claude"] = "claude/claude-haiku-4-5"
    keys = [{"name": "a", "key": KEY}, {"name": "b", "key": OTHER}]
    return {"providers": providers, "models": models, "auth": {"keys": keys}, **extra}


@pytest.fixture
async def sdk():
    clients: list[openai.AsyncOpenAI] = []

    def make(base_url: str, key: str = KEY) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_create_and_stream_on_the_mock(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    resp = await client.responses.create(model="echo", input="ping pong")
    assert resp.object == "response" and resp.status == "completed" and resp.id.startswith("resp_")
    assert resp.output_text == "ping pong" and resp.usage.output_tokens > 0
    assert resp.model_extra["extra_fields"]["provider"] == "demo"
    async with client.responses.stream(model="echo", input="stream me please") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and final.output_text == "stream me please"


async def test_translated_from_chat_completions(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    resp = await client.responses.create(model="gpt-4.1", instructions="Be brief.", input="Hi",
                                         max_output_tokens=100, temperature=0.3)
    assert resp.output_text == "Hello from the fake."
    assert (resp.usage.input_tokens, resp.usage.input_tokens_details.cached_tokens, resp.usage.output_tokens) == \
        (12, 4, 5)
    [sent] = fake_openai.bodies("up")
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent["max_completion_tokens"] == 100 and sent["temperature"] == 0.3


@pytest.mark.parametrize("stream", [False, True])
async def test_function_tool_loop(fake_openai, make_router, sdk, stream) -> None:
    client = sdk(await make_router(config(fake_openai)))
    fake_openai.queue("up", Reply(text=None, tool_calls=[("get_weather", '{"city": "Paris"}'), ("now", "")]),
                      Reply(text="Sunny at noon."))
    args = {"model": "gpt-4.1", "tools": [WEATHER, NOW], "store": False}
    if stream:
        async with client.responses.stream(input="Weather in Paris?", **args) as events:
            first = await events.get_final_response()
    else:
        first = await client.responses.create(input="Weather in Paris?", **args)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"}), ("now", {})]
    history = [{"role": "user", "content": "Weather in Paris?"}, *[c.model_dump(exclude_none=True) for c in calls],
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny"},
               {"type": "function_call_output", "call_id": calls[1].call_id, "output": "12:00"}]
    second = await client.responses.create(input=history, **args)
    assert second.output_text == "Sunny at noon."
    sent = fake_openai.bodies("up")[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == [c.call_id for c in calls]


async def test_parse_with_a_pydantic_model(fake_openai, make_router, sdk) -> None:
    class City(BaseModel):
        name: str
        population: int

    client = sdk(await make_router(config(fake_openai)))
    fake_openai.queue("up", Reply(text='{"name": "Paris", "population": 2100000}'))
    parsed = await client.responses.parse(model="gpt-4.1", input="Paris?", text_format=City)
    assert parsed.output_parsed == City(name="Paris", population=2100000)
    fmt = fake_openai.bodies("up")[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"


async def test_stored_responses_chain_list_and_delete_per_key(fake_openai, make_router, sdk) -> None:
    url = await make_router(config(fake_openai))
    client, other = sdk(url), sdk(url, OTHER)
    fake_openai.queue("up", Reply(text="My name is Fake."), Reply(text="You asked my name."))
    first = await client.responses.create(model="gpt-4.1", input="What is your name?")
    second = await client.responses.create(model="gpt-4.1", input="What did I ask?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "You asked my name."
    sent = fake_openai.bodies("up")[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "My name is Fake."
    got = await client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == "My name is Fake."
    items = await client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].content[0].text == "What did I ask?"
    with pytest.raises(openai.NotFoundError):
        await other.responses.retrieve(first.id)  # another key: as if it never existed
    with pytest.raises(openai.NotFoundError):
        await other.responses.create(model="gpt-4.1", input="x", previous_response_id=first.id)
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    unstored = await client.responses.create(model="echo", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)


async def test_errors_are_openai_shaped(fake_openai, make_router, sdk) -> None:
    url = await make_router(config(fake_openai))
    with pytest.raises(openai.AuthenticationError):
        await sdk(url, "sk-wrong").responses.create(model="echo", input="x")
    with pytest.raises(openai.BadRequestError) as err:
        await sdk(url).responses.create(model="echo", input=[{"type": "bogus_item"}])
    assert err.value.body["param"].startswith("input")
    fake_openai.queue("up", Fail(429, "slow down", retry_after="3"))
    with pytest.raises(openai.RateLimitError) as err:
        await sdk(url).responses.create(model="gpt-4.1", input="x")
    assert err.value.response.headers["retry-after"] == "3"


async def test_a_stream_that_breaks_ends_with_response_failed(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai)))
    fake_openai.queue("up", Reply(text="one two three four five", error_after=3))
    async with client.responses.stream(model="gpt-4.1", input="x") as stream:
        kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.failed" and "response.output_text.delta" in kinds


async def test_anthropic_backend_with_thinking_round_trip(fake_openai, anthropic, make_router, sdk) -> None:
    client = sdk(await make_router(config(fake_openai, anthropic)))
    blocks = [thinking("Need the tool."), tool_use("get_weather", {"city": "Paris"})]
    anthropic.queue("claude", Message(content=blocks), Message(content=[text("Sunny.")]))
    args = {"model": "claude", "tools": [WEATHER], "reasoning": {"effort": "low"}, "store": False,
            "include": ["reasoning.encrypted_content"]}
    first = await client.responses.create(input="Weather in Paris?", **args)
    kinds = [item.type for item in first.output]
    assert kinds == ["reasoning", "function_call"] and first.output[0].encrypted_content
    call = first.output[1]
    history = [{"role": "user", "content": "Weather in Paris?"},
               *[i.model_dump(exclude_none=True) for i in first.output],
               {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}]
    second = await client.responses.create(input=history, **args)
    assert second.output_text == "Sunny."
    replayed = anthropic.calls("claude")[1].body["messages"][1]["content"][0]
    assert replayed["type"] == "thinking" and replayed["signature"] == blocks[0]["signature"]


async def test_stored_in_redis_shared_by_instances(fake_openai, make_router, sdk, redis_url) -> None:
    """Two routers on one Redis: a response stored by one is read and continued through the other, under
    the same key only."""
    cfg = config(fake_openai, redis={"url": redis_url})
    url_two = await make_router(cfg)
    one, two = sdk(await make_router(cfg)), sdk(url_two)
    fake_openai.queue("up", Reply(text="Stored."), Reply(text="Continued."))
    first = await one.responses.create(model="gpt-4.1", input="Remember this.")
    assert (await two.responses.retrieve(first.id)).output_text == "Stored."
    second = await two.responses.create(model="gpt-4.1", input="And?", previous_response_id=first.id)
    assert second.output_text == "Continued."
    assert [m["role"] for m in fake_openai.bodies("up")[1]["messages"]] == ["user", "assistant", "user"]
    with pytest.raises(openai.NotFoundError):
        await sdk(url_two, OTHER).responses.retrieve(first.id)


async def test_a_streamed_response_is_stored_before_its_last_event(fake_openai, make_router, sdk) -> None:
    """A client that asks for the response the moment `response.completed` arrives finds it."""
    client = sdk(await make_router(config(fake_openai)))
    async with client.responses.stream(model="echo", input="keep me") as stream:
        async for event in stream:
            if event.type == "response.completed":
                got = await client.responses.retrieve(event.response.id)
                assert got.output_text == "keep me"
