"""Gemini end to end: the official openai SDK -> the router -> the fake Gemini API (AI Studio).

The fake validates every request the router sends with google-genai's own types and the API's rules,
thought signatures included (see fakes/gemini_upstream.py), and fails the test on exit when one was
invalid; every response is parsed into the openai SDK's types. Providers default to `max_retries: 0`.
"""

from __future__ import annotations

import openai
import pytest
from fakes.anthropic_upstream import Fail as AnthropicFail
from fakes.base import Stream
from fakes.gemini_upstream import BYPASS_SIGNATURE, Fail, Generate, call, retry_info, text, thought
from fakes.openai_upstream import SECRET
from genai_prices import Usage, calc_price
from pydantic import BaseModel
from support.vendor_chat import (
    ask,
    assert_relayed_error,
    calls_of,
    collect,
    extra,
    finish,
    finish_reason,
    read_until_error,
    status_error,
    streamed_text,
    trail,
)
from support.vendor_schemas import sig_bytes

FLASH = "gemini-2.5-flash"
G3 = "gemini-3-flash-preview"  # signatures are mandatory on function calls
M = f"gem/{FLASH}"
M3 = f"gem/{G3}"
CLAUDE = "claude/claude-haiku-4-5"
USER = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}


@pytest.fixture
async def client(gemini, anthropic, make_router, openai_client):
    providers = {"gem": gemini.provider("gem", models=[FLASH, G3]), "backup": gemini.provider("backup"),
                 "claude": anthropic.provider("claude", models=["claude-haiku-4-5"])}
    return openai_client(await make_router({"providers": providers}))


# -- the fake itself ------------------------------------------------------------------------------
async def test_fake_refuses_what_gemini_refuses(gemini, raw):
    url = gemini.base_url("x") + "/v1beta/models/"
    good = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    headers = {"x-goog-api-key": gemini.keys.copy().pop()}
    assert (await raw.post(url + f"{FLASH}:generateContent", json=good, headers=headers)).status == 200
    model_call = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
    answer = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": 1}}}]}
    bad = [(FLASH, {**good, "messages": []}), (FLASH, {"contents": [{"role": "user", "parts": [{"txt": "hi"}]}]}),
           (FLASH, {**good, "generationConfig": {"max_tokens": 5}}),
           (FLASH, {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}),
           (FLASH, {"contents": [*good["contents"], model_call, {**answer, "parts": answer["parts"] * 2}]}),
           (G3, {"contents": [*good["contents"], model_call, answer]}),
           (FLASH, {"contents": [*good["contents"], {"role": "model", "parts": [
               {**model_call["parts"][0], "thoughtSignature": "bm90IGlzc3VlZA=="}]}, answer]})]
    for model, body in bad:
        resp = await raw.post(url + f"{model}:generateContent", json=body, headers=headers)
        assert resp.status == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT", body
    bypass = {"contents": [*good["contents"], {"role": "model", "parts": [
        {**model_call["parts"][0], "thoughtSignature": BYPASS_SIGNATURE}]}, answer]}
    assert (await raw.post(url + f"{G3}:generateContent", json=bypass, headers=headers)).status == 200
    assert (await raw.post(url + f"{FLASH}:streamGenerateContent", json=good, headers=headers)).status == 400
    assert (await raw.post(url + f"{FLASH}:generateContent?key=abc", json=good, headers=headers)).status == 400
    resp = await raw.post(url + f"{FLASH}:generateContent", json=good, headers={"x-goog-api-key": "AIzaWrong"})
    assert resp.status == 400 and resp.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    gemini.queue("x", Generate(parts=[{"txt": "hi"}]))
    await raw.post(url + f"{FLASH}:generateContent", json=good, headers=headers)
    assert len(gemini.problems) == len(bad) + 4
    gemini.problems.clear()


# -- plain chat, turns, images --------------------------------------------------------------------
async def test_plain_chat(gemini, client):
    resp = await client.chat.completions.create(model=M, messages=USER)
    assert resp.choices[0].message.content == "Hello from Gemini." and resp.choices[0].finish_reason == "stop"
    assert resp.id.startswith("chatcmpl-fakeResp") and extra(resp)["model"] == M
    [sent] = gemini.calls("gem")
    assert sent.path == f"/gem/v1beta/models/{FLASH}:generateContent" and not sent.stream
    assert sent.body == {"contents": [{"role": "user", "parts": [{"text": USER[0]["content"]}]}]}


