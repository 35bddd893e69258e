"""The Messages face on more backends, and the pipeline's rules holding for it.

Gemini (thought signatures must round-trip through the tool_use ids Claude clients send back), an
OpenAI-compatible reasoning model (its reasoning becomes a thinking block), the response cache under
the key's identity, and a budget refusal in Anthropic's shape.
"""

from __future__ import annotations

import anthropic as anthropic_sdk
import pytest
from fakes.gemini_upstream import Generate, call, text, thought
from fakes.openai_upstream import Reply
from support.vendor_schemas import sig_bytes

KEY = "sk-messages-vendors"
USER = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
async def sdk():
    clients: list[anthropic_sdk.AsyncAnthropic] = []

    def make(base_url: str, key: str = KEY) -> anthropic_sdk.AsyncAnthropic:
        client = anthropic_sdk.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def ask(client: anthropic_sdk.AsyncAnthropic, stream: bool, **kwargs):
    if not stream:
        return await client.messages.create(**kwargs)
    async with client.messages.stream(**kwargs) as events:
        return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_thought_signature_round_trips_through_tool_use_ids(gemini, make_router, sdk, stream) -> None:
    first = call("get_weather", {"city": "Paris"})
    gemini.queue("gem", Generate(parts=[thought("Need the weather tool."), first]),
                 Generate(parts=[text("It is 21 °C in Paris.")]))
    client = sdk(await make_router({"providers": {"gem": gemini.provider("gem")},
                                    "models": {"claude-sonnet-4-5": "gem/gemini-3-flash-preview"}}))
    args = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "tools": [WEATHER],
            "thinking": {"type": "enabled", "budget_tokens": 512}}
    message = await ask(client, stream, messages=USER, **args)
    assert [b.type for b in message.content] == ["thinking", "tool_use"]
    assert message.content[0].thinking == "Need the weather tool."
    use = message.content[1]
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    history = [*USER, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                             "content": '{"temp_c": 21}'}]}]
    answer = await ask(client, stream, messages=history, **args)
    assert answer.content[-1].text == "It is 21 °C in Paris." and answer.stop_reason == "end_turn"
    one, two = gemini.bodies("gem")
    assert one["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 512  # thinking honoured by Gemini
    model_turn = two["contents"][1]
    assert sig_bytes(model_turn["parts"][0]["thoughtSignature"]) == sig_bytes(first["thoughtSignature"]) is not None


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_of_an_openai_compatible_model_is_a_thinking_block(fake_openai, make_router, sdk,
                                                                          stream) -> None:
    fake_openai.queue("deep", Reply(text="42.", reasoning="Six times seven."))
    client = sdk(await make_router({"providers": {"deep": {**fake_openai.provider("deep"), "type": "deepseek"}},
                                    "models": {"claude-opus-4-1": "deep/deepseek-reasoner"}}))
    message = await ask(client, stream, model="claude-opus-4-1", max_tokens=100, messages=USER,
                        thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Six times seven." and message.content[1].text == "42."
    assert "thinking" not in fake_openai.bodies("deep")[0]  # no such member at OpenAI-compatible vendors


async def test_cache_serves_the_same_key_only(fake_openai, make_router, sdk) -> None:
    url = await make_router({"providers": {"up": fake_openai.provider("up")},
                             "models": {"claude-sonnet-4-5": "up/gpt-4o-mini"},
                             "cache": {"ttl_s": 60, "backend": "memory"},
                             "auth": {"keys": [{"name": "a", "key": KEY}, {"name": "b", "key": "sk-b-vendors"}]}})
    args = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": USER}

    async def answer(key: str, stream: bool) -> tuple[str, str]:
        client = sdk(url, key)
        if not stream:
            raw = await client.messages.with_raw_response.create(**args)
            return raw.headers["x-switchboard-cache"], (await raw.parse()).content[0].text
        async with client.messages.stream(**args) as events:
            final = await events.get_final_message()
            return events.response.headers["x-switchboard-cache"], final.content[0].text

    for stream in (False, True):
        assert await answer(KEY, stream) == ("miss", "Hello from the fake.")
        assert await answer(KEY, stream) == ("hit", "Hello from the fake.")
        assert await answer("sk-b-vendors", stream) == ("miss", "Hello from the fake.")
    assert len(fake_openai.calls("up")) == 4  # each key's first request, stream and not


async def test_an_exhausted_budget_is_a_billing_error(fake_openai, make_router, sdk) -> None:
    client = sdk(await make_router({"providers": {"up": fake_openai.provider("up")},
                                    "models": {"claude-sonnet-4-5": "up/gpt-4o-mini"},
                                    "auth": {"keys": [{"name": "a", "key": KEY, "budget_usd": 0.000001}]}}))
    with pytest.raises(anthropic_sdk.APIStatusError) as err:
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=USER)
    assert err.value.status_code == 402 and err.value.body["error"]["type"] == "billing_error"
    assert fake_openai.calls("up") == []
