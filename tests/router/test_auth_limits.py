"""Limiter semantics: RPM, TPM and budgets exact under concurrency, on Redis and in memory.

Every semantic test runs against both backends: a private real Redis (with two `Limiter`s on two
separate connections, as two router instances would be) and the in-memory backend. Time is a
fake clock, so window roll-overs need no sleeping.
"""

from __future__ import annotations

import asyncio

import pytest
from support.fake_clock import T0, Clock

from router.auth import Limiter, VirtualKey, usd_to_nanos
from router.errors import ApiError


def key(name: str = "team", **kw) -> VirtualKey:
    return VirtualKey(name=name, key_hash="0" * 64, **kw)



@pytest.fixture(params=["redis", "memory"])
async def limiters(request, make_conn):
    """`await limiters(n, **kw)` -> n limiters sharing state the way n router instances would (one
    Redis; in memory there is only one process, so the same limiter n times), and the clock."""
    clock = Clock()

    async def make(n: int = 1, **kw) -> list[Limiter]:
        if request.param == "memory":
            return [Limiter(None, clock=clock, **kw)] * n
        url = request.getfixturevalue("redis_url")
        conns = [await make_conn(url) for _ in range(n)]
        assert all(conn.up for conn in conns)
        return [Limiter(conn, clock=clock, **kw) for conn in conns]

    make.clock = clock
    make.backend = request.param
    return make


async def attempt(limiter: Limiter, vk: VirtualKey, tokens: int = 0, cost: int = 0):
    try:
        return await limiter.admit(vk, tokens, cost)
    except ApiError as exc:
        return exc


def split(results):
    ok = [r for r in results if not isinstance(r, ApiError)]
    return ok, [r for r in results if isinstance(r, ApiError)]


async def burst(lims: list[Limiter], vk: VirtualKey, n: int, tokens: int = 0, cost: int = 0):
    results = await asyncio.gather(*(attempt(lims[i % len(lims)], vk, tokens, cost) for i in range(n)))
    assert not any(lim.stats["degraded_admits"] or lim.degraded for lim in lims)  # every answer was checked
    return split(results)


async def test_rpm_exact_across_two_instances(limiters) -> None:
    lims = await limiters(2)
    vk = key(rpm=37)
    ok, refused = await burst(lims, vk, 200)
    assert len(ok) == 37 and len(refused) == 163
    err = refused[0]
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert err.headers["retry-after"] == "59"  # the clock is 1 s into the minute
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "37 requests per minute" in err.message
    assert sorted(r.requests for r in ok) == list(range(1, 38))
    assert ok[0].headers()["x-ratelimit-limit-requests"] == "37"
    # The next minute starts a new window: exactly 37 again.
    limiters.clock.t += 60
    ok, _ = await burst(lims, vk, 100)
    assert len(ok) == 37


