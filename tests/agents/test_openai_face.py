"""The OpenAI face of agents (`model: "agent:<id>"`, `x-agent-id`), driven by the official openai SDK.

Every step goes through the routing core to the fake vendor, so each test also sees what the
router sent upstream (checked against the openai SDK's param types).
"""

from __future__ import annotations

import openai
import orjson
import pytest
from agent_kit import (
    ANSWER,
    SUMMED_USAGE,
    bodies,
    call,
    check_steps_trace,
    check_three_step_upstream,
    config,
    script_three_steps,
    tool_results,
)
from fakes.openai_upstream import Reply
from openai.types.chat import ChatCompletion

USER = [{"role": "user", "content": "What is 6*7+1?"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": CITY}}]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_two_tools_three_steps_with_a_fallback_in_the_middle(fake_openai, make_router, openai_client,
                                                                   stream: bool) -> None:
    script_three_steps(fake_openai)
    client = openai_client(await make_router(config(fake_openai)))
    if stream:
        chunks = [c async for c in await client.chat.completions.create(
            model="agent:helper", messages=USER, stream=True, stream_options={"include_usage": True})]
        assert len({c.id for c in chunks}) == 1 and all(c.model == "agent:helper" for c in chunks)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[0].model_extra["extra_fields"] == {"provider": "up1", "model": "up1/gpt-4o-mini"}
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["stop"]
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)  # server tools stay inside
        usage, extra = chunks[-1].usage, chunks[-1].model_extra["extra_fields"]
        assert chunks[-1].choices == []
    else:
        completion = await client.chat.completions.create(model="agent:helper", messages=USER)
        assert isinstance(completion, ChatCompletion) and completion.model == "agent:helper"
        assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.tool_calls is None
        content, usage, extra = (completion.choices[0].message.content, completion.usage,
                                 completion.model_extra["extra_fields"])
    assert content == ANSWER
    assert usage.model_dump(include=set(SUMMED_USAGE)) == SUMMED_USAGE
    assert extra["request_type"] == "agent" and extra["agent"] == "helper"
    assert extra["model_requested"] == "agent:helper"
    assert extra["session_id"] is None and extra["stop_reason"] == "answer"
    assert extra["billed_usage"]["total_tokens"] == 51 and extra["billed_usage"]["cached_tokens"] == 12
    assert (extra["provider"], extra["model"]) == ("up1", "up1/gpt-4o-mini")
    check_steps_trace(extra["steps"])
    check_three_step_upstream(fake_openai, stream)


