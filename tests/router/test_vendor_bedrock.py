"""Bedrock end to end: the official openai SDK -> the router -> a fake Bedrock Runtime.

The fake (tests/fakes/bedrock_upstream.py) speaks Converse JSON, ConverseStream binary event frames
with valid CRCs and InvokeModel, and validates every body the router sends with botocore's service
model plus Bedrock's conversation rules, answering 400 `ValidationException` to anything malformed
(so a bad translation fails here as it would against AWS). Every response is parsed into the openai
SDK's types. Providers have `max_retries: 0`, so upstream call counts are exact.
"""

from __future__ import annotations

import json

import openai
import pytest

pytest.importorskip("botocore", reason="the fake Bedrock validates with botocore's service model")

from fakes.bedrock_upstream import (
    API_KEY,
    CLAUDE,
    COHERE_EMBED,
    TITAN,
    AwsCreds,
    Drop,
    Embedding,
    Fail,
    FakeBedrock,
    Reply,
    converse_problems,
)
from fakes.cohere_upstream import API_KEY as COHERE_KEY
from fakes.cohere_upstream import MODEL as COMMAND
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

from providers.bedrock_request import JSON_TOOL

M = f"bedrock/{CLAUDE}"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0, "cache_read_per_mtok": 0.1, "cache_write_per_mtok": 1.25}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
async def url(bedrock, cohere, make_router) -> str:
    return await make_router({
        "providers": {"bedrock": bedrock.provider(), "cohere": cohere.provider(), "demo": {"type": "mock"}},
        "pricing": {f"bedrock/{LLAMA}": PRICES}})


@pytest.fixture
def client(url, openai_client) -> openai.AsyncOpenAI:
    return openai_client(url)


async def ask(client, stream: bool, **kwargs) -> tuple[dict, str | None, dict]:
    """`ask_dict` with this module's model and user turn by default."""
    return await ask_dict(client, stream, **{"model": M, "messages": USER, **kwargs})


# -- the fake can fail ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]},
    {"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]},
    {"messages": [{"role": "user", "content": [{"text": "  "}]}]},
    {"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "@@"}}}]}]},
    {"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"max_tokens": 5}},
    {"messages": [{"role": "user", "content": [{"text": "x"}]},
                  {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
                  {"role": "user", "content": [{"text": "forgot the result"}]}],
     "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]}},
    {"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "1"}]}}]}]},
])
def test_converse_validation_catches_what_bedrock_rejects(bad):
    assert converse_problems(bad)


async def test_fake_answers_bad_bodies_and_bad_keys_like_bedrock(bedrock, raw):
    url = f"{bedrock.url}/model/{CLAUDE}/converse"
    good = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    resp = await raw.post(url, json=good, headers={"authorization": f"Bearer {API_KEY}"})
    assert resp.status == 200 and resp.json()["stopReason"] == "end_turn"
    resp = await raw.post(url, json={"messages": [], "system": "x"}, headers={"authorization": f"Bearer {API_KEY}"})
    assert resp.status == 400 and resp.headers["x-amzn-errortype"].startswith("ValidationException")
    resp = await raw.post(url, json=good, headers={"authorization": "Bearer wrong"})
    assert resp.status == 403 and "security token" in resp.json()["message"]
    bedrock.problems.clear()


# -- chat -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_plain_chat(client, bedrock, stream):
    message, finish, extra = await ask(client, stream, max_tokens=50, temperature=0.2)
    assert message["content"] == "Hello from Bedrock." and finish == "stop"
    assert extra["provider"] == "bedrock" and extra["model"] == M and trail(extra) == [(M, 200)]
    [sent] = bedrock.calls()
    assert sent.path == f"/model/{CLAUDE}/{'converse-stream' if stream else 'converse'}"
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.body == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}],
                         "inferenceConfig": {"maxTokens": 50, "temperature": 0.2}}


async def test_system_prompt_and_multi_turn(client, bedrock):
    await ask(client, False, messages=[
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}])
    assert bedrock.calls()[0].body == {"system": [{"text": "Be terse."}], "messages": [
        {"role": "user", "content": [{"text": "2+2?"}]}, {"role": "assistant", "content": [{"text": "4"}]},
        {"role": "user", "content": [{"text": "And 3+3?"}]}]}


