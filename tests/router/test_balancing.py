"""Load balancing and hedging end to end: weighted targets and keys, key model globs,
`least_latency`, `least_busy`, and `hedge_after_ms`.

Distributions are measured on a router whose random generator is seeded (`Gateway.rng`, shared by
the routing table and the chain), and still checked against a tolerant statistical bound (about
five standard deviations), so a change of seed never makes them flaky.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import SECRET, Fail, Gate, Reply

from router.app import build_app
from router.config import parse_config
from router.gateway import GATEWAY

USER = [{"role": "user", "content": "hi"}]
M = "gpt-4o-mini"
A, B = f"a/{M}", f"b/{M}"
BOUND_S = 5.0
KEY_A, KEY_B = f"{SECRET}-A", f"{SECRET}-B"


@pytest.fixture
async def router():
    """`await router(config, seed)` -> base URL of a router whose random generator is seeded."""
    servers: list[TestServer] = []

    async def start(config: dict, seed: int = 1234) -> str:
        app = build_app(parse_config(config))
        app[GATEWAY].rng.seed(seed)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


def providers(fake, *names: str, **overrides: Any) -> dict:
    return {name: fake.provider(name, **overrides) for name in names}


async def post(raw, base: str, model: str, *fallbacks: str, stream: bool = False):
    payload: dict[str, Any] = {"model": model, "messages": USER, "stream": stream}
    if fallbacks:
        payload["fallbacks"] = list(fallbacks)
    async with asyncio.timeout(BOUND_S):
        return await raw.post(base + "/v1/chat/completions", json=payload)


async def many(raw, base: str, model: str, count: int, batch: int = 25) -> list:
    out = []
    for i in range(0, count, batch):
        out += await asyncio.gather(*(post(raw, base, model) for _ in range(min(batch, count - i))))
    assert all(r.status == 200 for r in out)
    return out


def trail(resp) -> list[tuple[str, int]]:
    if resp.events:
        last = [e for e in resp.events if e != "[DONE]"][-1]
        return [(a["model"], a["status"]) for a in last["extra_fields"]["attempts"]]
    return [(a["model"], a["status"]) for a in resp.json()["extra_fields"]["attempts"]]


def key_of(received) -> str:
    return received.headers["Authorization"].removeprefix("Bearer ")


async def deployments(raw, base: str) -> dict[str, dict]:
    async with asyncio.timeout(BOUND_S):
        ready = (await raw.request("GET", base + "/readyz")).json()
    return {d["deployment"]: d for d in ready["checks"]["deployments"] if d["deployment"]}


# -- weighted ---------------------------------------------------------------------------------------
N = 400
LOW, HIGH = 255, 345  # 3:1 over 400 draws: mean 300, sd 8.7


@pytest.mark.parametrize("seed", [1, 2])
async def test_weighted_targets_follow_their_weights(fake_openai, router, raw, seed):
    base = await router({"providers": providers(fake_openai, "a", "b"), "models": {
        "team": {"strategy": "weighted", "targets": [{"model": A, "weight": 3}, {"model": B, "weight": 1}]}}},
        seed)
    served = Counter(r.json()["extra_fields"]["provider"] for r in await many(raw, base, "team", N))
    assert LOW <= served["a"] <= HIGH and served["a"] + served["b"] == N, served
    assert len(fake_openai.calls("a")) == served["a"] and len(fake_openai.calls("b")) == served["b"]


async def test_key_weights_share_a_providers_traffic(fake_openai, router, raw):
    keys = [{"value": KEY_A, "weight": 3}, {"value": KEY_B, "weight": 1}]
    base = await router({"providers": {"a": fake_openai.provider("a", keys=keys)}})
    await many(raw, base, A, N)
    used = Counter(key_of(c) for c in fake_openai.calls("a"))
    assert LOW <= used[KEY_A] <= HIGH and used[KEY_A] + used[KEY_B] == N, used


async def test_key_model_globs_restrict_which_key_calls_which_model(fake_openai, router, raw):
    keys = [{"value": KEY_A, "models": ["gpt-4o*"]}, {"value": KEY_B, "models": ["o3*", "o1-*"]}]
    base = await router({"providers": {"a": fake_openai.provider("a", keys=keys), "b": fake_openai.provider("b")}})
    await many(raw, base, "a/gpt-4o-mini", 20)
    await many(raw, base, "a/o3-mini", 20)
    sent = Counter((c.body["model"], key_of(c)) for c in fake_openai.calls("a"))
    assert sent == {("gpt-4o-mini", KEY_A): 20, ("o3-mini", KEY_B): 20}

    # No key may call it: an error naming the cause (never a call with the wrong key), one attempt.
    resp = await post(raw, base, "a/o4-mini")
    assert resp.status == 502 and resp.error["code"] == "model_not_allowed"
    assert trail(resp) == [("a/o4-mini", 0)]
    resp = await post(raw, base, "a/o4-mini", B)
    assert resp.status == 200 and trail(resp) == [("a/o4-mini", 0), (B, 200)]
    assert len(fake_openai.calls("a")) == 40


# -- least_latency / least_busy ------------------------------------------------------------------
async def test_least_latency_converges_on_the_faster_upstream(fake_openai, router, raw):
    base = await router({"providers": providers(fake_openai, "a", "b"), "models": {
        "team": {"strategy": "least_latency", "targets": [A, B]}}})
    fake_openai.queue("a", *(Reply(delay_s=0.15) for _ in range(30)))
    served = []
    for _ in range(20):
        resp = await post(raw, base, "team")
        served.append(resp.json()["extra_fields"]["provider"])
    # Each is measured once (unmeasured targets go first), then the fast one takes everything.
    assert served.count("a") == 1 and served[2:] == ["b"] * 18, served
    stats = await deployments(raw, base)
    assert stats[A]["ttfb_ewma_ms"] >= 140 > stats[B]["ttfb_ewma_ms"]


@pytest.mark.parametrize("stream", [False, True], ids=["held-requests", "held-streams"])
async def test_least_busy_prefers_the_idle_upstream(fake_openai, router, raw, stream):
    base = await router({"providers": providers(fake_openai, "a", "b"), "models": {
        "team": {"strategy": "least_busy", "targets": [A, B]}}})
    release = asyncio.Event()  # held requests wait for it; held streams trickle for about 1.5 s
    hold = [Reply(text="word " * 30, chunk_delay_s=0.05) if stream else Gate(release) for _ in range(2)]
    fake_openai.queue("a", *hold)
    held = [asyncio.ensure_future(post(raw, base, A, stream=stream)) for _ in range(2)]
    async with asyncio.timeout(BOUND_S):
        while len(fake_openai.calls("a")) < 2:  # two requests are out on `a`
            await asyncio.sleep(0.005)
    if stream:
        await asyncio.sleep(0.1)  # both streams are past their first content, relaying
    assert (await deployments(raw, base))[A]["in_flight"] == 2
    for _ in range(10):
        resp = await post(raw, base, "team")
        assert resp.json()["extra_fields"]["provider"] == "b"
    assert len(fake_openai.calls("a")) == 2
    release.set()
    done = await asyncio.gather(*held)
    assert all(r.status == 200 for r in done)
    # Idle again: in-flight counts went back to zero and `a` is in the rotation again.
    assert (await deployments(raw, base))[A]["in_flight"] == 0
    served = Counter(r.json()["extra_fields"]["provider"] for r in await many(raw, base, "team", 40, batch=1))
    assert served["a"] > 0 and served["b"] > 0


# -- hedging ---------------------------------------------------------------------------------------
def hedged(fake, after_ms: float) -> dict:
    """`first` tries `a`, then `b`: with `hedge_after_ms`, `b` starts if `a` is still silent."""
    return {"providers": providers(fake, "a", "b"),
            "models": {"first": {"targets": [A], "fallbacks": [B], "hedge_after_ms": after_ms}}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hedge_serves_the_fast_answer_and_cancels_the_slow_one(fake_openai, router, raw, stream):
    base = await router(hedged(fake_openai, 50))
    fake_openai.queue("a", Reply(text="slow answer", delay_s=1.0))
    fake_openai.queue("b", Reply(text="fast answer"))
    t0 = time.monotonic()
    resp = await post(raw, base, "first", stream=stream)
    took = time.monotonic() - t0
    assert resp.status == 200 and took < 0.6, took
    if stream:
        assert resp.events[-1] == "[DONE]" and resp.events[0]["extra_fields"]["provider"] == "b"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in resp.events[:-1] if c["choices"])
    else:
        assert resp.json()["extra_fields"]["provider"] == "b"
        text = resp.json()["choices"][0]["message"]["content"]
    assert text == "fast answer"
    assert trail(resp) == [(A, 0), (B, 200)]  # the cancelled one, then the served one last
    last = resp.events[-2] if stream else resp.json()
    assert last["extra_fields"]["attempts"][0]["error"] == "cancelled"
    async with asyncio.timeout(BOUND_S):
        while "a" not in fake_openai.aborts:  # the vendor saw the slow request hung up on
            await asyncio.sleep(0.01)
    assert len(fake_openai.calls("a")) == 1 and len(fake_openai.calls("b")) == 1
    stats = await deployments(raw, base)
    assert stats[A]["in_flight"] == 0 and stats[A]["errors"] == 0  # a cancelled hedge is not a failure


async def test_hedge_is_not_started_when_the_first_answers_in_time(fake_openai, router, raw):
    base = await router(hedged(fake_openai, 300))
    for stream in (False, True):
        resp = await post(raw, base, "first", stream=stream)
        assert resp.status == 200 and trail(resp) == [(A, 200)]
    await asyncio.sleep(0.35)  # past the hedge delay: still nobody called `b`
    assert len(fake_openai.calls("a")) == 2 and fake_openai.calls("b") == []


async def test_hedge_falls_back_at_once_when_the_first_fails_early(fake_openai, router, raw):
    base = await router(hedged(fake_openai, 300))
    fake_openai.queue("a", Fail(503))
    t0 = time.monotonic()
    resp = await post(raw, base, "first")
    assert time.monotonic() - t0 < 0.25  # did not wait for the hedge delay
    assert resp.status == 200 and trail(resp) == [(A, 503), (B, 200)]


async def test_hedge_backup_failing_leaves_the_first_to_serve(fake_openai, router, raw):
    base = await router(hedged(fake_openai, 50))
    fake_openai.queue("a", Reply(delay_s=0.2))
    fake_openai.queue("b", Fail(500, "b broke"))
    resp = await post(raw, base, "first")
    assert resp.status == 200 and trail(resp) == [(B, 500), (A, 200)]  # `a` was awaited, not dropped


async def test_hedge_where_both_fail_reports_both(fake_openai, router, raw):
    config = hedged(fake_openai, 50)
    config["providers"]["a"]["timeouts"] = {"first_byte_s": 0.3}
    base = await router(config)
    fake_openai.queue("a", Reply(delay_s=3))
    fake_openai.queue("b", Fail(500, "b broke"))
    t0 = time.monotonic()
    resp = await post(raw, base, "first")
    assert time.monotonic() - t0 < 1.0
    assert resp.status == 502 and "b broke" in resp.error["message"]
    assert trail(resp) == [(B, 500), (A, 0)]