async def test_plain_chat_stream_has_no_done_upstream_but_one_downstream(gemini, client, raw):
    chunks = await collect(client, model=M, messages=USER, stream_options={"include_usage": True})
    assert streamed_text(chunks) == "Hello from Gemini." and finish(chunks) == "stop"
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].usage.total_tokens == 159
    sent = gemini.calls("gem")[0]
    assert sent.stream and sent.query == {"alt": "sse"}
    body = {"model": M, "messages": USER, "stream": True}
    resp = await raw.post(str(client.base_url) + "chat/completions", json=body)
    assert resp.events[-1] == "[DONE]" and resp.events.count("[DONE]") == 1


async def test_multi_turn_with_system_prompt(gemini, client):
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Weather?"}]
    await client.chat.completions.create(model=M, messages=messages, max_tokens=300, temperature=0.5, top_p=0.9)
    body = gemini.calls()[0].body
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert [(c["role"], c["parts"]) for c in body["contents"]] == [
        ("user", [{"text": "Hi"}]), ("model", [{"text": "Hello."}]), ("user", [{"text": "Weather?"}])]
    assert body["generationConfig"] == {"maxOutputTokens": 300, "temperature": 0.5, "topP": 0.9}


async def test_images(gemini, client):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    content = [{"type": "text", "text": "Compare these"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    await client.chat.completions.create(model=M, messages=[{"role": "user", "content": content}])
    parts = gemini.calls()[0].body["contents"][0]["parts"]
    assert parts[1:] == [{"inlineData": {"mimeType": "image/png", "data": png}},
                         {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}]


# -- tools and thought signatures -----------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_two_step_tool_loop_round_trips_the_thought_signature(gemini, client, stream):
    first = call("get_weather", {"city": "Paris"})
    gemini.queue("gem", Generate(parts=[thought("Need the weather tool."), first]),
                 Generate(parts=[text("It is 21 °C in Paris.")]))
    message, reason, _ = await ask(client, stream, model=M3, messages=USER, tools=[WEATHER])
    assert reason == "tool_calls" and message.content in (None, "")
    assert message.model_extra["reasoning_content"] == "Need the weather tool."
    [(call_id, name, args)] = calls_of(message)
    assert (name, args) == ("get_weather", {"city": "Paris"})
    history = [*USER, message.to_dict(), {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 21}'}]
    message, reason, _ = await ask(client, stream, model=M3, messages=history, tools=[WEATHER])
    assert reason == "stop" and message.content == "It is 21 °C in Paris."
    one, two = gemini.bodies("gem")
    decl = one["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["parameters"]["properties"] == {"city": {"type": "STRING"}}
    model_turn, answer = two["contents"][1:]
    assert model_turn["role"] == "model" and model_turn["parts"][0]["functionCall"] == first["functionCall"]
    assert sig_bytes(model_turn["parts"][0]["thoughtSignature"]) == sig_bytes(first["thoughtSignature"]) is not None
    assert answer == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]}


async def test_parallel_calls_stream_equals_non_stream_and_replay(gemini, client):
    parts = [call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "London"}, signed=False)]
    reply = Generate(parts=parts, response_id="sameResponse")  # a stream sends each call in its own event
    gemini.queue("gem", reply, reply)
    params = {"model": M3, "tools": [WEATHER]}
    whole, whole_reason, _ = await ask(client, False, messages=USER, **params)
    streamed, streamed_reason, _ = await ask(client, True, messages=USER, **params)
    assert calls_of(streamed) == calls_of(whole) and whole_reason == streamed_reason == "tool_calls"
    assert [args["city"] for _, _, args in calls_of(whole)] == ["Paris", "London"]
    results = [{"role": "tool", "tool_call_id": c.id, "content": f'"{i}"'} for i, c in enumerate(whole.tool_calls)]
    await client.chat.completions.create(messages=[*USER, whole.to_dict(), *results], **params)
    model_turn, answer = gemini.bodies("gem")[2]["contents"][1:]
    assert [p["functionCall"]["args"]["city"] for p in model_turn["parts"]] == ["Paris", "London"]
    assert sig_bytes(model_turn["parts"][0]["thoughtSignature"]) == sig_bytes(parts[0]["thoughtSignature"]) is not None
    assert "thoughtSignature" not in model_turn["parts"][1]
    assert [p["functionResponse"]["response"] for p in answer["parts"]] == [{"output": "0"}, {"output": "1"}]


# -- output shape ---------------------------------------------------------------------------------
class Weather(BaseModel):
    city: str
    temp_c: int