async def test_image_from_data_url(client, bedrock):
    await ask(client, False, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert bedrock.calls()[0].body["messages"][0]["content"] == [
        {"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]


@pytest.mark.parametrize("stream", [False, True])
async def test_two_step_tool_loop(client, bedrock, stream):
    bedrock.queue(CLAUDE, Reply(text="Let me check.", tool_calls=[("get_weather", {"city": "Paris"})]),
                  Reply(text="It is 21 degrees in Paris."))
    history = [{"role": "user", "content": "Weather in Paris?"}]
    message, finish, _ = await ask(client, stream, messages=history, tools=TOOLS)
    assert finish == "tool_calls" and message["content"] == "Let me check."
    [call] = message["tool_calls"]
    assert call["id"] == "tooluse_0_get_weather" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    history += [message, {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}]
    answer, finish, extra = await ask(client, stream, messages=history, tools=TOOLS)
    assert answer["content"] == "It is 21 degrees in Paris." and finish == "stop"
    assert extra["billed_usage"]["total_tokens"] == 17
    second = bedrock.calls()[1].body
    assert second["messages"][1:] == [
        {"role": "assistant", "content": [{"text": "Let me check."}, {"toolUse": {
            "toolUseId": "tooluse_0_get_weather", "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_0_get_weather",
                                                     "content": [{"text": '{"temp_c": 21}'}]}}]}]
    assert second["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_tool_calls(client, bedrock, stream):
    bedrock.queue(CLAUDE, Reply(text=None, tool_calls=[("get_weather", {"city": "Paris"}),
                                                        ("get_weather", {"city": "Tokyo"})]))
    history = [{"role": "user", "content": "Paris and Tokyo?"}]
    message, finish, _ = await ask(client, stream, messages=history, tools=TOOLS, tool_choice="required")
    assert finish == "tool_calls" and message["content"] is None
    assert [json.loads(c["function"]["arguments"])["city"] for c in message["tool_calls"]] == ["Paris", "Tokyo"]
    assert bedrock.calls()[0].body["toolConfig"]["toolChoice"] == {"any": {}}
    history += [message, *({"role": "tool", "tool_call_id": c["id"], "content": "sunny"}
                           for c in message["tool_calls"])]
    await ask(client, stream, messages=history, tools=TOOLS)
    results = bedrock.calls()[1].body["messages"][2]
    assert results == {"role": "user", "content": [
        {"toolResult": {"toolUseId": c["id"], "content": [{"text": "sunny"}]}} for c in message["tool_calls"]]}


class Person(BaseModel):
    name: str
    born: int


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_output(client, bedrock, stream):
    bedrock.queue(CLAUDE, Reply(text=None, json_output={"name": "Ada Lovelace", "born": 1815}))
    person, finish = await ask_parsed(client, stream, Person, model=M, messages=USER)
    assert person == Person(name="Ada Lovelace", born=1815) and finish == "stop"
    config = bedrock.calls()[0].body["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": JSON_TOOL}}
    assert config["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"] == {
        "name": {"title": "Name", "type": "string"}, "born": {"title": "Born", "type": "integer"}}


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_sequences(client, bedrock, stream):
    bedrock.queue(CLAUDE, Reply(text="one two", stop_reason="stop_sequence"))
    message, finish, _ = await ask(client, stream, stop=["END", "\n\nHuman:"])
    assert message["content"] == "one two" and finish == "stop"
    assert bedrock.calls()[0].body["inferenceConfig"] == {"stopSequences": ["END", "\n\nHuman:"]}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "cost"), [
    (CLAUDE, (24 * 3 + 2100 * 0.3 + 1200 * 3.75 + 11 * 15) / 1e6),  # genai-prices' Bedrock Claude 3.5 Sonnet
    (LLAMA, (24 * 1.0 + 2100 * 0.1 + 1200 * 1.25 + 11 * 2.0) / 1e6),  # the `pricing:` override
])
async def test_usage_with_cache_read_and_write_is_billed(client, bedrock, stream, model, cost):
    usage = {"inputTokens": 24, "outputTokens": 11, "totalTokens": 3335, "cacheReadInputTokens": 2100,
             "cacheWriteInputTokens": 1200}
    bedrock.queue(model, Reply(usage=usage))
    messages = [{"role": "system", "content": [{"type": "text", "text": "Long policy.",
                                                "cache_control": {"type": "ephemeral"}}]}, *USER]
    reported, extra = await usage_and_extra(client, stream, model=f"bedrock/{model}", messages=messages)
    assert (reported.prompt_tokens, reported.completion_tokens, reported.total_tokens) == (3324, 11, 3335)
    assert reported.prompt_tokens_details.cached_tokens == 2100
    billed = extra["billed_usage"]
    assert {k: billed[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens")} == {
        "prompt_tokens": 3324, "completion_tokens": 11, "total_tokens": 3335, "cached_tokens": 2100}
    assert billed["cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert bedrock.calls()[0].body["system"] == [{"text": "Long policy."}, {"cachePoint": {"type": "default"}}]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter")])
