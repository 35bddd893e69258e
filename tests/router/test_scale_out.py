"""Scale-out: two router instances sharing one Redis (standalone or a 3-master Cluster).

Under concurrent load split across both instances: an RPM limit and a budget admit exactly what they
allow (never one more), usage totals equal what the fake vendor reported to the token and to the
nano-dollar, a Redis killed mid-load fails no request (fail_open) and the totals still reconcile once
it is back. The fake answers every request with usage derived from the request's number
(`Metered`), so every request has its own prompt / completion / cached counts and the expected
totals are the sums of what the fake actually sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import pytest
from fakes.openai_upstream import Reply
from redis.cluster import RedisCluster
from support.redis_server import RedisServer

import router.gateway
from providers.tokens import count_messages
from router.auth import Limiter

ADMIN = "admin-s3cret"
CHAT = "/v1/chat/completions"
# USD per million tokens; each is a whole number of nano-dollars per token, so the exact expected cost
# of a request is an integer: (prompt - cached) * input + cached * cache_read + completion * output.
PRICING = {
    "alpha/m-large": {"input_per_mtok": 2.5, "output_per_mtok": 10.0, "cache_read_per_mtok": 1.25},
    "beta/m-small": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "cache_read_per_mtok": 0.075},
}
NANOS = {model: tuple(round(p[k] * 1000) for k in ("input_per_mtok", "cache_read_per_mtok", "output_per_mtok"))
         for model, p in PRICING.items()}
MODELS = tuple(PRICING)
NUMBER = re.compile(r"request (\d+)")


def usage_of(i: int) -> dict:
    """What the fake bills request number `i`: different for (nearly) every request."""
    prompt = 20 + (i * 37) % 211
    cached = (i % 4) * (prompt // 5)
    completion = 1 + (i * 53) % 97
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0}}


def cost_nanos(model: str, usage: dict) -> int:
    inp, read, out = NANOS[model]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    return (usage["prompt_tokens"] - cached) * inp + cached * read + usage["completion_tokens"] * out


class Metered:
    """The fake's default reply: usage from the request's number (`request <i>` in the last message),
    remembered in `reported[i]` (what the vendor billed, as the router must account it)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.reported: dict[int, dict] = {}
        self.delay_s = delay_s

    async def __call__(self, fake, request, received):
        i = int(NUMBER.search(received.body["messages"][-1]["content"]).group(1))
        assert i not in self.reported, f"request {i} reached the vendor twice"
        self.reported[i] = usage = usage_of(i)
        return await Reply(text=f"answer {i} from the fake", usage=usage, delay_s=self.delay_s)(
            fake, request, received)


@pytest.fixture
def metered(fake_openai):
    meter = Metered()
    fake_openai.default = lambda received: meter  # every chat request without a queued behaviour
    return meter


@pytest.fixture
def steady_clock(monkeypatch):
    """RPM windows are epoch minutes: a test that straddled a minute boundary would get a fresh
    allowance and could not assert an exact count. Both instances' limiters get the same clock, running
    at real speed from second 5 of a minute (as NTP-synced instances would share one)."""
    now = time.time()
    offset = now // 60 * 60 + 5 - now
    monkeypatch.setattr(router.gateway, "Limiter", functools.partial(Limiter, clock=lambda: time.time() + offset))


def redis(url: str, **extra) -> dict:
    """`redis:` config. A generous command timeout: these tests are about exactness, and on a loaded CI
    machine a slow reply must not count as an outage (which would admit fail_open, unchecked)."""
    return {"url": url, "timeout_s": 2.0, **extra}


def config(fake, redis_cfg: dict, keys: list[dict], *, on_redis_down: str = "fail_open", cache: dict | None = None,
           flush_interval_s: float = 0.2) -> dict:
    out = {"providers": {"alpha": fake.provider("alpha"), "beta": fake.provider("beta")},
           "redis": redis_cfg, "pricing": PRICING, "accounting": {"flush_interval_s": flush_interval_s},
           "auth": {"admin_token": ADMIN, "keys": keys, "on_redis_down": on_redis_down}}
    if cache is not None:
        out["cache"] = cache
    return out


