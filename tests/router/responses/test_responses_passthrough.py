"""Same dialect: a Responses request to a deployment that serves Responses is forwarded, not converted.

The fake OpenAI serves `/v1/responses` (validating every body with the openai SDK's own types and
refusing encrypted reasoning it did not issue); the provider says it serves Responses with
`options.responses_api` (OpenAI's own endpoint does by default). The body must arrive as the client
wrote it, with only the model and the stream flag set; the vendor's bytes must reach the client; the
router must still account for the usage and store the vendor's Response for later turns.
"""

from __future__ import annotations

import openai
import pytest
from fakes.anthropic_upstream import Message, thinking, tool_use
from fakes.openai_upstream import RESPONSES, Fail, ResponsesReply

KEY = "sk-responses-passthrough"
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


def config(fake_openai, anthropic=None) -> dict:
    providers = {"oa": {**fake_openai.provider("oa"), "options": {"responses_api": True}},
                 "chat": fake_openai.provider("chat")}
    models = {"gpt-5": {"targets": ["oa/gpt-5"], "fallbacks": ["chat/gpt-4o-mini"]}}
    if anthropic is not None:
        providers["claude"] = anthropic.provider("claude")
        models["claude"] = "claude/claude-haiku-4-5"
    return {"providers": providers, "models": models, "auth": {"keys": [{"name": "a", "key": KEY}]}}


@pytest.fixture
async def client(fake_openai, make_router):
    made: list[openai.AsyncOpenAI] = []

    async def make(anthropic=None) -> openai.AsyncOpenAI:
        url = await make_router(config(fake_openai, anthropic))
        made.append(openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0))
        return made[-1]

    yield make
    for c in made:
        await c.close()


async def test_forwarded_as_written_and_relayed(fake_openai, client) -> None:
    sdk = await client()
    raw = await sdk.responses.with_raw_response.create(
        model="gpt-5", input="Hi", instructions="Be brief.", tools=[WEATHER], prompt_cache_key="k-1",
        include=["reasoning.encrypted_content"], reasoning={"effort": "low", "summary": "auto"}, store=True)
    resp = raw.parse()
    [sent] = fake_openai.calls("oa")
    assert sent.path == "/oa/v1/responses" and KEY not in str(sent.headers)
    assert sent.body == {"model": "gpt-5", "input": "Hi", "instructions": "Be brief.", "tools": [WEATHER],
                         "prompt_cache_key": "k-1", "include": ["reasoning.encrypted_content"],
                         "reasoning": {"effort": "low", "summary": "auto"}, "store": True, "stream": False}
    assert resp.id.startswith("resp_fake") and resp.output_text == "Hello from the fake."
    assert "x-switchboard-dropped" not in raw.headers  # nothing was dropped: nothing was converted
    billed = resp.model_extra["extra_fields"]["billed_usage"]
    assert (billed["prompt_tokens"], billed["completion_tokens"], billed["cached_tokens"]) == (12, 5, 4)
    assert (await sdk.responses.retrieve(resp.id)).output_text == "Hello from the fake."  # stored: the vendor's id
    assert not fake_openai.problems


async def test_stream_is_the_vendors_events(fake_openai, client) -> None:
    sdk = await client()
    fake_openai.queue("oa", ResponsesReply(text="one two three", tool_calls=[("get_weather", '{"city": "Paris"}')]),
                      endpoint=RESPONSES)
    async with sdk.responses.stream(model="gpt-5", input="Weather?", tools=[WEATHER]) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))  # the vendor's numbering, untouched
    assert final.id.startswith("resp_fake") and final.output_text == "one two three"
    call = next(item for item in final.output if item.type == "function_call")
    assert call.call_id.startswith("call_fake") and call.arguments == '{"city": "Paris"}'
    assert (await sdk.responses.retrieve(final.id)).id == final.id
    assert fake_openai.calls("oa")[0].body["stream"] is True and not fake_openai.problems


async def test_a_continued_conversation_is_sent_whole(fake_openai, client) -> None:
    sdk = await client()
    fake_openai.queue("oa", ResponsesReply(text="My name is Fake.", reasoning="Introduce."),
                      ResponsesReply(text="You asked my name."), endpoint=RESPONSES)
    args = {"model": "gpt-5", "include": ["reasoning.encrypted_content"]}
    first = await sdk.responses.create(input="What is your name?", **args)
    second = await sdk.responses.create(input="What did I ask?", previous_response_id=first.id, **args)
    assert second.output_text == "You asked my name."
    sent = fake_openai.calls("oa")[1].body
    assert "previous_response_id" not in sent  # the id is ours to resolve, not the vendor's
    kinds = [item.get("type", "message") for item in sent["input"]]
    assert kinds == ["message", "reasoning", "message", "message"]
    assert sent["input"][1]["encrypted_content"] == first.output[0].encrypted_content  # the vendor's own: kept
    assert not fake_openai.problems


async def test_reasoning_sealed_for_another_vendor_is_not_forwarded(fake_openai, anthropic, client) -> None:
    """A conversation begun on Anthropic (its signed thinking sealed in our encrypted_content) and
    continued on OpenAI: OpenAI refuses encrypted content it did not issue, so ours stays behind."""
    sdk = await client(anthropic)
    anthropic.queue("claude", Message(content=[thinking("Need the tool."), tool_use("get_weather", {"city": "Paris"})]))
    first = await sdk.responses.create(model="claude", input="Weather in Paris?", tools=[WEATHER],
                                       reasoning={"effort": "low"})
    assert first.output[0].type == "reasoning" and first.output[0].encrypted_content
    call = first.output[1]
    second = await sdk.responses.create(model="gpt-5", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}])
    assert second.output_text == "Hello from the fake."
    sent = fake_openai.calls("oa")[0].body["input"]
    assert [item.get("type", "message") for item in sent] == ["message", "function_call", "function_call_output"]
    assert not fake_openai.problems


async def test_failover_to_a_chat_only_deployment_is_converted(fake_openai, client) -> None:
    sdk = await client()
    fake_openai.queue("oa", Fail(500), endpoint=RESPONSES)
    raw = await sdk.responses.with_raw_response.create(model="gpt-5", input="Hi", prompt_cache_key="k-2")
    resp = raw.parse()
    assert resp.id.startswith("resp_") and not resp.id.startswith("resp_fake")  # rendered by us
    assert resp.output_text == "Hello from the fake."
    assert raw.headers["x-switchboard-dropped"] == "prompt_cache_key"
    assert [a["model"] for a in resp.model_extra["extra_fields"]["attempts"]] == ["oa/gpt-5", "chat/gpt-4o-mini"]