async def test_each_finish_reason(client, bedrock, stream, stop_reason, finish):
    calls = [("get_weather", {"city": "Oslo"})] if stop_reason == "tool_use" else []
    bedrock.queue(CLAUDE, Reply(text="Partial answer", tool_calls=calls, stop_reason=stop_reason))
    _, got, _ = await ask(client, stream, tools=TOOLS)
    assert got == finish


@pytest.mark.parametrize("stop_reason", ["malformed_model_output", "malformed_tool_use"])
async def test_malformed_output_is_a_failure_that_falls_back(client, bedrock, stop_reason):
    bedrock.queue(CLAUDE, Reply(text=None, stop_reason=stop_reason), Reply(text=None, stop_reason=stop_reason))
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model=M, messages=USER)
    assert info.value.status_code == 502 and stop_reason in info.value.message
    message, _, extra = await ask(client, False, extra_body={"fallbacks": ["demo/echo"]})
    assert message["content"] == "Hi" and trail(extra) == [(M, 200), ("demo/echo", 200)]


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "error_type", "message", "client_status", "kind"), [
    (400, "ValidationException", "Malformed input request: extraneous key [foo]", 400, "invalid_request_error"),
    (400, "ValidationException", "Input is too long for requested model.", 400, "invalid_request_error"),
    (403, "AccessDeniedException", "You don't have access to the model with the specified model ID.", 502,
     "upstream_error"),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid.", 502,
     "upstream_error"),
    (404, "ResourceNotFoundException", "Could not resolve the foundation model.", 502, "upstream_error"),
    (408, "ModelTimeoutException", "Model has timed out in processing the request.", 504, "timeout_error"),
    (424, "ModelErrorException", "The model returned an error.", 502, "upstream_error"),
    (429, "ThrottlingException", "Too many requests, please wait before trying again.", 429, "rate_limit_error"),
    (429, "ServiceQuotaExceededException", "Your request exceeds the service quota.", 429, "rate_limit_error"),
    (429, "ModelNotReadyException", "Model is not ready for inference.", 502, "upstream_error"),
    (500, "InternalServerException", "The server encountered an error.", 502, "upstream_error"),
    (503, "ServiceUnavailableException", "Bedrock is unable to process your request.", 502, "upstream_error"),
])
async def test_vendor_error_maps_to_client_status(client, bedrock, stream, status, error_type, message,
                                                  client_status, kind):
    bedrock.queue(CLAUDE, Fail(status, error_type, message, retry_after="3" if status == 429 else None))
    err = await status_error(client, stream, model=M, messages=USER)
    assert_relayed_error(err, client_status, kind, message, [(M, status)], API_KEY,
                         retry_after="3" if client_status == 429 else None)