async def test_retry_after_counts_to_the_window_end(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key(rpm=1)
    limiters.clock.t = T0 + 59.2
    await lim.admit(vk, 0, 0)
    with pytest.raises(ApiError) as info:
        await lim.admit(vk, 0, 0)
    assert info.value.headers["retry-after"] == "1"
    limiters.clock.t = T0 + 60.0
    await lim.admit(vk, 0, 0)


async def test_tpm_reserves_atomically_and_settle_frees(limiters) -> None:
    lims = await limiters(2)
    vk = key(tpm=1000)
    ok, refused = await burst(lims, vk, 50, tokens=100)
    assert len(ok) == 10 and all(e.status == 429 for e in refused)
    assert "1000 tokens per minute" in refused[0].message
    assert refused[0].headers["x-ratelimit-remaining-tokens"] == "0"
    # Five requests used 20 tokens, not 100: 400 tokens come back, four more requests fit.
    for res in ok[:5]:
        await lims[0].settle(res, 20, 0)
    ok2, _ = await burst(lims, vk, 20, tokens=100)
    assert len(ok2) == 4
    left = await lims[1].remaining(vk)
    assert left["tpm_remaining"] == 1000 - (5 * 20 + 5 * 100 + 4 * 100)
    # Real usage above the estimate is charged too, to the minute the request was admitted in.
    await lims[1].settle(ok[5], 150, 0)
    assert (await lims[0].remaining(vk))["tpm_remaining"] == 0


async def test_request_larger_than_tpm_is_refused_without_retry_after(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key(tpm=500, rpm=10)
    with pytest.raises(ApiError) as info:
        await lim.admit(vk, 501, 0)
    assert info.value.status == 429 and "retry-after" not in info.value.headers
    assert "request too large" in info.value.message
    left = await lim.remaining(vk)
    assert (left["rpm_remaining"], left["tpm_remaining"]) == (10, 500)  # nothing consumed
    await lim.admit(vk, 500, 0)  # exactly the limit fits


async def test_budget_exact_and_settle_below_estimate_frees_budget(limiters) -> None:
    lims = await limiters(2)
    est = 3_000_000  # 0.003 USD
    vk = key(budget_nanos=7 * est + est - 1, budget_period_s=3600)
    ok, refused = await burst(lims, vk, 100, tokens=10, cost=est)
    assert len(ok) == 7
    err = refused[0]
    assert (err.status, err.type, err.code) == (402, "insufficient_quota", "budget_exceeded")
    assert err.headers == {"retry-after": "3599"}  # seconds to the end of the hour-long period
    assert "USD" in err.message and "team" in err.message
    # Three requests cost half their estimate: 1.5 * est frees up, so one more fits (est - 1 was left).
    for res in ok[:3]:
        await lims[1].settle(res, 10, est // 2)
    ok2, _ = await burst(lims, vk, 10, cost=est)
    assert len(ok2) == 2
    left = await lims[0].remaining(vk)
    assert left["budget_spent_usd"] == pytest.approx(3 * est / 2 / 1e9)
    assert left["budget_reserved_usd"] == pytest.approx(6 * est / 1e9)
    assert left["budget_remaining_usd"] == pytest.approx((vk.budget_nanos - 7.5 * est) / 1e9)


async def test_zero_cost_requests_pass_an_exhausted_budget(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key(budget_nanos=usd_to_nanos(0.01))
    res = await lim.admit(vk, 10, usd_to_nanos(0.01))
    await lim.settle(res, 10, usd_to_nanos(0.02))  # overspent: the real cost was above the estimate
    with pytest.raises(ApiError) as info:
        await lim.admit(vk, 10, 1)
    assert info.value.status == 402
    res = await lim.admit(vk, 10, 0)  # a free model still works
    assert not res.degraded


async def test_budget_zero_refuses_every_priced_request(limiters) -> None:
    (lim,) = await limiters(1)
    with pytest.raises(ApiError) as info:
        await lim.admit(key(budget_nanos=0), 1, 1)
    assert info.value.code == "budget_exceeded"


async def test_budget_period_rolls_over(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key(budget_nanos=100, budget_period_s=3600)
    await lim.settle(await lim.admit(vk, 0, 100), 0, 100)
    with pytest.raises(ApiError):
        await lim.admit(vk, 0, 1)
    limiters.clock.t = T0 + 3600  # the next period, aligned to epoch multiples of an hour
    await lim.admit(vk, 0, 100)


async def test_a_refusal_consumes_no_other_limit(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key(rpm=1, tpm=1000, budget_nanos=1000)
    await lim.admit(vk, 100, 100)
    with pytest.raises(ApiError) as info:  # refused by RPM
        await lim.admit(vk, 100, 100)
    assert info.value.status == 429
    left = await lim.remaining(vk)
    assert (left["rpm_remaining"], left["tpm_remaining"]) == (0, 900)
    assert left["budget_reserved_usd"] == pytest.approx(100 / 1e9)
    # Refused by the budget: no request counted, no tokens reserved.
    vk2 = key("other", rpm=5, tpm=1000, budget_nanos=50)
    with pytest.raises(ApiError) as info:
        await lim.admit(vk2, 100, 100)
    assert info.value.status == 402
    left = await lim.remaining(vk2)
    assert (left["rpm_remaining"], left["tpm_remaining"], left["budget_reserved_usd"]) == (5, 1000, 0)
    # Refused by TPM: the request is not counted against RPM.
    vk3 = key("third", rpm=2, tpm=100)
    await lim.admit(vk3, 100, 0)
    with pytest.raises(ApiError):
        await lim.admit(vk3, 1, 0)
    assert (await lim.remaining(vk3))["rpm_remaining"] == 1


async def test_unsettled_reservations_expire(limiters) -> None:
    (lim,) = await limiters(1, reservation_ttl_s=300)
    vk = key(budget_nanos=1000, budget_period_s=86400)
    await lim.admit(vk, 0, 1000)  # the worker "dies": never settled
    with pytest.raises(ApiError):
        await lim.admit(vk, 0, 1)
    limiters.clock.t += 300 + 60
    assert (await lim.remaining(vk))["budget_reserved_usd"] == 0
    res = await lim.admit(vk, 0, 1000)
    await lim.settle(res, 0, 400)
    left = await lim.remaining(vk)
    assert (left["budget_spent_usd"], left["budget_reserved_usd"]) == (pytest.approx(400e-9), 0)


async def test_late_settle_of_an_expired_reservation_releases_nothing_else(limiters) -> None:
    (lim,) = await limiters(1, reservation_ttl_s=60)
    vk = key(budget_nanos=1000, budget_period_s=86400)
    old = await lim.admit(vk, 0, 600)
    limiters.clock.t += 180
    new = await lim.admit(vk, 0, 600)  # the old reservation expired: 600 + 600 fits again
    await lim.settle(old, 0, 0)  # must not release the new reservation's budget
    assert (await lim.remaining(vk))["budget_reserved_usd"] == pytest.approx(600e-9)
    await lim.settle(new, 0, 0)
    assert (await lim.remaining(vk))["budget_reserved_usd"] == 0


async def test_settle_twice_is_a_no_op(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key(tpm=100, budget_nanos=100)
    res = await lim.admit(vk, 50, 50)
    await lim.settle(res, 10, 10)
    await lim.settle(res, 10, 10)
    left = await lim.remaining(vk)
    assert (left["tpm_remaining"], left["budget_spent_usd"], left["budget_reserved_usd"]) == (90, 1e-8, 0)


async def test_keys_do_not_share_counters(limiters) -> None:
    (lim,) = await limiters(1)
    await lim.admit(key("a", rpm=1), 0, 0)
    await lim.admit(key("b", rpm=1), 0, 0)
    with pytest.raises(ApiError):
        await lim.admit(key("a", rpm=1), 0, 0)


async def test_key_without_limits_is_admitted_at_once(limiters) -> None:
    (lim,) = await limiters(1)
    vk = key()
    for _ in range(1000):
        res = await lim.admit(vk, 10**9, 10**12)
        await lim.settle(res, 10**9, 10**12)
    assert res.headers() == {}
    left = await lim.remaining(vk)
    assert left["available"] and left["rpm_remaining"] is None and left["budget_remaining_usd"] is None
    assert await lim.admit(None, 1, 1) is res  # auth off: no key at all


def command_calls(server) -> dict[str, int]:
    calls = {}
    for line in server.cli("info", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            calls[name[8:]] = int(rest.split(",")[0].split("=")[1])
    return {k: v for k, v in calls.items() if k not in ("info", "config|resetstat", "config")}


async def test_hot_paths_make_no_redis_calls(redis_server, redis_url, make_conn) -> None:
    lim = Limiter(await make_conn(redis_url), clock=Clock())
    rpm_only, exact_tpm = key("r", rpm=100), key("t", tpm=10_000)
    admitted = [await lim.admit(rpm_only, 10, 10) for _ in range(5)]
    admitted_t = [await lim.admit(exact_tpm, 10, 10) for _ in range(5)]
    redis_server.cli("config", "resetstat")
    for _ in range(50):
        await lim.settle(await lim.admit(key(), 100, 100), 100, 100)  # no limits at all
    for res in admitted:
        await lim.settle(res, 999, 999)  # RPM only: nothing to reconcile
    for res in admitted_t:
        await lim.settle(res, 10, 999)  # TPM only and the estimate was right
    assert command_calls(redis_server) == {}
    await lim.admit(rpm_only, 0, 0)
    calls = command_calls(redis_server)  # (commands run inside a script are listed too)
    assert calls["evalsha"] == 1 and "eval" not in calls  # one EVALSHA per limited admission


async def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        Limiter(None, "fail_sometimes")
