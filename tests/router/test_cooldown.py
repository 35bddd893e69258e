"""Circuit breakers and key cool-downs end to end: a broken deployment is skipped, then recovers.

With `routing.cooldown: {failures: 2, window_s: 10, cooldown_s: 0.5}` two failures open a
deployment's breaker; while open, requests skip it (the fake sees no call); after the cool-down one
probe goes through (half-open) and its outcome closes or re-opens the breaker. `/readyz` reports
the state. Every request runs under `asyncio.timeout`; every wait for a state change is bounded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fakes.openai_upstream import SECRET, Fail, Gate, Reply

USER = [{"role": "user", "content": "hi"}]
M = "gpt-4o-mini"
P, S = f"primary/{M}", f"second/{M}"
BOUND_S = 5.0
COOLDOWN = {"failures": 2, "window_s": 10, "cooldown_s": 0.5}


async def start(make_router, fake, cooldown: dict | None = None, primary: dict | None = None) -> str:
    config = {"providers": {"primary": fake.provider("primary", **(primary or {})), "second": fake.provider("second")},
              "routing": {"cooldown": {**COOLDOWN, **(cooldown or {})}}}
    return await make_router(config)


async def post(raw, base: str, *models: str, stream: bool = False):
    payload: dict[str, Any] = {"model": models[0], "messages": USER, "stream": stream}
    if len(models) > 1:
        payload["fallbacks"] = list(models[1:])
    async with asyncio.timeout(BOUND_S):
        return await raw.post(base + "/v1/chat/completions", json=payload)


def trail(resp) -> list[tuple[str, int]]:
    if resp.events:
        last = [e for e in resp.events if e != "[DONE]"][-1]
        return [(a["model"], a["status"]) for a in last["extra_fields"]["attempts"]]
    return [(a["model"], a["status"]) for a in resp.json()["extra_fields"]["attempts"]]


async def breaker(raw, base: str, label: str = P) -> dict:
    """The `/readyz` entry of `label`'s deployment (its only key)."""
    async with asyncio.timeout(BOUND_S):
        ready = (await raw.request("GET", base + "/readyz")).json()
    assert ready["status"] == "ready"  # an open breaker never makes the router unready
    [dep] = [d for d in ready["checks"]["deployments"] if d["deployment"] == label]
    return dep


async def open_primary(fake, raw, base: str) -> float:
    """Two 503s open the primary's breaker; returns when the second one was answered."""
    fake.queue("primary", Fail(503), Fail(503))
    for _ in range(2):
        resp = await post(raw, base, P, S)
        assert resp.status == 200 and trail(resp) == [(P, 503), (S, 200)]
    return time.monotonic()


async def sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def test_breaker_opens_skips_then_one_probe_closes_it(fake_openai, make_router, raw):
    base = await start(make_router, fake_openai)
    opened_at = await open_primary(fake_openai, raw, base)
    dep = await breaker(raw, base)
    assert dep["state"] == "open" and 0 < dep["cooldown_remaining_s"] <= 0.5
    assert dep["key"] == "primary#0" and dep["errors"] == 2 and "overloaded" in dep["last_error"]

    for stream in (False, True, False):  # skipped while open: the vendor hears nothing
        resp = await post(raw, base, P, S, stream=stream)
        assert resp.status == 200 and trail(resp) == [(S, 200)]
    assert len(fake_openai.calls("primary")) == 2

    await sleep_until(opened_at + 0.55)
    assert (await breaker(raw, base))["state"] == "half_open"
    release = asyncio.Event()
    fake_openai.queue("primary", Gate(release))  # the probe hangs until released
    probe = asyncio.ensure_future(post(raw, base, P, S))
    async with asyncio.timeout(BOUND_S):
        while len(fake_openai.calls("primary")) < 3:
            await asyncio.sleep(0.005)
    # While the probe is out, other requests do not pile onto the half-open deployment.
    during = await asyncio.gather(*(post(raw, base, P, S, stream=i % 2 == 1) for i in range(4)))
    assert all(trail(r) == [(S, 200)] for r in during)
    assert len(fake_openai.calls("primary")) == 3
    release.set()
    resp = await probe
    assert resp.status == 200 and trail(resp) == [(P, 200)]
    assert (await breaker(raw, base))["state"] == "closed"

    resp = await post(raw, base, P, S)  # closed again: the primary serves
    assert trail(resp) == [(P, 200)] and len(fake_openai.calls("primary")) == 4


async def test_failed_probe_reopens_the_breaker(fake_openai, make_router, raw):
    base = await start(make_router, fake_openai)
    opened_at = await open_primary(fake_openai, raw, base)
    await sleep_until(opened_at + 0.55)
    fake_openai.queue("primary", Fail(503, "still broken"))
    resp = await post(raw, base, P, S)
    assert trail(resp) == [(P, 503), (S, 200)]
    dep = await breaker(raw, base)  # one failed probe is enough to re-open it for a full cool-down
    assert dep["state"] == "open" and 0.3 < dep["cooldown_remaining_s"] <= 0.5
    assert dep["last_error"] == "primary: still broken"
    resp = await post(raw, base, P, S)
    assert trail(resp) == [(S, 200)] and len(fake_openai.calls("primary")) == 3