async def test_json_schema_output(gemini, client):
    gemini.queue("gem", Generate(parts=[text('{"city": "Paris", "temp_c": 21}')]))
    resp = await client.chat.completions.parse(model=M, messages=USER, response_format=Weather)
    assert resp.choices[0].message.parsed == Weather(city="Paris", temp_c=21)
    config = gemini.calls()[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["propertyOrdering"] == ["city", "temp_c"]


async def test_stop_sequences(gemini, client):
    await client.chat.completions.create(model=M, messages=USER, stop=["END", "STOP"])
    assert gemini.calls()[0].body["generationConfig"]["stopSequences"] == ["END", "STOP"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("reason", "with_call", "expected"), [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("PROHIBITED_CONTENT", False, "content_filter"), ("BLOCKLIST", False, "content_filter"),
    ("LANGUAGE", False, "stop"), ("OTHER", False, "stop")])
async def test_finish_reasons(gemini, client, reason, with_call, expected, stream):
    parts = [call("get_weather", {"city": "Oslo"})] if with_call else [text("Partial")]
    gemini.queue("gem", Generate(parts=parts, finish_reason=reason))
    params = {"model": M, "messages": USER, "tools": [WEATHER]}
    assert await finish_reason(client, stream, **params) == expected


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_function_call_is_an_upstream_failure_that_falls_back(gemini, client, stream):
    gemini.queue("gem", Generate(parts=[], finish_reason="MALFORMED_FUNCTION_CALL",
                                 finish_message="Malformed function call: print(default_api.get_weather("))
    params = {"model": M, "messages": USER, "tools": [WEATHER]}
    err = await status_error(client, stream, **params)
    assert err.status_code == 502 and err.body["code"] == "malformed_function_call"
    gemini.queue("gem", Generate(parts=[], finish_reason="MALFORMED_FUNCTION_CALL"))
    message, _, fields = await ask(client, stream, extra_body={"fallbacks": [f"backup/{FLASH}"]}, **params)
    assert message.content == "Hello from Gemini." and trail(fields) == [(M, 200), (f"backup/{FLASH}", 200)]


async def test_blocked_prompt_is_a_caller_error_never_fallen_back_on(gemini, client):
    gemini.queue("gem", Generate(block_reason="SAFETY"))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=M, messages=USER, extra_body={"fallbacks": [f"backup/{FLASH}"]})
    assert info.value.body["code"] == "content_filter" and gemini.calls("backup") == []


# -- accounting -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_billed_usage_is_the_vendors_and_priced(gemini, client, stream):
    usage = {"promptTokenCount": 1200, "cachedContentTokenCount": 1024, "candidatesTokenCount": 16,
             "thoughtsTokenCount": 34, "totalTokenCount": 1250}
    gemini.queue("gem", Generate(usage=usage))
    _, _, fields = await ask(client, stream, model=M, messages=USER)
    billed = fields["billed_usage"]
    # promptTokenCount already includes the cached tokens; thoughts are billed as output
    assert (billed["prompt_tokens"], billed["completion_tokens"], billed["total_tokens"]) == (1200, 50, 1250)
    assert billed["cached_tokens"] == 1024 and "estimated" not in billed
    price = calc_price(Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=50), model_ref=FLASH,
                       provider_id="google")
    assert isinstance(billed["cost_usd"], float)
    assert billed["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-6)


# -- errors ---------------------------------------------------------------------------------------
KEY_INVALID = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
ERRORS = [  # (vendor reply, client status, client error type)
    (Fail(400, message="Invalid value at 'generation_config.temperature'"), 400, "invalid_request_error"),
    (Fail(400, message="The input token count (1200000) exceeds the maximum number of tokens allowed"), 400,
     "invalid_request_error"),
    (Fail(400, message="API key not valid.", details=KEY_INVALID), 502, "upstream_error"),
    (Fail(403, message="Permission denied on resource"), 502, "upstream_error"),
    (Fail(404, message="models/gemini-9 is not found"), 502, "upstream_error"),
    (Fail(429, message="You exceeded your current quota", details=[retry_info(37)]), 429, "rate_limit_error"),
    (Fail(500, message="An internal error has occurred"), 502, "upstream_error"),
    (Fail(503, message="The model is overloaded."), 502, "upstream_error"),
    (Fail(504, message="Deadline exceeded"), 504, "timeout_error")]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("reply", "status", "etype"), ERRORS, ids=[f"{e[0].status}-{i}" for i, e in enumerate(ERRORS)])
