"""OpenAI-compatible vendors end to end: the official openai SDK -> the router -> the fake OpenAI API
playing a compatible vendor's quirks (tests/fakes/openai_upstream.py).

What such a vendor sends differently from OpenAI must reach the client in OpenAI's shape: Mistral's
tool calls without `"type": "function"`, `"usage": null` on every chunk of a stream that did not ask for
usage, and empty arguments for a tool without parameters.

The fake's own Responses API (`POST /v1/responses`) is checked here too, against the openai SDK alone.
"""

from __future__ import annotations

import json

import openai
import pytest
from fakes.openai_upstream import ENCRYPTED_INCLUDE, RESPONSES, SECRET, Fail, Reply, ResponsesReply
from support.vendor_chat import ask, collect

MISTRAL = "mistral/mistral-large-latest"
VLLM = "local/qwen2.5-7b-instruct"
USER = [{"role": "user", "content": "Where is my payment T1001?"}]
STATUS = {"type": "function", "function": {"name": "payment_status", "parameters": {
    "type": "object", "properties": {"transaction_id": {"type": "string"}}, "required": ["transaction_id"]}}}
NOW = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
WEATHER = {"type": "function", "name": "get_weather", "strict": True, "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}


@pytest.fixture
async def client(fake_openai, make_router, openai_client) -> openai.AsyncOpenAI:
    def provider(kind: str, upstream: str) -> dict:
        return {"type": kind, "base_url": fake_openai.base_url(upstream), "keys": [{"value": SECRET}],
                "max_retries": 0}

    return openai_client(await make_router({"providers": {"mistral": provider("mistral", "mistral"),
                                                          "local": provider("vllm", "local")}}))


@pytest.mark.parametrize("stream", [False, True])
async def test_mistral_tool_calls_get_their_type(fake_openai, client, stream):
    fake_openai.queue("mistral", Reply(text=None, tool_calls=[("payment_status", '{"transaction_id": "T1001"}')],
                                       typed_calls=False))
    message, reason, _ = await ask(client, stream, model=MISTRAL, messages=USER, tools=[STATUS])
    [call] = message.tool_calls
    assert reason == "tool_calls" and call.type == "function" and call.id == "call_0abc"
    assert json.loads(call.function.arguments) == {"transaction_id": "T1001"}


async def test_null_usage_on_chunks_is_not_relayed(fake_openai, client):
    fake_openai.queue("mistral", Reply(text="It was paid yesterday.", null_usage=True))
    chunks = await collect(client, model=MISTRAL, messages=USER)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It was paid yesterday."
    assert not [c for c in chunks if "usage" in c.model_fields_set]


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_without_parameters_has_empty_object_arguments(fake_openai, client, stream):
    fake_openai.queue("local", Reply(text=None, tool_calls=[("now", "")]))
    message, reason, _ = await ask(client, stream, model=VLLM, messages=USER, tools=[NOW])
    [call] = message.tool_calls
    assert reason == "tool_calls" and json.loads(call.function.arguments) == {}


# -- the fake itself: the Responses API ------------------------------------------------------------
async def test_fake_answers_the_responses_api_like_openai(fake_openai):
    sdk = openai.AsyncOpenAI(base_url=fake_openai.base_url("x"), api_key=SECRET, max_retries=0)
    fake_openai.queue("x", ResponsesReply(text=None, reasoning="The user wants Paris.",
                                          tool_calls=[("get_weather", '{"city": "Paris"}')]), endpoint=RESPONSES)
    first = await sdk.responses.create(model="gpt-5", input="Weather in Paris?", tools=[WEATHER], store=False,
                                       include=[ENCRYPTED_INCLUDE])
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "The user wants Paris."
    assert reasoning.encrypted_content in fake_openai.encrypted and reasoning.id.startswith("rs_fake")
    assert call.type == "function_call" and call.call_id.startswith("call_fake")
    assert call.name == "get_weather" and call.arguments == '{"city": "Paris"}'
    assert first.id.startswith("resp_fake") and first.status == "completed" and first.model == "gpt-5"
    usage = first.usage
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens,
            usage.total_tokens) == (12, 4, 5, 17)

    replay = [{"role": "user", "content": "Weather in Paris?"},
              *[item.model_dump(mode="json", exclude_none=True) for item in first.output],
              {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}]
    async with sdk.responses.stream(model="gpt-5", input=replay, tools=[WEATHER], store=False) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Hello from the fake."
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed" and "response.output_text.delta" in types

    fake_openai.queue("x", Fail(429, retry_after="1"), endpoint=RESPONSES)
    with pytest.raises(openai.RateLimitError):
        await sdk.responses.create(model="gpt-5", input="Again?")
    assert not fake_openai.problems


@pytest.mark.parametrize(("reply", "last"), [(ResponsesReply(status="incomplete"), "response.incomplete"),
                                             (ResponsesReply(reasoning="Hm.", error_after=4), "response.failed")])
async def test_fake_ends_a_responses_stream_as_scripted(fake_openai, raw, reply, last):
    fake_openai.queue("x", reply, endpoint=RESPONSES)
    resp = await raw.post(fake_openai.base_url("x") + "/responses", json={"model": "gpt-5", "input": "Hi",
                                                                          "stream": True})
    assert resp.status == 200 and resp.events[-1]["type"] == last
    assert [e["sequence_number"] for e in resp.events] == list(range(len(resp.events)))
    assert b"event: response.created\ndata: " in resp.body


async def test_fake_refuses_what_openai_responses_refuses(fake_openai, raw):
    url = fake_openai.base_url("x") + "/responses"
    good = {"model": "gpt-5", "input": [{"role": "user", "content": "Hi"}]}
    assert (await raw.post(url, json=good)).status == 200
    foreign = {"type": "reasoning", "id": "rs_elsewhere", "summary": [], "encrypted_content": "gAAAAnot-ours"}
    bad_bodies = [{**good, "n": 2}, {**good, "input": [{"role": "robot", "content": "Hi"}]},
                  {**good, "tools": [{"type": "function", "name": "f"}]}, {**good, "include": ["everything"]},
                  {**good, "input": [foreign, *good["input"]]}]
    for body in bad_bodies:
        resp = await raw.post(url, json=body)
        assert resp.status == 400 and resp.error["type"] == "invalid_request_error", body
    assert resp.error["code"] == "invalid_encrypted_content"
    assert len(fake_openai.problems) == len(bad_bodies)