async def test_a_probe_stream_cut_after_content_closes_the_breaker_and_counts_once(fake_openai, make_router, raw):
    """A stream that opened fine closes the breaker; a later cut counts as one failure, not a trip."""
    base = await start(make_router, fake_openai)
    opened_at = await open_primary(fake_openai, raw, base)
    await sleep_until(opened_at + 0.55)
    fake_openai.queue("primary", Reply(cut_after=3, chunk_delay_s=0.03))
    resp = await post(raw, base, P, S, stream=True)
    assert "error" in resp.events[-1] and trail(resp) == [(P, 200)]
    dep = await breaker(raw, base)
    assert dep["state"] == "closed" and dep["errors"] == 3


async def test_when_every_deployment_is_cooling_down_they_are_tried_anyway(fake_openai, make_router, raw):
    base = await start(make_router, fake_openai)
    fake_openai.queue("primary", Fail(503), Fail(503))
    fake_openai.queue("second", Fail(502), Fail(502))
    for _ in range(2):
        resp = await post(raw, base, P, S)
        assert resp.status == 502 and trail(resp) == [(P, 503), (S, 502)]
    assert (await breaker(raw, base, P))["state"] == "open" and (await breaker(raw, base, S))["state"] == "open"

    # Both open: rather than fail unheard, the chain is walked anyway, in order.
    fake_openai.queue("primary", Fail(503, "primary still down"))
    resp = await post(raw, base, P, S)
    assert resp.status == 200 and trail(resp) == [(P, 503), (S, 200)]
    assert len(fake_openai.calls("primary")) == 3 and len(fake_openai.calls("second")) == 3

    # The primary alone, still open (the failure above re-armed it): tried, and its error reported.
    assert (await breaker(raw, base, P))["state"] == "open"
    fake_openai.queue("primary", Fail(503, "primary still down"))
    resp = await post(raw, base, P)
    assert resp.status == 502 and "primary still down" in resp.error["message"] and trail(resp) == [(P, 503)]
    resp = await post(raw, base, P, stream=True)
    assert resp.status == 200 and resp.events[-1] == "[DONE]" and trail(resp) == [(P, 200)]
    assert len(fake_openai.calls("primary")) == 5


async def test_429_retry_after_opens_the_breaker_for_that_long(fake_openai, make_router, raw):
    base = await start(make_router, fake_openai)  # cooldown_s is 0.5: Retry-After (1 s) wins
    fake_openai.queue("primary", Fail(429, "Rate limit reached", retry_after="1"))
    resp = await post(raw, base, P, S)
    limited_at = time.monotonic()
    assert trail(resp) == [(P, 429), (S, 200)]
    dep = await breaker(raw, base)
    assert dep["state"] == "open" and 0.8 < dep["cooldown_remaining_s"] <= 1.0

    await sleep_until(limited_at + 0.6)  # past cooldown_s, not past Retry-After: still skipped
    resp = await post(raw, base, P, S)
    assert trail(resp) == [(S, 200)] and len(fake_openai.calls("primary")) == 1

    await sleep_until(limited_at + 1.05)
    resp = await post(raw, base, P, S)
    assert trail(resp) == [(P, 200)] and (await breaker(raw, base))["state"] == "closed"


async def test_failures_outside_the_window_do_not_open_the_breaker(fake_openai, make_router, raw):
    base = await start(make_router, fake_openai, cooldown={"window_s": 0.2})
    for _ in range(2):
        fake_openai.queue("primary", Fail(503))
        resp = await post(raw, base, P, S)
        assert trail(resp) == [(P, 503), (S, 200)]
        await asyncio.sleep(0.25)
    assert (await breaker(raw, base))["state"] == "closed"
    resp = await post(raw, base, P, S)
    assert trail(resp) == [(P, 200)]


async def test_caller_errors_never_open_the_breaker(fake_openai, make_router, raw):
    base = await start(make_router, fake_openai)
    fake_openai.queue("primary", *(Fail(400, "bad 'temperature'", param="temperature") for _ in range(3)))
    for _ in range(3):
        resp = await post(raw, base, P, S)
        assert resp.status == 400 and trail(resp) == [(P, 400)]
    assert (await breaker(raw, base))["state"] == "closed"
    assert trail(await post(raw, base, P, S)) == [(P, 200)]


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_recovers_after_its_cooldown(fake_openai, make_router, raw, status):
    keys = {"keys": [{"value": f"{SECRET}-A"}, {"value": f"{SECRET}-B"}]}
    base = await start(make_router, fake_openai, cooldown={"key_cooldown_s": 0.8}, primary=keys)
    fake_openai.queue("primary", Fail(status, "Incorrect API key provided.", code="invalid_api_key"))
    resp = await post(raw, base, P, S)
    rejected_at = time.monotonic()
    assert trail(resp) == [(P, status), (P, 200)]
    bad = fake_openai.calls("primary")[0].headers["Authorization"]
    for _ in range(5):  # cooling down: never picked
        await post(raw, base, P, S)
    assert all(c.headers["Authorization"] != bad for c in fake_openai.calls("primary")[1:])

    await sleep_until(rejected_at + 0.85)
    async with asyncio.timeout(BOUND_S):  # back in the weighted rotation (1 in 2 per request)
        while fake_openai.calls("primary")[-1].headers["Authorization"] != bad:
            await post(raw, base, P, S)
