"""Cohere end to end: the official openai SDK -> the router -> a fake Cohere v2 API.

The fake (tests/fakes/cohere_upstream.py) speaks `/v2/chat` JSON and SSE (`event:` + `data:` lines) and
`/v2/embed`, and validates every body the router sends against the cohere SDK's own request types,
strictly, answering Cohere's 400 to anything malformed (so a bad translation fails here as it would
against Cohere). Every response is parsed into the openai SDK's types. Providers have
`max_retries: 0`, so upstream call counts are exact.
"""

from __future__ import annotations

import json

import openai
import pytest

pytest.importorskip("cohere", reason="the fake Cohere validates with the cohere SDK's types")

from fakes.bedrock_upstream import API_KEY as BEDROCK_KEY
from fakes.bedrock_upstream import CLAUDE
from fakes.cohere_upstream import API_KEY, EMBED_MODEL, MODEL, Fail, Reply, chat_problems
from openai.types import CreateEmbeddingResponse
from pydantic import BaseModel
from support.vendor_chat import (
    ask_dict,
    ask_parsed,
    assert_relayed_error,
    read_until_error,
    status_error,
    streamed_text,
    trail,
    usage_and_extra,
)
from support.vendor_schemas import cohere_embed_problems

M = f"cohere/{MODEL}"
AYA = "c4ai-aya-expanse-32b"
PRICES = {"input_per_mtok": 0.5, "output_per_mtok": 1.5}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
NOW = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
async def client(bedrock, cohere, make_router, openai_client) -> openai.AsyncOpenAI:
    return openai_client(await make_router({
        "providers": {"cohere": cohere.provider(), "bedrock": bedrock.provider(), "demo": {"type": "mock"}},
        "pricing": {f"cohere/{AYA}": PRICES}}))


async def ask(client, stream: bool, **kwargs) -> tuple[dict, str | None, dict]:
    """`ask_dict` with this module's model and user turn by default."""
    return await ask_dict(client, stream, **{"model": M, "messages": USER, **kwargs})


# -- the fake can fail ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"model": MODEL, "messages": USER, "top_p": 0.5},
    {"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi", "name": "bob"}]},
    {"model": MODEL, "messages": USER, "tool_choice": "ANY"},
    {"model": MODEL, "messages": USER, "stream": "yes"},
    {"messages": USER},
    {"model": MODEL, "messages": [*USER, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, *USER]},
    {"model": MODEL, "messages": [*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
])
def test_chat_validation_catches_what_cohere_rejects(bad):
    assert chat_problems(bad)


def test_embed_validation_catches_what_cohere_rejects():
    assert not cohere_embed_problems({"model": EMBED_MODEL, "texts": ["a"], "input_type": "search_query"})
    assert cohere_embed_problems({"model": EMBED_MODEL, "texts": ["a"], "input_type": "query"})
    assert cohere_embed_problems({"model": EMBED_MODEL, "texts": ["a"], "input_type": "search_query", "dims": 3})


async def test_fake_answers_bad_bodies_and_bad_keys_like_cohere(cohere, raw):
    auth = {"authorization": f"Bearer {API_KEY}"}
    resp = await raw.post(f"{cohere.url}/v2/chat", json={"model": MODEL, "messages": USER}, headers=auth)
    assert resp.status == 200 and resp.json()["finish_reason"] == "COMPLETE"
    resp = await raw.post(f"{cohere.url}/v2/chat", json={"model": MODEL, "messages": USER, "n": 2}, headers=auth)
    assert resp.status == 400 and "'n'" in resp.json()["message"]
    resp = await raw.post(f"{cohere.url}/v2/chat", json={"model": MODEL, "messages": USER},
                          headers={"authorization": "Bearer wrong"})
    assert resp.status == 401 and resp.json()["message"] == "invalid api token"
    cohere.problems.clear()


# -- chat -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_plain_chat(client, cohere, stream):
    message, finish, extra = await ask(client, stream, max_tokens=50, temperature=0.2, top_p=0.9)
    assert message["content"] == "Hello from Cohere." and finish == "stop"
    assert extra["provider"] == "cohere" and extra["model"] == M and trail(extra) == [(M, 200)]
    [sent] = cohere.calls("chat")
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.body == {"model": MODEL, "messages": USER, "stream": stream, "max_tokens": 50,
                         "temperature": 0.2, "p": 0.9}


