"""Virtual keys, limits, the admin API and `/v1/usage` end to end: the real app over HTTP, a real Redis
(and the in-process backends), the fake vendor with a `pricing:` override so every cost is known, and
the official openai SDK where a client would use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import openai
import pytest
from fakes.openai_upstream import Fail, Reply
from support.key_limits import settled_limits

from providers.tokens import count_messages
from router.auth import KeyStore

MODEL = "up/gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]
ADMIN = {"Authorization": "Bearer admin-token"}
MAX_OUTPUT = 5  # the model's longest answer, as configured: what a request without max_tokens reserves
PRICE = {"input_per_mtok": 1000, "output_per_mtok": 2000, "cache_read_per_mtok": 500,
         "max_output_tokens": MAX_OUTPUT}
# The fake's usage: 12 prompt tokens (4 of them cached) and 5 completion tokens.
COST = 8 * 0.001 + 4 * 0.0005 + 5 * 0.002  # = 0.020 USD per request
# What the router reserves before the call: the prompt counted with tiktoken, plus the most output.
PROMPT_ESTIMATE = count_messages(MESSAGES, MODEL)
RESERVED = PROMPT_ESTIMATE * 0.001 + MAX_OUTPUT * 0.002


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _header(resp: Any, name: str) -> str | None:
    return {k.lower(): v for k, v in resp.headers.items()}.get(name)


@pytest.fixture(params=["redis", "memory"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def config(request, backend, fake_openai):
    """`config(keys, **sections)`: a router on the fake upstream `up`, auth on, state in `backend`."""

    def make(keys: list[dict], **sections: Any) -> dict:
        out: dict[str, Any] = {"providers": {"up": fake_openai.provider("up")}, "pricing": {MODEL: PRICE},
                               "auth": {"admin_token": "admin-token", "keys": keys}}
        if backend == "redis":
            out["redis"] = {"url": request.getfixturevalue("redis_url")}
        return {**out, **sections}

    return make


@pytest.fixture
def chat(raw):
    async def post(url: str, headers: dict | None, *, model: str = MODEL, messages: list | None = None,
                   **body: Any):
        return await raw.post(url + "/v1/chat/completions", headers=headers,
                              json={"model": model, "messages": messages or MESSAGES, **body})

    return post


def sdk(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10.0)


def _calls(fake) -> int:
    return len(fake.calls("up", "chat/completions"))


async def _fresh_minute(margin_s: float = 5.0) -> None:
    """Rate windows are calendar minutes: start a rate test well inside one (waits at most `margin_s`)."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await asyncio.sleep(left + 0.05)