def chat(i: int, model: str, stream: bool = False, **extra) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": f"request {i}, please"}], **extra}
    if stream:
        body["stream"] = True
    return body


def instance(i: int) -> int:
    """Which of the two instances serves request `i`: alternating blocks of 8, so that every key, model
    and stream/non-stream mix (numbered `i % 4`, `(i // 4) % 2`, `i % 3` in `jobs`) reaches both."""
    return (i // 8) % 2


class Load:
    """Requests spread over the instances (`instance`) with at most `concurrency` in flight."""

    def __init__(self, raw, urls: list[str], concurrency: int) -> None:
        self.raw = raw
        self.urls = urls
        self.slots = asyncio.Semaphore(concurrency)
        self.results: dict[int, tuple[str, str, object]] = {}  # i -> (key, model, response)

    async def one(self, i: int, secret: str, body: dict, headers: dict | None = None):
        async with self.slots:
            resp = await self.raw.post(self.urls[instance(i) % len(self.urls)] + CHAT, json=body,
                                       headers={"authorization": f"Bearer {secret}", **(headers or {})})
        if resp.status == 200 and body.get("stream"):
            assert resp.events[-1] == "[DONE]", resp.events[-3:]
            assert not any(isinstance(e, dict) and "error" in e for e in resp.events), resp.events
        self.results[i] = (secret, body["model"], resp)
        return resp

    async def run(self, jobs: Iterable[tuple[int, str, dict]]) -> list:
        return await asyncio.gather(*(self.one(i, secret, body) for i, secret, body in jobs))


def text(resp) -> str:
    """The assistant's text of a response, streamed or not."""
    if not resp.events:
        return resp.json()["choices"][0]["message"]["content"]
    return "".join(c["delta"].get("content") or "" for e in resp.events if isinstance(e, dict)
                   for c in e.get("choices") or ())


async def usage_rows(raw, urls: list[str], query: str = "group_by=key,model") -> dict:
    """`/v1/usage` after every instance has flushed (each GET flushes its own instance first)."""
    for url in urls:
        resp = await raw.request("GET", f"{url}/v1/usage?{query}", headers={"authorization": f"Bearer {ADMIN}"})
        assert resp.status == 200, resp.body
    return resp.json()


FIELDS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens",
          "total_tokens", "cost_nanos", "estimated_requests", "unpriced_requests")


def table(rows: list[dict]) -> dict[tuple, dict]:
    out = {}
    for row in rows:
        assert row["cost_usd"] == round(row["cost_nanos"] / 1e9, 9)
        out[(row["key"], row["model"])] = {f: row[f] for f in FIELDS}
    return out


def expected(served: Iterable[tuple[str, str, dict | None]]) -> dict[tuple, dict]:
    """Totals per (key name, model label) from (key, model, usage the fake reported or None for a hit)."""
    out: dict[tuple, Counter] = defaultdict(Counter)
    for key, model, usage in served:
        c = out[(key, model)]
        c["requests"] += 1
        if usage is None:
            c["cache_hits"] += 1
            continue
        c["prompt_tokens"] += usage["prompt_tokens"]
        c["completion_tokens"] += usage["completion_tokens"]
        c["total_tokens"] += usage["prompt_tokens"] + usage["completion_tokens"]
        c["cached_tokens"] += usage["prompt_tokens_details"]["cached_tokens"]
        c["cost_nanos"] += cost_nanos(model, usage)
    return {k: {f: c[f] for f in FIELDS} for k, c in out.items()}


def assert_totals(body: dict, want: dict[tuple, dict]) -> None:
    assert table(body["data"]) == want
    total_nanos = sum(v["cost_nanos"] for v in want.values())
    assert body["totals"]["cost_nanos"] == total_nanos
    assert round(body["totals"]["cost_usd"], 2) == round(total_nanos / 1e9, 2)  # to the cent (and below)
    assert body["totals"]["prompt_tokens"] == sum(v["prompt_tokens"] for v in want.values())