async def test_system_prompt_and_multi_turn(client, cohere):
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]
    await ask(client, False, messages=messages)
    assert cohere.calls()[0].body["messages"] == messages


async def test_image_from_data_url(client, cohere):
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]
    await ask(client, False, messages=[{"role": "user", "content": content}])
    assert cohere.calls()[0].body["messages"] == [{"role": "user", "content": content}]


@pytest.mark.parametrize("stream", [False, True])
async def test_two_step_tool_loop(client, cohere, stream):
    cohere.queue(Reply(tool_calls=[("get_weather", '{"location":"Paris"}')], tool_plan="I will check Paris."),
                 Reply(text="It is 21 degrees in Paris."))
    history = [{"role": "user", "content": "Weather in Paris?"}]
    message, finish, _ = await ask(client, stream, messages=history, tools=TOOLS)
    assert finish == "tool_calls" and message["content"] is None
    assert message["reasoning_content"] == "I will check Paris."  # Cohere's tool_plan
    [call] = message["tool_calls"]
    assert call["id"] == "get_weather_0abc" and json.loads(call["function"]["arguments"]) == {"location": "Paris"}
    history += [message, {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}]
    answer, finish, _ = await ask(client, stream, messages=history, tools=TOOLS)
    assert answer["content"] == "It is 21 degrees in Paris." and finish == "stop"
    second = cohere.calls()[1].body
    assert second["messages"][1:] == [
        {"role": "assistant", "tool_plan": "I will check Paris.", "tool_calls": [
            {"id": "get_weather_0abc", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "get_weather_0abc", "content": '{"temp_c": 21}'}]
    assert second["tools"] == [{"type": "function", "function": TOOLS[0]["function"]}]


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_tool_calls(client, cohere, stream):
    cohere.queue(Reply(tool_calls=[("get_weather", '{"location":"Paris"}'), ("get_weather", '{"location":"Tokyo"}')]))
    history = [{"role": "user", "content": "Paris and Tokyo?"}]
    message, finish, _ = await ask(client, stream, messages=history, tools=TOOLS, tool_choice="required")
    assert finish == "tool_calls"
    assert [json.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [
        {"location": "Paris"}, {"location": "Tokyo"}]
    assert cohere.calls()[0].body["tool_choice"] == "REQUIRED"
    history += [message, *({"role": "tool", "tool_call_id": c["id"], "content": "sunny"}
                           for c in message["tool_calls"])]
    await ask(client, stream, messages=history, tools=TOOLS)
    assert [m.get("tool_call_id") for m in cohere.calls()[1].body["messages"][2:]] == [
        "get_weather_0abc", "get_weather_1abc"]


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_without_parameters_has_empty_object_arguments(client, cohere, stream):
    """Streamed, Cohere opens the call with `arguments: ""` and sends no delta: the client gets "{}"."""
    cohere.queue(Reply(tool_calls=[("now", "")]), Reply(text="It is noon."))
    message, finish, _ = await ask(client, stream, messages=USER, tools=[NOW])
    [call] = message["tool_calls"]
    assert finish == "tool_calls" and json.loads(call["function"]["arguments"]) == {}
    history = [*USER, message, {"role": "tool", "tool_call_id": call["id"], "content": "12:00"}]
    answer, _, _ = await ask(client, stream, messages=history, tools=[NOW])
    assert answer["content"] == "It is noon."
    assert cohere.calls()[1].body["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"


async def test_null_tool_arguments_become_an_empty_object(client, cohere):
    cohere.queue(Reply(tool_calls=[("now", "null")]))
    resp = await client.chat.completions.create(model=M, messages=USER, tools=[NOW])
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments) == {}


class Person(BaseModel):
    name: str
    born: int


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_output(client, cohere, stream):
    cohere.queue(Reply(text='{"name": "Ada Lovelace", "born": 1815}'))
    person, finish = await ask_parsed(client, stream, Person, model=M, messages=USER)
    assert person == Person(name="Ada Lovelace", born=1815) and finish == "stop"
    sent = cohere.calls()[0].body["response_format"]
    assert sent["type"] == "json_object" and sent["json_schema"]["required"] == ["name", "born"]


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_sequences(client, cohere, stream):
    cohere.queue(Reply(text="one two", finish_reason="STOP_SEQUENCE"))
    message, finish, _ = await ask(client, stream, stop="END")
    assert message["content"] == "one two" and finish == "stop"
    assert cohere.calls()[0].body["stop_sequences"] == ["END"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "cost"), [
    (MODEL, (30 * 2.5 + 20 * 10) / 1e6),  # genai-prices' Command A
    (AYA, (30 * 0.5 + 20 * 1.5) / 1e6),  # the `pricing:` override
])
async def test_usage_totals_are_the_billed_units(client, cohere, stream, model, cost):
    cohere.queue(Reply(usage={"billed_units": {"input_tokens": 30, "output_tokens": 20},
                              "tokens": {"input_tokens": 95, "output_tokens": 20}}))
    reported, extra = await usage_and_extra(client, stream, model=f"cohere/{model}", messages=USER)
    assert (reported.prompt_tokens, reported.completion_tokens, reported.total_tokens) == (30, 20, 50)
    billed = extra["billed_usage"]
    assert (billed["prompt_tokens"], billed["completion_tokens"], billed["total_tokens"]) == (30, 20, 50)
    assert billed["cached_tokens"] == 0 and billed["cost_usd"] == pytest.approx(cost, rel=1e-9)


@pytest.mark.parametrize("stream", [False, True])
async def test_cached_raw_tokens_are_not_billed_prompt_tokens(client, cohere, stream):
    """Cohere's `cached_tokens` counts raw tokens (its template included), not the billed 12."""
    cohere.queue(Reply(usage={"billed_units": {"input_tokens": 12, "output_tokens": 40},
                              "tokens": {"input_tokens": 500, "output_tokens": 40}, "cached_tokens": 384}))
    reported, extra = await usage_and_extra(client, stream, model=M, messages=USER)
    assert reported.prompt_tokens == 12 and reported.prompt_tokens_details.cached_tokens == 0
    billed = extra["billed_usage"]
    assert (billed["prompt_tokens"], billed["cached_tokens"]) == (12, 0)
    assert billed["cost_usd"] == pytest.approx((12 * 2.5 + 40 * 10) / 1e6, rel=1e-9)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("reason", "finish"), [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")])
async def test_each_finish_reason(client, cohere, stream, reason, finish):
    calls = [("get_weather", '{"location":"Oslo"}')] if reason == "TOOL_CALL" else []
    cohere.queue(Reply(text="Partial answer", tool_calls=calls, finish_reason=reason))
    _, got, _ = await ask(client, stream, tools=TOOLS)
    assert got == finish


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("reason", "status"), [("ERROR", 502), ("TIMEOUT", 504)])
async def test_error_finish_reasons_are_failures(client, cohere, stream, reason, status):
    cohere.queue(Reply(text=None, finish_reason=reason, error="generation failed: internal"))
    err = await status_error(client, stream, model=M, messages=USER)
    assert err.status_code == status and "generation" in err.message


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "message", "client_status", "kind"), [
    (400, "invalid request: message must be at least 1 token long.", 400, "invalid_request_error"),
    (400, "too many tokens: size limit exceeded by 1123 tokens.", 400, "invalid_request_error"),
    (401, "invalid api token", 502, "upstream_error"),
    (402, "Please add a payment method", 502, "upstream_error"),
    (404, "model 'command-z' not found, make sure the correct model ID was used", 502, "upstream_error"),
    (422, "invalid request: 'p' must be between 0.01 and 0.99.", 422, "invalid_request_error"),
    (429, "You are using a Trial key, which is limited to 10 API calls / minute.", 429, "rate_limit_error"),
    (498, "invalid token", 502, "upstream_error"),
    (499, "request cancelled by the user", 502, "upstream_error"),
    (500, "internal server error, this has been reported to our developers", 502, "upstream_error"),
    (501, "model does not support this feature", 400, "invalid_request_error"),
    (503, "service unavailable", 502, "upstream_error"),
    (504, "gateway timeout", 504, "timeout_error"),
])
async def test_vendor_error_maps_to_client_status(client, cohere, stream, status, message, client_status, kind):
    cohere.queue(Fail(status, message, retry_after="4" if status == 429 else None))
    err = await status_error(client, stream, model=M, messages=USER)
    assert_relayed_error(err, client_status, kind, message, [(M, status)], API_KEY,
                         retry_after="4" if client_status == 429 else None)