# -- who may call what -----------------------------------------------------------------------------
async def test_missing_bad_and_disallowed_keys(config, make_router, fake_openai, chat) -> None:
    url = await make_router(config([{"name": "narrow", "key": "sk-narrow", "models": ["up/gpt-4o*", "fast"]}]))
    for headers in (None, bearer("sk-wrong"), {"Authorization": "Basic c2stbmFycm93"}, {"x-api-key": "sk-wrong"}):
        resp = await chat(url, headers)
        assert resp.status == 401, headers
        assert resp.error["type"] == "authentication_error" and resp.error["code"] == "invalid_api_key"
        assert _header(resp, "www-authenticate") == 'Bearer realm="switchboard"'
        assert b"sk-wrong" not in resp.body
    resp = await chat(url, bearer("sk-narrow"), model="up/o3")
    assert resp.status == 403 and resp.error["param"] == "model" and resp.error["code"] == "model_not_allowed"
    assert resp.error["type"] == "permission_error"
    assert fake_openai.calls() == []

    assert (await chat(url, {"x-api-key": "sk-narrow"})).status == 200
    async with sdk(url, "sk-narrow") as client:
        assert (await client.chat.completions.create(model=MODEL, messages=MESSAGES)).choices
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="up/o3", messages=MESSAGES)
    async with sdk(url, "sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert _calls(fake_openai) == 2


@pytest.mark.parametrize("backend", ["redis"])
async def test_lookups_wait_for_the_first_key_sync_instead_of_503(config, make_router, chat, monkeypatch) -> None:
    """A fresh instance whose first sync of the admin-key mirror is slow (a busy Redis): a lookup arriving
    while it is in flight waits for it, so an unknown key is a 401, never a 503 "cannot be checked"."""
    sync = KeyStore._sync

    async def slow_sync(self) -> bool:  # as `_sync` does: note the attempt, then wait on Redis
        self._tried_at = self._clock()
        await asyncio.sleep(0.3)
        return await sync(self)

    monkeypatch.setattr(KeyStore, "_sync", slow_sync)
    url = await make_router(config([]))
    first = asyncio.create_task(chat(url, bearer("sk-unknown-1")))
    await asyncio.sleep(0.1)  # the first sync is in flight now
    second = await chat(url, bearer("sk-unknown-2"))
    assert ((await first).status, second.status) == (401, 401)


async def test_rpm_limit_is_429_with_retry_after_and_rate_headers(config, make_router, fake_openai) -> None:
    url = await make_router(config([{"name": "slow", "key": "sk-slow", "rpm": 3}]))
    await _fresh_minute()
    async with sdk(url, "sk-slow") as client:
        for left in (2, 1, 0):
            resp = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
            assert resp.headers["x-ratelimit-limit-requests"] == "3"
            assert resp.headers["x-ratelimit-remaining-requests"] == str(left)
            assert re.fullmatch(r"\d+s", resp.headers["x-ratelimit-reset-requests"])
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    headers = refused.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-ratelimit-limit-requests"] == "3"
    assert refused.value.code == "rate_limit_exceeded"
    assert _calls(fake_openai) == 3


# -- budgets ---------------------------------------------------------------------------------------
async def test_budget_runs_out_with_402_after_the_requests_it_pays_for(config, make_router, fake_openai, raw,
                                                                       chat) -> None:
    estimate = RESERVED  # no max_tokens: the prompt and the model's longest answer are reserved
    budget = 2 * COST + estimate + COST / 2  # the 3rd request is admitted (2 x COST spent), not the 4th
    url = await make_router(config([{"name": "small", "key": "sk-small", "budget_usd": budget}]))
    statuses = []
    for _ in range(4):
        resp = await chat(url, bearer("sk-small"))
        statuses.append(resp.status)
        if resp.status == 200:
            assert resp.json()["extra_fields"]["billed_usage"]["cost_usd"] == pytest.approx(COST)
        await settled_limits(raw, url, "small")
    assert statuses == [200, 200, 200, 402]
    assert resp.error["type"] == "insufficient_quota" and resp.error["code"] == "budget_exceeded"
    assert int(_header(resp, "retry-after")) > 0
    assert _calls(fake_openai) == 3
    limits = await settled_limits(raw, url, "small")
    assert limits["budget_spent_usd"] == pytest.approx(3 * COST, abs=1e-9)
    assert limits["budget_remaining_usd"] == pytest.approx(budget - 3 * COST, abs=1e-9)


async def test_budget_is_reconciled_with_the_real_cost_not_the_estimate(config, make_router, fake_openai, raw,
                                                                        chat) -> None:
    """max_tokens=100 reserves 0.2 USD of output; the fake bills 0.02. Charging estimates would refuse the
    2nd request; reconciling leaves room for exactly two."""
    estimate = PROMPT_ESTIMATE * 0.001 + 100 * 0.002
    assert estimate > 10 * COST
    budget = estimate + 1.5 * COST
    url = await make_router(config([{"name": "recon", "key": "sk-recon", "budget_usd": budget}]))
    statuses = []
    for _ in range(3):
        statuses.append((await chat(url, bearer("sk-recon"), max_tokens=100)).status)
        limits = await settled_limits(raw, url, "recon")
    assert statuses == [200, 200, 402]
    assert limits["budget_spent_usd"] == pytest.approx(2 * COST, abs=1e-9)
    assert _calls(fake_openai) == 2


async def test_a_cache_hit_is_served_on_an_exhausted_budget(config, make_router, fake_openai, chat, raw) -> None:
    """A hit costs nothing, so a spent budget must not refuse it (it still counts as a request)."""
    estimate = RESERVED
    url = await make_router(config([{"name": "small", "key": "sk-small", "budget_usd": COST + estimate / 2}],
                                   cache={"ttl_s": 60}))
    first = await chat(url, bearer("sk-small"))
    assert first.status == 200 and _header(first, "x-switchboard-cache") == "miss"
    await settled_limits(raw, url, "small")
    other = await chat(url, bearer("sk-small"), messages=[{"role": "user", "content": "something else"}])
    assert other.status == 402  # the budget is spent for anything that would reach the vendor
    again = await chat(url, bearer("sk-small"))
    assert again.status == 200 and _header(again, "x-switchboard-cache") == "hit"
    assert again.json()["extra_fields"]["billed_usage"]["cost_usd"] == 0.0
    assert _calls(fake_openai) == 1


async def test_models_list_needs_a_key_and_shows_only_what_it_may_use(config, make_router, raw) -> None:
    url = await make_router(config([{"name": "narrow", "key": "sk-narrow", "models": ["fast", "secret", "up/gpt-*"]},
                                    {"name": "alias-only", "key": "sk-alias", "models": ["fast"]}],
                                   models={"fast": MODEL, "other": MODEL, "secret": "up/o3"}))
    assert (await raw.request("GET", url + "/v1/models")).status == 401
    resp = await raw.request("GET", url + "/v1/models", headers=bearer("sk-narrow"))
    # `other` may not be named, `secret` reaches nothing the key may use
    assert resp.status == 200 and [m["id"] for m in resp.json()["data"]] == ["fast"]
    resp = await raw.request("GET", url + "/v1/models", headers=bearer("sk-alias"))
    assert resp.status == 200 and resp.json()["data"] == []  # naming an alias is not reaching its targets
    assert (await raw.request("GET", url + "/v1/models/fast", headers=bearer("sk-narrow"))).json()["id"] == "fast"
    for hidden in ("other", "secret", "nope"):  # a model the key may not use looks like an unknown one
        resp = await raw.request("GET", url + f"/v1/models/{hidden}", headers=bearer("sk-narrow"))
        assert resp.status == 404 and resp.error["code"] == "model_not_found"
    assert (await raw.request("GET", url + "/v1/models/fast")).status == 401


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_leaves_early_frees_its_reservation(config, make_router, fake_openai, raw,
                                                                stream) -> None:
    """Cancelled before any answer: the reserved budget comes back at once, not when it expires."""
    url = await make_router(config([{"name": "quitter", "key": "sk-quit", "budget_usd": 100.0}]))
    fake_openai.queue("up", Reply(delay_s=5.0))
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 50, "stream": stream}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.5):
            await raw.post(url + "/v1/chat/completions", headers=bearer("sk-quit"), json=body)
    limits = await settled_limits(raw, url, "quitter")  # polls until nothing is reserved (fails after 5 s)
    assert limits["budget_spent_usd"] == 0


