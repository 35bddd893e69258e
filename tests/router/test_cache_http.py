"""The response cache end to end: the real app over HTTP, a real Redis (and the memory backend), the
scriptable fake vendor and the official openai SDK.

Each test counts the fake's calls: a hit must cost no upstream call, everything else exactly one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fakes.base import send_body
from fakes.openai_upstream import DEFAULT_USAGE, EMBEDDINGS, Fail, Reply
from support.openai_chunks import assemble

MODEL = "up/gpt-4o-mini"
CHAT = "chat/completions"
ZERO_BILL = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}


def _messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _header(resp: Any, name: str) -> str | None:
    return {k.lower(): v for k, v in resp.headers.items()}.get(name)


def _status(resp: Any) -> str | None:
    return _header(resp, "x-switchboard-cache")


@pytest.fixture(params=["redis", "memory"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def config(request, backend, fake_openai):
    """`config(**sections)`: a router on the fake upstream `up`, caching in `backend`."""

    def make(**sections: Any) -> dict:
        out: dict[str, Any] = {"providers": {"up": fake_openai.provider("up")}, "cache": {"ttl_s": 60}}
        if backend == "redis":
            out["redis"] = {"url": request.getfixturevalue("redis_url")}
        else:
            out["cache"]["backend"] = "memory"
        return {**out, **sections}

    return make


@pytest.fixture
def chat(raw):
    """`await chat(url, text, headers=..., **body)`: POST /v1/chat/completions with the raw client."""

    async def post(url: str, text: str = "What is 2 + 2?", *, headers: dict | None = None, **body: Any):
        return await raw.post(url + "/v1/chat/completions", json={"model": MODEL, "messages": _messages(text), **body},
                              headers=headers)

    return post


def _calls(fake, endpoint: str = CHAT) -> int:
    return len(fake.calls("up", endpoint))


# -- hits and misses --------------------------------------------------------------------------------
async def test_miss_then_hit_through_the_sdk(config, make_router, fake_openai, openai_client) -> None:
    client = openai_client(await make_router(config()))
    first = await client.chat.completions.with_raw_response.create(model=MODEL, messages=_messages("hi"))
    second = await client.chat.completions.with_raw_response.create(model=MODEL, messages=_messages("hi"))
    assert (first.headers["x-switchboard-cache"], second.headers["x-switchboard-cache"]) == ("miss", "hit")
    assert _calls(fake_openai) == 1
    miss, hit = first.parse(), second.parse()
    miss_extra, hit_extra = miss.model_extra["extra_fields"], hit.model_extra["extra_fields"]
    assert miss_extra["cache"] == {"status": "miss"} and hit_extra["cache"] == {"status": "hit"}
    assert miss_extra["billed_usage"]["total_tokens"] == 17 and miss_extra["billed_usage"]["cost_usd"] > 0
    assert hit_extra["billed_usage"] == ZERO_BILL and hit_extra["attempts"] == []
    assert (hit_extra["provider"], hit_extra["model"], hit_extra["model_requested"]) == ("up", MODEL, MODEL)
    # The body is the original one, its `usage` included: only extra_fields says nothing was billed.
    assert hit.model_dump(exclude={"extra_fields"}) == miss.model_dump(exclude={"extra_fields"})
    assert hit.usage.prompt_tokens == DEFAULT_USAGE["prompt_tokens"] and hit.usage.total_tokens == 17
    assert hit.choices[0].message.content == "Hello from the fake."


async def test_no_cache_skips_the_lookup_but_stores(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    no_cache = {"Cache-Control": "no-cache"}
    first = await chat(url, headers=no_cache)
    assert _status(first) == "bypass" and first.json()["extra_fields"]["cache"] == {"status": "bypass"}
    assert _status(await chat(url)) == "hit"  # the no-cache answer was stored
    assert _status(await chat(url, headers=no_cache)) == "bypass"  # an entry exists, the lookup is still skipped
    assert _calls(fake_openai) == 2


async def test_no_store_skips_lookup_and_store(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    no_store = {"Cache-Control": "no-store"}
    assert _status(await chat(url, "a", headers=no_store)) == "bypass"
    assert _status(await chat(url, "a")) == "miss"  # nothing was stored
    assert _status(await chat(url, "a")) == "hit"
    assert _status(await chat(url, "a", headers=no_store)) == "bypass"
    assert _calls(fake_openai) == 3


async def test_ttl_header_expires_the_entry_and_a_bad_value_is_400(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    ttl = {"x-switchboard-cache-ttl": "1"}
    stored = time.monotonic()
    assert _status(await chat(url, headers=ttl)) == "miss"
    assert _status(await chat(url)) == "hit"
    assert time.monotonic() - stored < 1.0, "too slow to observe the entry before it expires"
    await asyncio.sleep(1.3)
    assert _status(await chat(url)) == "miss"
    assert _calls(fake_openai) == 2

    for bad in ("soon", "-1", "nan", "1e12"):
        resp = await chat(url, headers={"x-switchboard-cache-ttl": bad})
        assert resp.status == 400
        assert resp.error["param"] == "x-switchboard-cache-ttl" and "x-switchboard-cache-ttl" in resp.error["message"]
    assert _calls(fake_openai) == 2


# -- tenants -----------------------------------------------------------------------------------------
KEYS = {"keys": [{"name": "team-a", "key": "sk-team-a"}, {"name": "team-b", "key": "sk-team-b"}]}


async def test_virtual_keys_never_share_entries(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config(auth=KEYS))
    a, b = {"Authorization": "Bearer sk-team-a"}, {"Authorization": "Bearer sk-team-b"}
    statuses = [_status(await chat(url, headers=h)) for h in (a, b, a, b)]
    assert statuses == ["miss", "miss", "hit", "hit"]
    assert _calls(fake_openai) == 2


@pytest.mark.parametrize("backend", ["redis"])
async def test_anonymous_and_keyed_requests_never_share_entries(config, make_router, fake_openai, chat,
                                                                redis_server) -> None:
    """Two routers on one Redis, one open and one with keys: the same request, two entries."""
    open_url, keyed_url = await make_router(config()), await make_router(config(auth=KEYS))
    a = {"Authorization": "Bearer sk-team-a"}
    assert _status(await chat(open_url)) == "miss"
    assert _status(await chat(keyed_url, headers=a)) == "miss"
    assert _status(await chat(open_url)) == "hit"
    assert _status(await chat(keyed_url, headers=a)) == "hit"
    assert _calls(fake_openai) == 2
    assert len(redis_server.cli("--scan", "--pattern", "*cache:*").split()) == 2


# -- streams -----------------------------------------------------------------------------------------
@dataclass
class Thinking:
    """`reply` streamed with `reasoning_content` deltas before it, as DeepSeek and vLLM send them."""

    reply: Reply
    thoughts: tuple[str, ...] = ("Let me ", "think.")

    async def __call__(self, fake, request, received):
        body = received.body
        events = self.reply.events(body["model"], (body.get("stream_options") or {}).get("include_usage") is True)
        head = orjson.loads(events[0].removeprefix(b"data: "))
        thinking = []
        for thought in self.thoughts:
            head["choices"][0]["delta"] = {"reasoning_content": thought}
            thinking.append(b"data: " + orjson.dumps(head) + b"\n\n")
        return await send_body(request, [events[0], *thinking, *events[1:], b"data: [DONE]\n\n"])


TOOLS = [("lookup", '{"order": 7, "verbose": true}'), ("calc", '{"x": 1}')]


@pytest.mark.parametrize("variant", ["text", "text+usage", "reasoning+tools+usage"])
async def test_stream_hit_replays_the_same_chunks(config, make_router, fake_openai, chat, variant) -> None:
    url = await make_router(config())
    if variant.startswith("reasoning"):
        fake_openai.queue("up", Thinking(Reply(text=None, tool_calls=TOOLS)))
    body: dict[str, Any] = {"stream": True}
    if variant.endswith("usage"):
        body["stream_options"] = {"include_usage": True}
    miss, hit = await chat(url, **body), await chat(url, **body)
    assert (_status(miss), _status(hit)) == ("miss", "hit") and _calls(fake_openai) == 1
    assert miss.events[-1] == hit.events[-1] == "[DONE]"
    plain = [[{k: v for k, v in c.items() if k != "extra_fields"} for c in r.events[:-1]] for r in (miss, hit)]
    assert plain[0] == plain[1] and len(plain[0]) >= 4
    head = {"provider": "up", "model": MODEL}
    assert miss.events[0]["extra_fields"] == hit.events[0]["extra_fields"] == head
    tail = hit.events[-2]["extra_fields"]
    assert tail["cache"] == {"status": "hit"} and tail["billed_usage"] == ZERO_BILL
    assert (tail["provider"], tail["model"], tail["request_type"]) == ("up", MODEL, "chat.completion.chunk")
    assert miss.events[-2]["extra_fields"]["cache"] == {"status": "miss"}
    assert all("extra_fields" not in c for c in hit.events[1:-2])
    replayed = assemble(plain[1])
    if variant.startswith("reasoning"):
        assert replayed["reasoning"] == "Let me think." and replayed["finish"] == "tool_calls"
        assert [(c["name"], c["arguments"]) for c in replayed["calls"].values()] == TOOLS
    else:
        assert replayed["content"] == "Hello from the fake." and replayed["finish"] == "stop"
    assert (replayed["usage"] == DEFAULT_USAGE) == variant.endswith("usage")


async def test_stream_and_non_stream_entries_are_distinct(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    statuses = [_status(await chat(url, stream=stream)) for stream in (False, True, True, False)]
    assert statuses == ["miss", "miss", "hit", "hit"]
    assert _calls(fake_openai) == 2


# -- what is never cached ------------------------------------------------------------------------------
async def test_upstream_errors_are_never_cached(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    fake_openai.queue("up", Fail(503), Fail(400, "bad 'temperature'", param="temperature"),
                      Reply(error_after=3, chunk_delay_s=0.05))  # fails after content was sent
    assert (await chat(url)).status == 502
    assert (await chat(url)).status == 400
    streamed = await chat(url, stream=True)
    assert streamed.status == 200 and "error" in streamed.events[-1]
    assert _status(await chat(url, stream=True)) == "miss"  # the stream that ended in an error was not stored
    assert [_status(await chat(url)) for _ in range(2)] == ["miss", "hit"]
    assert _calls(fake_openai) == 5


async def test_a_broken_stream_is_never_cached(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    fake_openai.queue("up", Reply(cut_after=3, chunk_delay_s=0.05))
    broken = await chat(url, stream=True)
    assert broken.events[-1] != "[DONE]" and "error" in broken.events[-1]
    assert [_status(await chat(url, stream=True)) for _ in range(2)] == ["miss", "hit"]
    assert _calls(fake_openai) == 2


# -- coalescing, raw responses, embeddings ------------------------------------------------------------
async def test_concurrent_identical_misses_make_one_upstream_call(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    fake_openai.queue("up", Reply(text="computed once", delay_s=1.0))
    responses = await asyncio.gather(*(chat(url, "same") for _ in range(10)))
    assert _calls(fake_openai) == 1
    assert [r.status for r in responses] == [200] * 10
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"computed once"}
    assert sorted(_status(r) for r in responses) == ["hit"] * 9 + ["miss"]
    assert sorted(r.json()["extra_fields"]["cache"]["status"] for r in responses) == ["hit"] * 9 + ["miss"]


async def test_raw_response_header_bypasses_the_lookup(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config())
    assert _status(await chat(url)) == "miss"
    raw = await chat(url, headers={"x-switchboard-raw-response": "true"})
    assert _status(raw) == "bypass" and raw.json()["extra_fields"]["raw_response"]["id"] == "chatcmpl-fake123"
    assert _status(await chat(url)) == "hit"
    assert _calls(fake_openai) == 2


async def test_embeddings_are_cached(config, make_router, fake_openai, openai_client) -> None:
    client = openai_client(await make_router(config()))
    first = await client.embeddings.with_raw_response.create(model=MODEL, input=["alpha", "beta"])
    second = await client.embeddings.with_raw_response.create(model=MODEL, input=["alpha", "beta"])
    assert (first.headers["x-switchboard-cache"], second.headers["x-switchboard-cache"]) == ("miss", "hit")
    assert _calls(fake_openai, EMBEDDINGS) == 1
    miss, hit = first.parse(), second.parse()
    assert [d.embedding for d in hit.data] == [d.embedding for d in miss.data] and len(hit.data) == 2
    assert hit.model_extra["extra_fields"]["billed_usage"] == ZERO_BILL
    assert hit.model_extra["extra_fields"]["request_type"] == "embedding"
    third = await client.embeddings.with_raw_response.create(model=MODEL, input=["alpha"])
    assert third.headers["x-switchboard-cache"] == "miss" and _calls(fake_openai, EMBEDDINGS) == 2


# -- Redis outage --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["redis"])
async def test_cache_fails_open_while_redis_is_down_and_resumes(config, make_router, fake_openai, chat,
                                                                redis_server) -> None:
    url = await make_router(config())
    assert [_status(await chat(url)) for _ in range(2)] == ["miss", "hit"]
    redis_server.kill()
    try:
        started = time.monotonic()
        for text in ("What is 2 + 2?", "down"):
            resp = await chat(url, text)
            assert resp.status == 200 and _status(resp) == "miss"
        assert time.monotonic() - started < 3.0, "a dead Redis must not cost each request a timeout"
        assert _calls(fake_openai) == 3
    finally:
        await asyncio.to_thread(redis_server.start)
    deadline = time.monotonic() + 10.0
    while _status(await chat(url, "after")) != "hit":  # stored once Redis is back up, then served
        assert time.monotonic() < deadline, "caching did not resume within 10 s of Redis restarting"
        await asyncio.sleep(0.2)


async def test_readyz_reports_redis_and_degrades_while_it_is_down(make_router, fake_openai, raw, redis_server,
                                                                  redis_url) -> None:
    url = await make_router({"providers": {"up": fake_openai.provider("up")}, "redis": {"url": redis_url},
                             "cache": {"ttl_s": 60}})
    resp = await raw.request("GET", url + "/readyz")
    assert resp.status == 200 and resp.json()["status"] == "ready" and resp.json()["checks"]["redis"] == "ok"
    redis_server.kill()
    try:
        resp = await raw.request("GET", url + "/readyz")
        assert resp.status == 200 and resp.json()["status"] == "degraded"  # fail_open: still serving
        assert resp.json()["checks"]["redis"] == "unreachable"
    finally:
        redis_server.start()