async def wait_until(check: Callable, timeout_s: float, what: str):
    """`await check()` until it returns without an AssertionError (bounded); its last failure is raised."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}") from None
        await asyncio.sleep(0.2)


# -- limits across two instances --------------------------------------------------------------------
async def test_rpm_is_exact_across_two_instances(fake_openai, metered, make_router, redis_url, raw,
                                                 steady_clock) -> None:
    cfg = config(fake_openai, redis(redis_url), [{"name": "team", "key": "sk-team", "rpm": 40}])
    urls = [await make_router(cfg), await make_router(cfg)]
    load = Load(raw, urls, concurrency=30)
    responses = await load.run((i, "sk-team", chat(i, MODELS[i % 2], stream=i % 3 == 0)) for i in range(150))
    assert Counter(r.status for r in responses) == {200: 40, 429: 110}
    assert len(fake_openai.calls(endpoint="chat/completions")) == 40 == len(metered.reported)
    for r in responses:
        if r.status == 429:
            assert r.error["code"] == "rate_limit_exceeded" and int(r.headers["Retry-After"]) >= 1
        assert r.headers["x-ratelimit-limit-requests"] == "40"  # checked in Redis, never degraded
    served = Counter(instance(i) for i, (_, _, r) in load.results.items() if r.status == 200)
    assert served[0] and served[1], served  # both instances admitted some of the 40


async def test_budget_is_exact_across_two_instances(fake_openai, make_router, redis_url, raw) -> None:
    """The admission estimate equals the real cost (the fake bills the prompt as the router counts it
    and `max_tokens` completion tokens), so every reservation is exact and the budget admits exactly
    floor(budget / cost) requests however they interleave."""
    model, max_tokens = "alpha/m-large", 40
    messages = [{"role": "user", "content": "what does the budget allow?"}]
    prompt = count_messages(messages, model)
    usage = {"prompt_tokens": prompt, "completion_tokens": max_tokens, "total_tokens": prompt + max_tokens,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}
    cost = cost_nanos(model, usage)
    budget_usd = round(cost * 23.6 / 1e9, 9)
    allowed = round(budget_usd * 1e9) // cost
    assert allowed == 23
    fake_openai.default = lambda received: Reply(usage=dict(usage))
    cfg = config(fake_openai, redis(redis_url), [{"name": "payg", "key": "sk-payg", "budget_usd": budget_usd}])
    urls = [await make_router(cfg), await make_router(cfg)]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens}
    responses = await Load(raw, urls, concurrency=30).run((i, "sk-payg", body) for i in range(60))
    assert Counter(r.status for r in responses) == {200: allowed, 402: 60 - allowed}
    assert len(fake_openai.calls(endpoint="chat/completions")) == allowed
    assert all(r.error["code"] == "budget_exceeded" for r in responses if r.status == 402)
    totals = (await usage_rows(raw, urls, "key=payg"))["totals"]
    assert (totals["requests"], totals["cost_nanos"]) == (allowed, allowed * cost)

    async def settled():  # settled in the background: then the budget holds the real spend, nothing reserved
        resp = await raw.request("GET", urls[1] + "/admin/keys/payg", headers={"authorization": f"Bearer {ADMIN}"})
        limits = resp.json()["limits"]
        assert round(limits["budget_spent_usd"] * 1e9) == allowed * cost and limits["budget_reserved_usd"] == 0

    await wait_until(settled, 5, "the reservations to settle")


# -- accounting ---------------------------------------------------------------------------------------
KEYS = [{"name": f"team-{n}", "key": f"sk-team-{n}"} for n in range(3)] + [
    {"name": "limited", "key": "sk-limited", "rpm": 10_000, "budget_usd": 100}]


def jobs(start: int, count: int) -> list[tuple[int, str, dict]]:
    """Mixed traffic: four keys (one with limits), two models on two providers, one in three streamed."""
    return [(i, KEYS[i % 4]["key"], chat(i, MODELS[(i // 4) % 2], stream=i % 3 == 0))
            for i in range(start, start + count)]


def served_by_fake(load: Load, meter: Metered) -> list[tuple[str, str, dict | None]]:
    names = {k["key"]: k["name"] for k in KEYS}
    out = []
    for i, (secret, model, resp) in load.results.items():
        assert resp.status == 200
        hit = resp.headers.get("x-switchboard-cache") == "hit"
        out.append((names.get(secret, secret), model, None if hit else meter.reported[i]))
    return out


async def test_usage_totals_are_exact_across_two_instances(fake_openai, metered, make_router, redis_url,
                                                           raw) -> None:
    cfg = config(fake_openai, redis(redis_url), KEYS)
    urls = [await make_router(cfg), await make_router(cfg)]
    load = Load(raw, urls, concurrency=30)
    responses = await load.run(jobs(0, 200))
    assert all(r.status == 200 for r in responses), [r.body for r in responses if r.status != 200][:3]
    assert sorted(metered.reported) == list(range(200))
    want = expected(served_by_fake(load, metered))
    assert len(want) == 8
    body = await usage_rows(raw, urls)
    assert_totals(body, want)
    assert body["totals"]["errors"] == body["totals"]["estimated_requests"] == body["totals"]["unpriced_requests"] == 0


async def test_redis_killed_mid_load_fails_nothing_and_totals_reconcile(fake_openai, make_router, raw,
                                                                        caplog) -> None:
    """Redis is SIGKILLed while requests are in flight and restarted on the same port.

    This Redis appends every write to its AOF and fsyncs before replying (`appendfsync always`), as a
    production Redis holding billing data should: whatever it acknowledged survives the crash, so the
    accounting window is the whole load, before, during and after the outage. (A Redis without
    persistence would lose the totals flushed before the kill: the router cannot reconcile data
    the store itself threw away.) A batch cut by the crash is resent with the same number and applied
    once: the totals come out exact, not merely close."""
    meter = Metered(delay_s=0.01)
    fake_openai.default = lambda received: meter
    server = await asyncio.to_thread(RedisServer(None, "--appendonly", "yes", "--appendfsync", "always").start)
    try:
        cfg = config(fake_openai, {"url": server.url, "timeout_s": 0.3}, KEYS, on_redis_down="fail_open",
                     cache={"backend": "redis"})
        urls = [await make_router(cfg), await make_router(cfg)]
        load = Load(raw, urls, concurrency=10)
        done: list[int] = []
        counter = iter(jobs(0, 10_000))
        stop = asyncio.Event()

        async def client() -> None:
            for i, secret, body in counter:
                if stop.is_set():
                    return
                await load.one(i, secret, body)
                done.append(i)
                await asyncio.sleep(0.02)  # a steady few hundred requests per second, not a flood

        async def until(what: str, ready: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 20
            while not ready():
                assert time.monotonic() < deadline, f"timed out waiting for {what} ({len(done)} requests done)"
                await asyncio.sleep(0.01)

        def checked_again(since: int) -> bool:
            """Each instance has admitted a limited-key request through Redis since request `since`."""
            return {instance(i) for i in done[since:] if load.results[i][0] == "sk-limited"
                    and "x-ratelimit-limit-requests" in load.results[i][2].headers} == {0, 1}

        clients = [asyncio.create_task(client()) for _ in range(10)]
        try:
            await until("load", lambda: len(done) >= 60)
            await asyncio.to_thread(server.kill)  # with ~10 requests in flight
            killed_at = len(done)
            down_until = time.monotonic() + 1.0  # records pile up in both accountants meanwhile
            await until("requests while Redis is down",
                        lambda: len(done) >= killed_at + 60 and time.monotonic() >= down_until)
            during = len(done) - killed_at
            await asyncio.to_thread(server.start)
            restarted_at = len(done)
            await until("both instances to use Redis again",
                        lambda: len(done) >= restarted_at + 60 and checked_again(restarted_at))
        finally:
            stop.set()
            await asyncio.gather(*clients)
        statuses = Counter(resp.status for _, _, resp in load.results.values())
        failed = [r.body for _, _, r in load.results.values() if r.status != 200]
        assert statuses == {200: len(load.results)}, failed[:3]
        degraded = [i for i, (s, _, r) in load.results.items()
                    if s == "sk-limited" and "x-ratelimit-limit-requests" not in r.headers]
        assert degraded, "no request of the limited key was admitted while Redis was down"
        want = expected(served_by_fake(load, meter))

        # Read through a third instance, which has nothing of its own to flush: the totals reconcile
        # only once both loaded instances' flushers have written what they buffered during the outage.
        reader = [await make_router(cfg)]

        async def reconciled():
            assert_totals(await usage_rows(raw, reader), want)

        await wait_until(reconciled, 15, "the buffered usage to reach the restarted Redis")
        logged = [r.getMessage() for r in caplog.records]
        assert sum(m.startswith("redis is unreachable") for m in logged) == 2  # both instances saw the outage
        assert sum(m == "redis is reachable again" for m in logged) == 2  # and its end
    finally:
        await asyncio.to_thread(server.cleanup)
    print(f"redis kill: {len(load.results)} requests, {killed_at} done before the kill, {during} while down, "
          f"{len(degraded)} degraded admits of the limited key")


# -- Redis Cluster ------------------------------------------------------------------------------------
async def test_cluster_cache_limits_and_accounting(fake_openai, metered, make_router, redis_cluster, raw,
                                                   steady_clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="switchboard")
    keys = [*KEYS, {"name": "rpm-team", "key": "sk-rpm", "rpm": 25}]
    cluster = RedisCluster.from_url(redis_cluster.url)
    try:  # the keys' limiter counters live on all three masters (and usage on one of them)
        assert len({cluster.get_node_from_key(f"p:{{vk:{k['name']}}}:rpm").name for k in keys}) == 3
    finally:
        cluster.close()
    cfg = config(fake_openai, redis(redis_cluster.url, cluster=True, key_prefix=f"so{uuid.uuid4().hex[:8]}"),
                 keys, cache={"backend": "redis"})
    urls = [await make_router(cfg), await make_router(cfg)]
    load = Load(raw, urls, concurrency=30)

    # Cache: stored by one instance, served by the other (non-stream and stream).
    auth = {"authorization": "Bearer sk-team-0"}
    for i, stream in ((1000, False), (1001, True)):
        first = await raw.post(urls[0] + CHAT, json=chat(i, MODELS[0], stream=stream), headers=auth)
        again = await raw.post(urls[1] + CHAT, json=chat(i, MODELS[0], stream=stream), headers=auth)
        assert (first.status, again.status) == (200, 200)
        assert (first.headers["x-switchboard-cache"], again.headers["x-switchboard-cache"]) == ("miss", "hit")
        assert text(again) == text(first) == f"answer {i} from the fake"
        load.results[i] = ("sk-team-0", MODELS[0], first)
        load.results[-i] = ("sk-team-0", MODELS[0], again)
    assert sorted(metered.reported) == [1000, 1001]

    # RPM across the two instances, limiter keys in the key's own slot.
    rpm = await Load(raw, urls, concurrency=30).run((2000 + i, "sk-rpm", chat(2000 + i, MODELS[1]))
                                                    for i in range(80))
    assert Counter(r.status for r in rpm) == {200: 25, 429: 55}
    assert all(r.headers["x-ratelimit-limit-requests"] == "25" for r in rpm)  # never degraded
    admitted = sorted(i for i in metered.reported if i >= 2000)
    assert len(admitted) == 25

    # Accounting: mixed traffic over both instances, totals exact.
    responses = await load.run(jobs(0, 120))
    assert all(r.status == 200 for r in responses)
    served = served_by_fake(load, metered) + [("rpm-team", MODELS[1], metered.reported[i]) for i in admitted]
    assert_totals(await usage_rows(raw, urls), expected(served))
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, problems  # no CROSSSLOT, no "redis is unreachable", no flush failure