async def test_vendor_error_status_maps_to_client_status(gemini, client, reply, status, etype, stream):
    gemini.queue("gem", reply)
    err = await status_error(client, stream, model=M, messages=USER)
    assert_relayed_error(err, status, etype, reply.message, [(M, reply.status)], SECRET,
                         retry_after="37" if status == 429 else None)  # 37: from google.rpc.RetryInfo


@pytest.mark.parametrize(("breakage", "status"), [
    ({"error_after": 0}, 503), ({"stream": Stream(cut_after=0)}, 200),
    ({"stream": Stream(cut_after=0, abort=False)}, 200)],
    ids=["error-event", "cut", "empty-body"])
async def test_stream_broken_before_content_falls_back(gemini, client, breakage, status):
    """`status`: the error event's own code, else the HTTP status of the broken 200."""
    gemini.queue("gem", Generate(**breakage))
    chunks = await collect(client, model=M, messages=USER, extra_body={"fallbacks": [f"backup/{FLASH}"]})
    assert streamed_text(chunks) == "Hello from Gemini." and extra(chunks[0])["provider"] == "backup"
    assert trail(extra(chunks[-1])) == [(M, status), (f"backup/{FLASH}", 200)]


@pytest.mark.parametrize("breakage", [{"error_after": 2, "stream": Stream(chunk_delay_s=0.02)},
                                      {"stream": Stream(cut_after=2, chunk_delay_s=0.02)}], ids=["error", "cut"])
async def test_stream_broken_after_content_ends_with_an_error(gemini, client, breakage):
    """Paced, so the router has relayed content before the failure arrives: committed, no fallback."""
    gemini.queue("gem", Generate(parts=[text("Hello there, my friend")], **breakage))
    stream = await client.chat.completions.create(model=M, messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"backup/{FLASH}"]})
    seen, _ = await read_until_error(stream)
    assert streamed_text(seen) and streamed_text(seen) != "Hello there, my friend"
    assert gemini.calls("backup") == []


# -- routing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("failure", [Fail(503), Fail(429, details=[retry_info(30)])], ids=["503", "429"])
async def test_fallback_to_anthropic(gemini, anthropic, client, failure, stream):
    gemini.queue("gem", failure)
    message, reason, fields = await ask(client, stream, model=M, messages=USER, extra_body={"fallbacks": [CLAUDE]})
    assert message.content == "Hello from Claude." and reason == "stop"
    assert fields["provider"] == "claude" and trail(fields) == [(M, failure.status), (CLAUDE, 200)]
    assert len(anthropic.calls("claude")) == 1


async def test_anthropic_falls_back_to_gemini_3_mid_tool_loop(gemini, anthropic, client):
    """Gemini 3 needs a signature on calls it did not make: the router sends Google's bypass value."""
    gemini.queue("gem", Generate(parts=[call("get_weather", {"city": "Paris"})]))
    first = (await client.chat.completions.create(model=M3, messages=USER, tools=[WEATHER])).choices[0].message
    anthropic.queue("claude", AnthropicFail(529))
    # the call id Gemini's signature rides in is dropped: as if another vendor had made the call
    message = {**first.to_dict(), "tool_calls": [{**first.tool_calls[0].to_dict(), "id": "toolu_elsewhere"}]}
    history = [*USER, message, {"role": "tool", "tool_call_id": "toolu_elsewhere", "content": "21"}]
    resp = await client.chat.completions.create(model=CLAUDE, messages=history, tools=[WEATHER],
                                                extra_body={"fallbacks": [M3]})
    assert resp.choices[0].message.content == "Hello from Gemini." and trail(extra(resp)) == [(CLAUDE, 529), (M3, 200)]
    assert gemini.bodies("gem")[1]["contents"][1]["parts"][0]["thoughtSignature"] == BYPASS_SIGNATURE


async def test_models_lists_declared_gemini_models(client):
    ids = [m.id async for m in client.models.list()]
    assert {f"gem/{FLASH}", f"gem/{G3}", CLAUDE} <= set(ids)
    resp = await client.chat.completions.create(model=G3, messages=USER)  # bare name, one owner
    assert extra(resp)["model"] == M3


async def test_n_2_is_native_candidate_count(gemini, client):
    resp = await client.chat.completions.create(model=M, messages=USER, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert {c.message.content for c in resp.choices} == {"Hello from Gemini."}
    [sent] = gemini.calls()
    assert sent.body["generationConfig"] == {"candidateCount": 2}