@pytest.mark.parametrize("stream", [False, True])
async def test_n_2_is_emulated_with_parallel_calls(client, bedrock, stream):
    """Converse has no `n`: the router makes n calls and merges them (README: capability matrix)."""
    bedrock.queue(CLAUDE, Reply(text="first answer"), Reply(text="second answer"))
    if stream:
        chunks = [c async for c in await client.chat.completions.create(
            model=M, messages=USER, n=2, stream=True, stream_options={"include_usage": True})]
        texts = {0: "", 1: ""}
        for chunk in chunks:
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
        usage, extra = chunks[-1].usage, chunks[-1].model_extra["extra_fields"]
    else:
        resp = await client.chat.completions.create(model=M, messages=USER, n=2)
        assert [c.index for c in resp.choices] == [0, 1]
        texts = {c.index: c.message.content for c in resp.choices}
        usage, extra = resp.usage, resp.model_extra["extra_fields"]
    assert sorted(texts.values()) == ["first answer", "second answer"]
    assert usage.total_tokens == 34 and extra["billed_usage"]["total_tokens"] == 34
    assert trail(extra) == [(M, 200), (M, 200)] and len(bedrock.calls()) == 2


# -- embeddings -----------------------------------------------------------------------------------
async def test_embeddings_titan_single_and_cohere_batch(client, bedrock):
    resp = await client.embeddings.create(model=f"bedrock/{TITAN}", input="hello world", dimensions=256)
    assert isinstance(resp, CreateEmbeddingResponse) and len(resp.data) == 1
    assert len(resp.data[0].embedding) == 256 and resp.usage.prompt_tokens == 6
    assert resp.model_extra["extra_fields"]["billed_usage"]["cost_usd"] == pytest.approx(6 * 0.02 / 1e6)
    assert bedrock.calls("invoke")[0].body == {"inputText": "hello world", "dimensions": 256}

    bedrock.queue(COHERE_EMBED, Embedding(dims=3), action="invoke")
    resp = await client.embeddings.create(model=f"bedrock/{COHERE_EMBED}", input=["a", "b"])
    assert [d.index for d in resp.data] == [0, 1] and resp.data[1].embedding == pytest.approx([0.2, 0.21, 0.22])
    assert bedrock.calls("invoke")[1].body == {"texts": ["a", "b"], "input_type": "search_document",
                                               "embedding_types": ["float"]}

    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model=f"bedrock/{TITAN}", input=["a", "b"])
    assert info.value.param == "input" and len(bedrock.calls("invoke")) == 2


async def test_cohere_on_bedrock_embeddings_bill_the_header_token_count(client, bedrock):
    bedrock.queue(COHERE_EMBED, Embedding(tokens=7), action="invoke")
    resp = await client.embeddings.create(model=f"bedrock/{COHERE_EMBED}", input=["a", "b"])
    assert resp.usage.prompt_tokens == 7


# -- fallbacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_fallback_from_bedrock_to_cohere(client, bedrock, cohere, stream):
    bedrock.queue(CLAUDE, Fail(503, "ServiceUnavailableException", "Bedrock is unable to process your request."))
    message, _, extra = await ask(client, stream, extra_body={"fallbacks": [f"cohere/{COMMAND}"]})
    assert message["content"] == "Hello from Cohere." and extra["provider"] == "cohere"
    assert trail(extra) == [(M, 503), (f"cohere/{COMMAND}", 200)]
    assert "unable to process" in extra["attempts"][0]["error"]
    [sent] = cohere.calls("chat")
    assert sent.headers["Authorization"] == f"Bearer {COHERE_KEY}" and sent.body["model"] == COMMAND


