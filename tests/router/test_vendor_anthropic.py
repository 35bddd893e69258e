"""Anthropic end to end: the official openai SDK -> the router -> the fake Anthropic Messages API.

The fake validates every request the router sends with the anthropic SDK's own param types and the
API's rules (see fakes/anthropic_upstream.py) and fails the test on exit when one was invalid; every
response is parsed into the openai SDK's types. Providers default to `max_retries: 0`.
"""

from __future__ import annotations

import json

import openai
import pytest
from fakes.anthropic_upstream import (
    DEFAULT_USAGE,
    Fail,
    Message,
    redacted,
    server_tool_use,
    text,
    thinking,
    tool_use,
    web_search_result,
)
from fakes.base import Stream
from fakes.gemini_upstream import Fail as GeminiFail
from fakes.openai_upstream import SECRET
from genai_prices import Usage, calc_price
from pydantic import BaseModel
from support.vendor_chat import (
    ask,
    ask_dict,
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

HAIKU = "claude-haiku-4-5"
M = f"claude/{HAIKU}"
GEM = "gem/gemini-2.5-flash"
USER = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}}}}
NOW = {"type": "function", "function": {"name": "now", "description": "The current time",
                                        "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
async def client(anthropic, gemini, make_router, openai_client):
    providers = {"claude": anthropic.provider("claude", models=[HAIKU, "claude-sonnet-4-5"]),
                 "backup": anthropic.provider("backup"),
                 "tooly": anthropic.provider("tooly", options={"structured_output": "tool"}),
                 "gem": gemini.provider("gem", models=["gemini-2.5-flash"])}
    return openai_client(await make_router({"providers": providers}))


# -- the fake itself ------------------------------------------------------------------------------
async def test_fake_refuses_what_anthropic_refuses(anthropic, raw):
    url = anthropic.base_url("x") + "/v1/messages"
    good = {"model": HAIKU, "max_tokens": 10, "messages": USER}
    headers = {"x-api-key": anthropic.keys.copy().pop(), "anthropic-version": "2023-06-01"}
    assert (await raw.post(url, json=good, headers=headers)).status == 200
    bad_bodies = [{**good, "max_tokens": None}, {**good, "messages": [{"role": "robot", "content": "x"}]},
                  {**good, "n": 2}, {**good, "temperature": 1.5},
                  {**good, "messages": [*USER, {"role": "user", "content": [
                      {"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}]}]},
                  {**good, "messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]}]
    for body in bad_bodies:
        resp = await raw.post(url, json=body, headers=headers)
        assert resp.status == 400 and resp.json()["error"]["type"] == "invalid_request_error", body
    assert (await raw.post(url, json=good, headers={**headers, "x-api-key": "wrong"})).status == 401
    assert (await raw.post(url, json=good, headers={"x-api-key": headers["x-api-key"]})).status == 400
    anthropic.queue("x", Message(content=[{"type": "text"}]))
    await raw.post(url, json=good, headers=headers)
    assert len(anthropic.problems) == len(bad_bodies) + 3
    anthropic.problems.clear()


# -- plain chat, turns, images --------------------------------------------------------------------
async def test_plain_chat(anthropic, client):
    resp = await client.chat.completions.create(model=M, messages=USER)
    assert resp.choices[0].message.content == "Hello from Claude." and resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.role == "assistant" and resp.id.startswith("msg_")
    assert extra(resp)["provider"] == "claude" and extra(resp)["model"] == M
    [sent] = anthropic.calls("claude")
    assert sent.headers["anthropic-version"] == "2023-06-01" and sent.path == "/claude/v1/messages"
    assert sent.body == {"model": HAIKU, "max_tokens": 4096,
                         "messages": [{"role": "user", "content": [{"type": "text", "text": USER[0]["content"]}]}]}


async def test_plain_chat_stream(anthropic, client):
    chunks = await collect(client, model=M, messages=USER, stream_options={"include_usage": True})
    assert streamed_text(chunks) == "Hello from Claude." and finish(chunks) == "stop"
    assert chunks[0].choices[0].delta.role == "assistant" and extra(chunks[0])["provider"] == "claude"
    assert chunks[-1].usage.prompt_tokens == 151 and chunks[-1].usage.completion_tokens == 9
    assert anthropic.calls()[0].body["stream"] is True


async def test_multi_turn_with_system_prompt(anthropic, client):
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "developer", "content": "No emoji."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}]
    resp = await client.chat.completions.create(model=M, messages=messages, max_tokens=300, temperature=0.5,
                                                top_p=0.9, user="u-42")
    assert resp.choices[0].message.content == "Hello from Claude."
    body = anthropic.calls()[0].body
    assert body["system"] == "Be terse.\n\nNo emoji."
    assert [(t["role"], [b["text"] for b in t["content"]]) for t in body["messages"]] == [
        ("user", ["Hi"]), ("assistant", ["Hello."]), ("user", ["Weather?"])]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (300, 0.5, 0.9)
    assert body["metadata"] == {"user_id": "u-42"}


async def test_images(anthropic, client):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    content = [{"type": "text", "text": "Compare these"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]
    await client.chat.completions.create(model=M, messages=[{"role": "user", "content": content}])
    blocks = anthropic.calls()[0].body["messages"][0]["content"]
    assert blocks[1:] == [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                          {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


# -- tools ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_two_step_tool_loop(anthropic, client, stream):
    anthropic.queue("claude", Message(content=[text("Let me check."), tool_use("get_weather", {"city": "Paris"})]),
                    Message(content=[text("It is 21 °C in Paris.")]))
    message, reason, _ = await ask(client, stream, model=M, messages=USER, tools=[WEATHER])
    assert reason == "tool_calls" and message.content == "Let me check."
    [(call_id, name, args)] = calls_of(message)
    assert name == "get_weather" and args == {"city": "Paris"} and call_id.startswith("toolu_")
    history = [*USER, message.to_dict(), {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 21}'}]
    message, reason, _ = await ask(client, stream, model=M, messages=history, tools=[WEATHER])
    assert reason == "stop" and message.content == "It is 21 °C in Paris."
    first, second = anthropic.bodies("claude")
    assert first["tools"] == [{"name": "get_weather", "description": "Current weather in a city",
                               "input_schema": WEATHER["function"]["parameters"]}]
    assert second["messages"][1] == {"role": "assistant", "content": [
        text("Let me check."), {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}]}
    assert second["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call_id, "content": '{"temp_c": 21}'}]}


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_loop_with_thinking_replays_signed_blocks(anthropic, client, stream):
    blocks = [thinking("The user wants Paris weather."), redacted()]
    anthropic.queue("claude", Message(content=[*blocks, tool_use("get_weather", {"city": "Paris"})]),
                    Message(content=[thinking("21 °C, done."), text("21 °C.")]))
    params = {"model": M, "tools": [WEATHER], "reasoning_effort": "low"}
    got, reason, _ = await ask(client, stream, messages=USER, **params)
    message = got.to_dict()  # exactly what the client got, sent back as is
    assert reason == "tool_calls" and message["reasoning_content"] == "The user wants Paris weather."
    assert message["thinking_blocks"] == blocks
    history = [*USER, message, {"role": "tool", "tool_call_id": got.tool_calls[0].id, "content": "21"}]
    got, reason, _ = await ask(client, stream, messages=history, **params)
    assert got.content == "21 °C." and reason == "stop"
    first, second = anthropic.bodies("claude")
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048} and first["max_tokens"] > 2048
    assert second["messages"][1]["content"][:2] == blocks  # replayed first, signatures intact


async def test_parallel_tool_calls_stream_equals_non_stream(anthropic, client):
    reply = Message(content=[tool_use("get_weather", {"city": "Paris"}), tool_use("get_time", {"zone": "CET"})],
                    pieces=4)
    anthropic.queue("claude", reply, reply)
    params = {"model": M, "messages": USER, "tools": [WEATHER, TIME], "parallel_tool_calls": False}
    whole, whole_reason, _ = await ask(client, False, **params)
    streamed, streamed_reason, _ = await ask(client, True, **params)
    assert calls_of(streamed) == calls_of(whole)
    assert [name for _, name, _ in calls_of(whole)] == ["get_weather", "get_time"]
    assert whole_reason == streamed_reason == "tool_calls"
    assert all(b["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
               for b in anthropic.bodies())


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_without_parameters_has_empty_object_arguments(anthropic, client, stream):
    """Anthropic streams a parameterless call's input as one empty `input_json_delta`: the client
    still gets `"{}"`, which it can parse and send back in the next turn."""
    anthropic.queue("claude", Message(content=[tool_use("now", {})]), Message(content=[text("It is noon.")]))
    message, reason, _ = await ask(client, stream, model=M, messages=USER, tools=[NOW])
    [call] = message.tool_calls
    assert reason == "tool_calls" and call.function.arguments == "{}" and json.loads(call.function.arguments) == {}
    history = [*USER, message.to_dict(), {"role": "tool", "tool_call_id": call.id, "content": "12:00"}]
    message, _, _ = await ask(client, stream, model=M, messages=history, tools=[NOW])
    assert message.content == "It is noon."
    assert anthropic.bodies("claude")[1]["messages"][1]["content"] == [
        {"type": "tool_use", "id": call.id, "name": "now", "input": {}}]


@pytest.mark.parametrize("stream", [False, True])
async def test_server_tool_blocks_never_become_tool_calls(anthropic, client, stream):
    search = server_tool_use("web_search", {"query": "weather Paris"})
    anthropic.queue("claude", Message(content=[
        text("Searching."), search, web_search_result(search["id"], ("https://weather.example/paris", "Paris")),
        text(" Sunny, 24 °C.")], usage={**DEFAULT_USAGE, "server_tool_use": {
            "web_search_requests": 1, "web_fetch_requests": 0}}))
    message, reason, _ = await ask_dict(client, stream, model=M, messages=USER)
    assert (message["content"], reason) == ("Searching. Sunny, 24 °C.", "stop")
    assert not message.get("tool_calls")


async def test_request_enabling_a_server_tool_is_refused(anthropic, client):
    err = await status_error(client, False, model=M, messages=USER,
                             tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}])
    assert err.status_code == 400 and "web_search_20250305" in err.body["message"]
    assert anthropic.calls() == []


# -- output shape ---------------------------------------------------------------------------------
class Weather(BaseModel):
    city: str
    temp_c: int


@pytest.mark.parametrize("upstream", ["claude", "tooly"], ids=["native", "forced-tool"])
async def test_json_schema_output(anthropic, client, upstream):
    answer = {"city": "Paris", "temp_c": 21}
    content = [text(json.dumps(answer))] if upstream == "claude" else [tool_use("json_output__Weather", answer)]
    anthropic.queue(upstream, Message(content=content))
    resp = await client.chat.completions.parse(model=f"{upstream}/{HAIKU}", messages=USER, response_format=Weather)
    assert resp.choices[0].message.parsed == Weather(**answer) and resp.choices[0].finish_reason == "stop"
    body = anthropic.calls(upstream)[0].body
    if upstream == "claude":
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["output_config"]["format"]["schema"]["properties"].keys() == {"city", "temp_c"}
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "json_output__Weather"}


async def test_stop_sequences(anthropic, client):
    anthropic.queue("claude", Message(content=[text("One, two")], stop_reason="stop_sequence", stop_sequence="END"))
    resp = await client.chat.completions.create(model=M, messages=USER, stop=["END", "STOP"])
    assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.content == "One, two"
    assert anthropic.calls()[0].body["stop_sequences"] == ["END", "STOP"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("stop_reason", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")])
async def test_finish_reasons(anthropic, client, stop_reason, expected, stream):
    content = [tool_use("get_weather", {"city": "Oslo"})] if stop_reason == "tool_use" else [text("Partial")]
    anthropic.queue("claude", Message(content=content, stop_reason=stop_reason))
    params = {"model": M, "messages": USER, "tools": [WEATHER]}
    assert await finish_reason(client, stream, **params) == expected


# -- accounting -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_billed_usage_is_the_vendors_and_priced(anthropic, client, stream):
    usage = {"input_tokens": 1200, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2048,
             "output_tokens": 77}
    anthropic.queue("claude", Message(usage=usage))
    _, _, fields = await ask(client, stream, model=M, messages=USER)
    billed = fields["billed_usage"]
    prompt = 1200 + 300 + 2048  # Anthropic's input_tokens excludes cache reads and writes
    assert (billed["prompt_tokens"], billed["completion_tokens"], billed["total_tokens"]) == (prompt, 77, prompt + 77)
    assert billed["cached_tokens"] == 2048 and "estimated" not in billed
    price = calc_price(Usage(input_tokens=prompt, cache_read_tokens=2048, cache_write_tokens=300, output_tokens=77),
                       model_ref=HAIKU, provider_id="anthropic")
    assert isinstance(billed["cost_usd"], float)
    assert billed["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-6)


# -- errors ---------------------------------------------------------------------------------------
ERRORS = [  # (vendor reply, client status, client error type)
    (Fail(400, message="temperature: Input should be less than or equal to 1"), 400, "invalid_request_error"),
    (Fail(400, message="prompt is too long: 215312 tokens > 200000 maximum"), 400, "invalid_request_error"),
    (Fail(401, message="invalid x-api-key"), 502, "upstream_error"),
    (Fail(402, message="Your credit balance is too low"), 502, "upstream_error"),
    (Fail(403), 502, "upstream_error"), (Fail(404, message="model: claude-nope"), 502, "upstream_error"),
    (Fail(413), 413, "invalid_request_error"), (Fail(429, retry_after="17"), 429, "rate_limit_error"),
    (Fail(500), 502, "upstream_error"), (Fail(503), 502, "upstream_error"), (Fail(504), 504, "timeout_error"),
    (Fail(529, message="Overloaded"), 502, "upstream_error")]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("reply", "status", "etype"), ERRORS, ids=[f"{e[0].status}-{i}" for i, e in enumerate(ERRORS)])
async def test_vendor_error_status_maps_to_client_status(anthropic, client, reply, status, etype, stream):
    anthropic.queue("claude", reply)
    err = await status_error(client, stream, model=M, messages=USER)
    assert_relayed_error(err, status, etype, reply.message or "fake", [(M, reply.status)], SECRET,
                         retry_after="17" if status == 429 else None)
    if "temperature" in (reply.message or ""):
        assert err.body["param"] == "temperature"


async def test_wrong_key_is_the_routers_problem_not_the_callers(anthropic, make_router, openai_client):
    url = await make_router({"providers": {"claude": anthropic.provider("claude", keys=[{"value": "sk-wrong"}])}})
    with pytest.raises(openai.APIStatusError) as info:
        await openai_client(url).chat.completions.create(model=M, messages=USER)
    assert info.value.status_code == 502 and "invalid x-api-key" in info.value.body["message"]
    assert "sk-wrong" not in info.value.response.text
    anthropic.problems.clear()  # the fake recorded the wrong key, as it should


@pytest.mark.parametrize("breakage", [{"error_after": 2}, {"stream": Stream(cut_after=3)}], ids=["error", "cut"])
async def test_stream_broken_before_content_falls_back(anthropic, client, breakage):
    anthropic.queue("claude", Message(**breakage))
    chunks = await collect(client, model=M, messages=USER, extra_body={"fallbacks": [f"backup/{HAIKU}"]})
    assert streamed_text(chunks) == "Hello from Claude." and extra(chunks[0])["provider"] == "backup"
    assert trail(extra(chunks[-1])) == [(M, 200), (f"backup/{HAIKU}", 200)]


@pytest.mark.parametrize("breakage", [{"error_after": 5, "stream": Stream(chunk_delay_s=0.02)},
                                      {"stream": Stream(cut_after=5, chunk_delay_s=0.02)}], ids=["error", "cut"])
async def test_stream_broken_after_content_ends_with_an_error(anthropic, client, breakage):
    """Paced, so the router has relayed content before the failure arrives: committed, no fallback."""
    anthropic.queue("claude", Message(content=[text("Hello there, friend")], **breakage))
    stream = await client.chat.completions.create(model=M, messages=USER, stream=True,
                                                  extra_body={"fallbacks": [f"backup/{HAIKU}"]})
    seen, error = await read_until_error(stream)
    assert streamed_text(seen) and streamed_text(seen) != "Hello there, friend"
    if "error_after" in breakage:
        assert "Overloaded" in str(error)
    assert anthropic.calls("backup") == []


# -- routing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [503, 529])
async def test_fallback_to_gemini(anthropic, gemini, client, status, stream):
    anthropic.queue("claude", Fail(status))
    params = {"model": M, "messages": USER, "extra_body": {"fallbacks": [GEM]}}
    message, reason, fields = await ask(client, stream, **params)
    assert message.content == "Hello from Gemini." and reason == "stop"
    assert fields["provider"] == "gem" and trail(fields) == [(M, status), (GEM, 200)]
    assert len(gemini.calls("gem")) == 1 and gemini.calls("gem")[0].model == "gemini-2.5-flash"


async def test_gemini_falls_back_to_anthropic_mid_tool_loop(anthropic, gemini, client):
    """A tool history that Gemini did not produce still reaches Anthropic in Anthropic's shape."""
    anthropic.queue("claude", Message(content=[tool_use("get_weather", {"city": "Paris"})]))
    first = (await client.chat.completions.create(model=M, messages=USER, tools=[WEATHER])).choices[0].message
    gemini.queue("gem", GeminiFail(503))
    history = [*USER, first.to_dict(), {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "21"}]
    resp = await client.chat.completions.create(model=GEM, messages=history, tools=[WEATHER],
                                                extra_body={"fallbacks": [M]})
    assert resp.choices[0].message.content == "Hello from Claude."
    assert trail(extra(resp)) == [(GEM, 503), (M, 200)]


async def test_models_lists_declared_anthropic_models(client):
    ids = [m.id async for m in client.models.list()]
    assert {"claude/claude-haiku-4-5", "claude/claude-sonnet-4-5", "gem/gemini-2.5-flash"} <= set(ids)
    resp = await client.chat.completions.create(model="claude-sonnet-4-5", messages=USER)  # bare, one owner
    assert extra(resp)["model"] == "claude/claude-sonnet-4-5"


async def test_n_2_is_emulated_with_one_request_per_choice(anthropic, client):
    """Anthropic has no `n`: the router asks twice (it answered a 400 naming `n` before it emulated it)."""
    anthropic.queue("claude", Message(content=[text("First.")]), Message(content=[text("Second.")]))
    resp = await client.chat.completions.create(model=M, messages=USER, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert sorted(c.message.content for c in resp.choices) == ["First.", "Second."]
    assert len(anthropic.calls()) == 2 and all("n" not in b for b in anthropic.bodies())
    assert resp.usage.prompt_tokens == extra(resp)["billed_usage"]["prompt_tokens"] == 2 * 151