async def test_client_tools_come_back_as_tool_calls_and_the_run_resumes(fake_openai, make_router,
                                                                       openai_client) -> None:
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("get_weather", city="Paris"),
                                                          call("calculator", expression="1+1")]),
                      Reply(text="It is sunny in Paris."))
    client = openai_client(await make_router(config(fake_openai)))
    first = await client.chat.completions.create(model="agent:helper", messages=USER, tools=WEATHER)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]  # the server call is not run
    assert first.model_extra["extra_fields"]["stop_reason"] == "client_tools"
    sent = bodies(fake_openai)[0]
    assert {t["function"]["name"] for t in sent["tools"]} == {"calculator", "current_time", "get_weather"}
    tool_call = choice.message.tool_calls[0]
    follow_up = [*USER, choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": tool_call.id, "content": '{"sky": "sunny"}'}]
    second = await client.chat.completions.create(model="agent:helper", messages=follow_up, tools=WEATHER)
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert tool_results(bodies(fake_openai)[1]) == [{"sky": "sunny"}]


async def test_agent_header_picks_the_agent_and_model_overrides_its_llm(fake_openai, make_router, raw) -> None:
    base = await make_router(config(fake_openai))
    resp = await raw.post(f"{base}/v1/chat/completions", headers={"x-agent-id": "helper"},
                          json={"model": "up2/gpt-4o-mini", "messages": USER})
    assert resp.status == 200, resp.body
    assert [r.upstream for r in fake_openai.calls()] == ["up2"]
    assert resp.json()["model"] == "up2/gpt-4o-mini" and resp.json()["extra_fields"]["agent"] == "helper"
    for model, status, code in (("agent:nobody", 404, "agent_not_found"), ("agent", 200, None)):
        resp = await raw.post(f"{base}/v1/chat/completions", json={"model": model, "messages": USER})
        assert resp.status == status, resp.body
        if code:
            assert resp.error["code"] == code
    resp = await raw.post(f"{base}/v1/chat/completions", json={"model": "agent:helper", "messages": USER, "n": 2})
    assert resp.status == 400 and resp.error["param"] == "n"


async def test_max_steps_forces_a_final_answer(fake_openai, make_router, raw) -> None:
    fake_openai.queue("up1", *[Reply(text=None, tool_calls=[call("calculator", expression=f"{i}+1")])
                               for i in range(3)])
    base = await make_router(config(fake_openai))
    resp = await raw.post(f"{base}/v1/chat/completions",
                          json={"model": "agent:helper", "messages": USER, "max_steps": 2})
    assert resp.status == 200, resp.body
    sent = bodies(fake_openai)
    assert len(sent) == 2 and "tool_choice" not in sent[0] and sent[1]["tool_choice"] == "none"
    body = resp.json()
    assert body["extra_fields"]["stop_reason"] == "max_steps" and len(body["extra_fields"]["steps"]) == 2
    assert body["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in body["choices"][0]["message"]
    for bad in (0, 21, "3"):
        resp = await raw.post(f"{base}/v1/chat/completions", json={"model": "agent:helper", "messages": USER,
                                                                   "max_steps": bad})
        assert resp.status == 400 and resp.error["param"] == "max_steps"


async def test_loop_guard_stops_repeated_identical_calls(fake_openai, make_router, raw) -> None:
    same = call("calculator", expression="2+2")
    fake_openai.queue("up1", *[Reply(text=None, tool_calls=[same]) for _ in range(3)], Reply(text="4."))
    base = await make_router(config(fake_openai, settings={"max_identical_calls": 2}))
    resp = await raw.post(f"{base}/v1/chat/completions", json={"model": "agent:helper", "messages": USER})
    assert resp.status == 200, resp.body
    extra = resp.json()["extra_fields"]
    assert extra["stop_reason"] == "loop_guard"
    errors = [t["error"] for s in extra["steps"] for t in s["tools"]]
    assert errors[:2] == [None, None] and "loop guard" in errors[2]
    sent = bodies(fake_openai)
    assert len(sent) == 4 and sent[3]["tool_choice"] == "none"
    assert "loop guard" in tool_results(sent[3])[0]["error"]
    assert resp.json()["choices"][0]["message"]["content"] == "4."


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_sessions_remember_across_calls(fake_openai, make_router, openai_client, request, backend) -> None:
    agents = {"helper": {"model": "smart", "instructions": "Remember.", "history": "session"}}
    extra = {"redis": {"url": request.getfixturevalue("redis_url")}} if backend == "redis" else {}
    fake_openai.queue("up1", Reply(text="Nice to meet you, Ada."), Reply(text="Your name is Ada."))
    client = openai_client(await make_router(config(fake_openai, agents=agents, **extra)))
    first = await client.chat.completions.with_raw_response.create(
        model="agent:helper", messages=[{"role": "user", "content": "I am Ada."}], extra_body={"session_id": "s-1"})
    assert first.headers["x-session-id"] == "s-1"
    second = await client.chat.completions.with_raw_response.create(
        model="agent:helper", messages=[{"role": "user", "content": "Who am I?"}],
        extra_headers={"x-session-id": "s-1"})
    assert second.parse().choices[0].message.content == "Your name is Ada."
    sent = [[(m["role"], m["content"]) for m in b["messages"]] for b in bodies(fake_openai)]
    assert sent[1] == [("system", "Remember."), ("user", "I am Ada."), ("assistant", "Nice to meet you, Ada."),
                       ("user", "Who am I?")]
    other = await client.chat.completions.create(model="agent:helper", messages=[{"role": "user", "content": "Hi"}],
                                                 extra_headers={"x-session-id": "s-2"})
    assert other.model_extra["extra_fields"]["session_id"] == "s-2"
    assert len(bodies(fake_openai)[2]["messages"]) == 2  # a new session starts empty


async def test_user_derives_a_session_and_no_user_is_stateless(fake_openai, make_router, raw) -> None:
    agents = {"helper": {"model": "smart", "history": "session"}}
    base = await make_router(config(fake_openai, agents=agents))
    url = f"{base}/v1/chat/completions"
    first = await raw.post(url, json={"model": "agent:helper", "messages": USER, "user": "u-42"})
    again = await raw.post(url, json={"model": "agent:helper", "messages": USER, "user": "u-42"})
    assert first.headers["x-session-id"] == again.headers["x-session-id"]
    assert len(bodies(fake_openai)[1]["messages"]) == 3  # the stored turn (no instructions), then the new message
    plain = await raw.post(url, json={"model": "agent:helper", "messages": USER})
    assert "x-session-id" not in plain.headers and plain.json()["extra_fields"]["session_id"] is None
    bad = await raw.post(url, json={"model": "agent:helper", "messages": USER}, headers={"x-session-id": "a b"})
    assert bad.status == 400 and bad.error["param"] == "x-session-id"


async def test_limits_timeouts_switches_and_authorisation(fake_openai, make_router, raw) -> None:
    settings = {"rate_limits": {"per_ip": "2/minute"}, "non_stream_timeout_s": 0.3}
    base = await make_router(config(fake_openai, settings=settings))
    url = f"{base}/v1/chat/completions"
    fake_openai.queue("up1", Reply(delay_s=1.0))
    slow = await raw.post(url, json={"model": "agent:helper", "messages": USER})
    assert slow.status == 504 and slow.error["code"] == "agent_timeout" and "stream" in slow.error["message"]
    assert (await raw.post(url, json={"model": "agent:helper", "messages": USER})).status == 200
    limited = await raw.post(url, json={"model": "agent:helper", "messages": USER})
    assert limited.status == 429 and limited.error["code"] == "rate_limit_exceeded"
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await raw.post(url, json={"model": f"up1/{'gpt-4o-mini'}", "messages": USER})).status == 200

    off = await make_router(config(fake_openai, settings={"endpoints": {"openai": False}}))
    resp = await raw.post(f"{off}/v1/chat/completions", json={"model": "agent:helper", "messages": USER})
    assert resp.status == 404 and resp.error["code"] == "endpoint_disabled"

    auth = {"keys": [{"name": "team", "key": "sk-team", "models": ["agent:helper", "smart", "up*/*"]},
                     {"name": "agent-only", "key": "sk-agent", "models": ["agent:helper"]}]}
    locked = await make_router(config(fake_openai, agents={"helper": {"model": "smart"}, "other": {"model": "smart"}},
                                      auth=auth))
    team = {"Authorization": "Bearer sk-team"}
    assert (await raw.post(f"{locked}/v1/chat/completions", headers=team,
                           json={"model": "agent:helper", "messages": USER})).status == 200
    denied = await raw.post(f"{locked}/v1/chat/completions", headers=team, json={"model": "agent:other",
                                                                                   "messages": USER})
    assert denied.status == 403 and denied.error["code"] == "model_not_allowed"
    # The agent's own model is a hop too: a key that may run the agent but not use its model is refused.
    calls = len(fake_openai.calls())
    denied = await raw.post(f"{locked}/v1/chat/completions", headers={"Authorization": "Bearer sk-agent"},
                            json={"model": "agent:helper", "messages": USER})
    assert denied.status == 403 and "'smart'" in denied.error["message"]
    assert len(fake_openai.calls()) == calls


async def test_a_failed_run_is_an_openai_error_with_the_trail(fake_openai, make_router, openai_client, raw) -> None:
    from fakes.openai_upstream import Fail

    fake_openai.queue("up1", Fail(503))
    fake_openai.queue("up2", Fail(503))
    base = await make_router(config(fake_openai))
    resp = await raw.post(f"{base}/v1/chat/completions", json={"model": "agent:helper", "messages": USER})
    assert resp.status == 502 and resp.error["type"] == "upstream_error"
    extra = resp.json()["extra_fields"]
    assert [a["status"] for a in extra["attempts"]] == [503, 503]
    assert [a["status"] for a in extra["steps"][0]["attempts"]] == [503, 503]
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("calculator", expression="1")]),
                      Reply(text="a b c d", error_after=3, chunk_delay_s=0.05))
    with pytest.raises(openai.APIError):
        async for _ in await openai_client(base).chat.completions.create(model="agent:helper", messages=USER,
                                                                         stream=True):
            pass
    assert orjson.dumps(resp.json())  # the body was JSON all along