@pytest.mark.parametrize(("failure", "stream", "status"), [
    (Fail(429, "ThrottlingException", "Too many requests"), False, 429),
    (Fail(500, "InternalServerException", "boom"), True, 500),
    (Fail(503, "ServiceUnavailableException", "unavailable"), False, 503),
    (Drop(), False, 0),
    (Reply(exception_after=1), True, 200),  # throttlingException frame right after messageStart
    (Reply(exception_after=1, exception=("modelStreamErrorException", "model stream broke")), True, 200),
    (Reply(text=None, tool_calls=[("get_weather", {"city": "Rome"})], exception_after=1,
           exception=("internalServerException", "internal")), True, 200),
    (Reply(cut_after=1), True, 200),  # socket closed after messageStart
    (Reply(cut_after=1, mid_frame=True, abort=False), True, 200),  # clean EOF in the middle of a frame
], ids=["429", "500-stream", "503", "drop", "throttling-frame", "model-stream-error-frame",
        "internal-frame-tools", "cut", "cut-mid-frame"])
async def test_fallback_to_mock_before_content(client, bedrock, failure, stream, status):
    bedrock.queue(CLAUDE, failure)
    message, finish, extra = await ask(client, stream, messages=[{"role": "user", "content": "echo me"}],
                                       extra_body={"fallbacks": ["demo/echo"]})
    assert message["content"] == "echo me" and finish == "stop"
    assert trail(extra) == [(M, status), ("demo/echo", 200)] and extra["attempts"][0]["error"]
    assert len(bedrock.calls()) == 1


@pytest.mark.parametrize("failure", [
    Reply(text="one two three four", exception_after=3, exception=("modelStreamErrorException", "broke"),
          pause_s=0.05),
    Reply(text="one two three four", cut_after=3, pause_s=0.05),
    Reply(text="one two three four", cut_after=3, mid_frame=True, abort=False, pause_s=0.05),
], ids=["exception-frame", "socket-cut", "cut-mid-frame"])
async def test_stream_failure_after_content_ends_with_an_error_event(client, bedrock, cohere, failure):
    bedrock.queue(CLAUDE, failure)
    stream = await client.chat.completions.create(model=M, messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"cohere/{COMMAND}"]})
    seen, _ = await read_until_error(stream)
    assert streamed_text(seen) == "one two "  # committed: no fallback, no silent [DONE]
    assert cohere.calls() == []


# -- SigV4 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("creds_ok", [True, False])
async def test_sigv4_signed_requests_verify_with_botocore(make_router, openai_client, creds_ok):
    creds = AwsCreds()
    fake = await FakeBedrock(api_key=None, aws=creds).start()
    try:
        arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-v1:0"
        options = creds.options() | ({} if creds_ok else {"aws_secret_access_key": "not-the-secret"})
        client = openai_client(await make_router({"providers": {"bedrock": fake.provider(
            options=options, deployments={"sonnet": arn})}}))
        if not creds_ok:
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(model="bedrock/sonnet", messages=USER)
            assert info.value.status_code == 502 and "signature" in info.value.message
            assert "not-the-secret" not in info.value.response.text
            assert fake.sigv4_verified == 0 and len(fake.problems) == 1
            assert fake.problems[0].endswith(": sigv4: signature mismatch")  # after the request line
            return
        message, _, _ = await ask(client, False, model="bedrock/sonnet")
        message, _, _ = await ask(client, True, model="bedrock/sonnet")
        assert message["content"] == "Hello from Bedrock." and fake.sigv4_verified == 2
        assert [r.path.split("/")[2] for r in fake.requests] == [
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-sonnet-4-v1:0"] * 2
        assert all(r.headers["X-Amz-Security-Token"] == creds.token for r in fake.requests)
        assert not fake.problems
    finally:
        await fake.close()
