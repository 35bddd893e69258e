"""Runtime pieces on their own: history modes, output extraction, heartbeats, step caching, Redis-backed
sessions and limits."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as redis_asyncio
from agent_kit import call, config
from fakes.openai_upstream import Reply

from router.agents.output import OutputSpec
from router.agents.service import PING, heartbeat
from router.agents.sessions import conversation, trim
from router.errors import ApiError

USER = [{"role": "user", "content": "What is 6*7?"}]


def test_history_modes() -> None:
    stored = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    sent = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert conversation("client", stored, sent) == sent
    assert conversation("session", stored, sent[2:]) == sent
    assert conversation("session", stored, sent) == sent  # the client's copy of the past is not doubled
    assert conversation("session", [], sent) == sent
    assert conversation("last_message", stored, sent) == sent[2:]
    turn = [*sent, {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
            {"role": "tool", "tool_call_id": "c", "content": "1"}]
    assert conversation("last_message", [], turn) == turn[3:]  # a tool result keeps the call it answers
    long = [{"role": "user", "content": str(i)} if i % 3 == 0 else {"role": "tool", "content": str(i)}
            for i in range(10)]
    assert trim(long, 5)[0] == {"role": "user", "content": "6"}


@pytest.mark.parametrize(("spec", "text", "value"), [
    ({"type": "object"}, '```json\n{"a": 1}\n```', {"a": 1}),
    ({"type": "array", "schema": {"type": "integer"}}, "[1, 2]", [1, 2]),
    ({"type": "array", "schema": {"type": "integer"}}, '{"elements": [3]}', [3]),
    ({"type": "enum", "enum": ["yes", "no"]}, "no", "no"),
    ({"type": "enum", "enum": ["yes", "no"]}, '{"result": "yes"}', "yes"),
])
def test_output_extraction(spec: dict, text: str, value) -> None:
    assert OutputSpec.parse(spec).extract(text) == (value, None)


@pytest.mark.parametrize(("spec", "text"), [
    ({"type": "object"}, "[1]"), ({"type": "array", "schema": {"type": "integer"}}, '["x"]'),
    ({"type": "enum", "enum": ["yes"]}, "maybe"), ({"type": "object", "schema": {"required": ["a"]}}, "{}"),
    ({"type": "object"}, ""),
])
def test_output_problems(spec: dict, text: str) -> None:
    value, problem = OutputSpec.parse(spec).extract(text)
    assert value is None and problem


def test_output_spec_errors_name_the_member() -> None:
    with pytest.raises(ApiError) as info:
        OutputSpec.parse({"type": "object", "schema": {"type": 5}})
    assert info.value.param == "output.schema"
    fmt = OutputSpec.parse({"type": "enum", "enum": ["a"]}).response_format()
    assert fmt["json_schema"]["schema"]["properties"]["result"]["enum"] == ["a"]


async def test_heartbeat_pings_while_the_run_is_quiet() -> None:
    async def slow():
        yield 1
        await asyncio.sleep(0.12)
        yield 2

    seen = [e async for e in heartbeat(slow(), 0.05)]
    assert seen[0] == 1 and seen[-1] == 2 and seen.count(PING) >= 1


async def test_steps_use_the_response_cache(fake_openai, make_router, raw) -> None:
    agents = {"calc": {"model": "smart", "tools": ["calculator"]}}
    base = await make_router(config(fake_openai, agents=agents, cache={"backend": "memory"}))
    for _ in range(2):
        fake_openai.queue("up1", Reply(text=None, tool_calls=[call("calculator", expression="6*7")]),
                          Reply(text="42."))
    url = f"{base}/v1/chat/completions"
    first = await raw.post(url, json={"model": "agent:calc", "messages": USER})
    assert [s["cache"] for s in first.json()["extra_fields"]["steps"]] == ["miss", "miss"]
    again = await raw.post(url, json={"model": "agent:calc", "messages": USER})
    streamed = await raw.post(url, json={"model": "agent:calc", "messages": USER, "stream": True})
    assert len(fake_openai.calls()) == 2  # both later runs were served from the cache, step by step
    assert again.json()["choices"][0]["message"]["content"] == "42."
    assert again.json()["extra_fields"]["cache"] == {"status": "hit"}
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in streamed.events[:-1] if e["choices"]) == "42."
    fresh = await raw.post(url, json={"model": "agent:calc", "messages": USER}, headers={"cache-control": "no-cache"})
    assert fresh.status == 200 and len(fake_openai.calls()) == 4


async def test_redis_sessions_keep_the_trace_and_redis_limits_count(fake_openai, make_router, raw,
                                                                    redis_url) -> None:
    agents = {"calc": {"model": "smart", "tools": ["calculator"], "history": "session"}}
    settings = {"rate_limits": {"per_ip": "2/minute"}}
    base = await make_router(config(fake_openai, agents=agents, settings=settings, redis={"url": redis_url}))
    fake_openai.queue("up1", Reply(text=None, tool_calls=[call("calculator", expression="6*7")]), Reply(text="42."))
    url = f"{base}/v1/chat/completions"
    first = await raw.post(url, json={"model": "agent:calc", "messages": USER, "session_id": "trace-1"})
    assert first.status == 200
    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match="*agent-session*")]
        assert len(keys) == 1 and 0 < await client.ttl(keys[0]) <= 86400
        record = orjson.loads(await client.get(keys[0]))
        assert [m["role"] for m in record["messages"]] == ["user", "assistant", "tool", "assistant"]
        (run,) = record["runs"]
        assert run["agent"] == "calc" and run["usage"]["total_tokens"] == 34
        assert run["steps"][0]["tools"][0]["name"] == "calculator" and run["steps"][0]["tools"][0]["result_bytes"] > 0
        assert (await raw.post(url, json={"model": "agent:calc", "messages": USER})).status == 200
        limited = await raw.post(url, json={"model": "agent:calc", "messages": USER})
        assert limited.status == 429 and limited.error["code"] == "rate_limit_exceeded"
        assert [k async for k in client.scan_iter(match="*agent-rl*")]
    finally:
        await client.aclose()