# -- the admin API -----------------------------------------------------------------------------------
async def test_admin_key_works_at_once_and_on_another_instance_and_delete_revokes(
        config, make_router, backend, chat, raw) -> None:
    cfg = config([])
    url = await make_router(cfg)
    other = await make_router(cfg) if backend == "redis" else None
    if other is not None:  # the other instance loads its key mirror before the key exists
        assert (await chat(other, bearer("sk-sb-not-yet"))).status == 401

    resp = await raw.post(url + "/admin/keys", json={"name": "fresh", "models": ["up/*"], "rpm": 100},
                          headers=ADMIN)
    assert resp.status == 201
    secret = resp.json()["key"]
    assert (await chat(url, bearer(secret))).status == 200
    assert (await chat(url, bearer(secret), model="other/model")).status == 403
    assert (await raw.post(url + "/admin/keys", json={"name": "fresh"}, headers=bearer(secret))).status == 401

    if other is not None:
        created = time.monotonic()
        while (resp := await chat(other, bearer(secret))).status != 200:
            assert resp.status == 401 and time.monotonic() - created < 3.0, "key not seen by the other instance"
            await asyncio.sleep(0.1)
        assert time.monotonic() - created < 2.0  # about a second (auth.keys miss refresh)

    resp = await raw.request("DELETE", url + "/admin/keys/fresh", headers=ADMIN)
    assert resp.status == 204
    assert (await chat(url, bearer(secret))).status == 401
    if other is not None:  # a known key is re-validated every 5 s
        deleted = time.monotonic()
        while (resp := await chat(other, bearer(secret))).status != 401:
            assert resp.status == 200 and time.monotonic() - deleted < 8.0, "deleted key still works elsewhere"
            await asyncio.sleep(0.2)