async def test_n_2_is_emulated_with_parallel_calls(client, cohere):
    cohere.queue(Reply(text="first answer"), Reply(text="second answer"))
    resp = await client.chat.completions.create(model=M, messages=USER, n=2)
    assert sorted(c.message.content for c in resp.choices) == ["first answer", "second answer"]
    assert resp.usage.total_tokens == 34 and len(cohere.calls()) == 2
    assert all("n" not in c.body for c in cohere.calls())


# -- embeddings -----------------------------------------------------------------------------------
async def test_embeddings_batch(client, cohere):
    resp = await client.embeddings.create(model=f"cohere/{EMBED_MODEL}", input=["a", "b", "c"], dimensions=256)
    assert isinstance(resp, CreateEmbeddingResponse) and [d.index for d in resp.data] == [0, 1, 2]
    assert all(len(d.embedding) == 256 for d in resp.data) and resp.data[2].embedding[0] == pytest.approx(0.3)
    assert resp.usage.prompt_tokens == 9
    assert resp.model_extra["extra_fields"]["billed_usage"]["cost_usd"] == pytest.approx(9 * 0.12 / 1e6)
    assert cohere.calls("embed")[0].body == {"model": EMBED_MODEL, "texts": ["a", "b", "c"],
                                             "input_type": "search_document", "embedding_types": ["float"],
                                             "output_dimension": 256}