# -- usage -----------------------------------------------------------------------------------------
def _row(prompt: int, completion: int, cached: int, cost: float, requests: int, errors: int = 0,
         hits: int = 0) -> dict:
    return {"requests": requests, "errors": errors, "cache_hits": hits, "prompt_tokens": prompt,
            "completion_tokens": completion, "cached_tokens": cached, "total_tokens": prompt + completion,
            "cost_usd": pytest.approx(cost, abs=1e-9), "cost_nanos": round(cost * 1e9), "estimated_requests": 0,
            "unpriced_requests": 0}


async def test_usage_reports_each_key_and_model_exactly(config, make_router, backend, fake_openai, raw,
                                                        chat) -> None:
    keys = [{"name": "alpha", "key": "sk-alpha"}, {"name": "beta", "key": "sk-beta"}]
    # Caching on; a flush interval longer than the test, so only the handler's own flush can write.
    cache = {"backend": "memory"} if backend == "memory" else {}
    url = await make_router(config(keys, cache=cache, accounting={"flush_interval_s": 3600}))
    alpha, beta = bearer("sk-alpha"), bearer("sk-beta")
    one, two = [{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]
    for messages in (one, two, one):  # the 2nd "one" is a cache hit
        assert (await chat(url, alpha, messages=messages)).status == 200
    fake_openai.queue("up", Fail(503))
    assert (await chat(url, beta)).status == 502
    assert (await chat(url, beta)).status == 200
    fake_openai.queue("up", Reply(usage={"prompt_tokens": 30, "completion_tokens": 0, "total_tokens": 30}))
    assert (await chat(url, beta, messages=two)).status == 200
    assert _calls(fake_openai) == 5

    resp = await raw.request("GET", url + "/v1/usage?group_by=key,model", headers=ADMIN)
    assert resp.status == 200
    body = resp.json()
    assert body["backend"] == backend and body["group_by"] == ["key", "model"]
    assert body["data"] == [
        {"key": "alpha", "model": MODEL, **_row(24, 10, 8, 2 * COST, requests=3, hits=1)},
        {"key": "beta", "model": MODEL, **_row(42, 5, 4, COST + 30 * 0.001, requests=3, errors=1)},
    ]
    assert body["totals"] == _row(66, 15, 12, 3 * COST + 0.03, requests=6, errors=1, hits=1)

    resp = await raw.request("GET", url + "/v1/usage?key=beta&group_by=provider", headers=ADMIN)
    assert resp.json()["data"] == [{"provider": "up", **_row(42, 5, 4, COST + 0.03, requests=3, errors=1)}]
    resp = await raw.request("GET", url + "/v1/usage", headers=bearer("sk-alpha"))
    assert resp.status == 401 and resp.error["code"] == "invalid_admin_token"