@pytest.mark.parametrize("model", [f"cohere/{EMBED_MODEL}", "bedrock/amazon.titan-embed-text-v2:0"])
async def test_embeddings_base64_encoding_format_is_honoured(client, raw, model):
    resp = await raw.post(str(client.base_url) + "embeddings",
                          json={"model": model, "input": "a", "encoding_format": "base64"})
    assert resp.status == 200 and isinstance(resp.json()["data"][0]["embedding"], str)


# -- fallbacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_fallback_from_cohere_to_bedrock(client, cohere, bedrock, stream):
    cohere.queue(Fail(429, "You are using a Trial key, which is limited to 10 API calls / minute."))
    message, _, extra = await ask(client, stream, extra_body={"fallbacks": [f"bedrock/{CLAUDE}"]})
    assert message["content"] == "Hello from Bedrock." and extra["provider"] == "bedrock"
    assert trail(extra) == [(M, 429), (f"bedrock/{CLAUDE}", 200)] and "Trial key" in extra["attempts"][0]["error"]
    [sent] = bedrock.calls()
    assert sent.headers["Authorization"] == f"Bearer {BEDROCK_KEY}"


@pytest.mark.parametrize(("failure", "stream", "status"), [
    (Fail(429, "rate limited"), False, 429),
    (Fail(500), True, 500),
    (Fail(503, "service unavailable"), False, 503),
    (Fail(499, "request cancelled"), True, 499),
    (Reply(text=None, finish_reason="ERROR", error="internal failure"), True, 200),
    (Reply(cut_after=2), True, 200),  # socket closed after content-start
    (Reply(cut_after=1, abort=False), True, 200),  # clean EOF without message-end
], ids=["429", "500-stream", "503", "499-stream", "error-finish-stream", "cut", "eof-no-message-end"])
async def test_fallback_to_mock_before_content(client, cohere, failure, stream, status):
    cohere.queue(failure)
    message, finish, extra = await ask(client, stream, messages=[{"role": "user", "content": "echo me"}],
                                       extra_body={"fallbacks": ["demo/echo"]})
    assert message["content"] == "echo me" and finish == "stop"
    assert trail(extra) == [(M, status), ("demo/echo", 200)] and extra["attempts"][0]["error"]
    assert len(cohere.calls()) == 1


@pytest.mark.parametrize("failure", [
    Reply(text="one two three", finish_reason="ERROR", error="internal failure", pause_s=0.05),
    Reply(text="one two three", cut_after=4, pause_s=0.05),
], ids=["error-finish", "socket-cut"])
async def test_stream_failure_after_content_ends_with_an_error_event(client, cohere, bedrock, failure):
    cohere.queue(failure)
    stream = await client.chat.completions.create(model=M, messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"bedrock/{CLAUDE}"]})
    seen, _ = await read_until_error(stream)
    assert streamed_text(seen).startswith("one two")  # committed: no fallback, no silent [DONE]
    assert bedrock.calls() == []
