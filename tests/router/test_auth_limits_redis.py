"""Limiter against Redis failure modes: Cluster slots, an outage and its recovery, refused scripts."""

from __future__ import annotations

import asyncio
import time

import pytest
from support.fake_clock import Clock

from router.auth import Limiter, VirtualKey
from router.errors import ApiError
from router.redis_conn import RedisConn


def key(name: str = "team", **kw) -> VirtualKey:
    return VirtualKey(name=name, key_hash="0" * 64, **kw)



async def admitted(lims: list[Limiter], vk: VirtualKey, n: int, tokens: int = 0, cost: int = 0) -> list:
    async def one(i: int):
        try:
            return await lims[i % len(lims)].admit(vk, tokens, cost)
        except ApiError as exc:
            assert exc.status in (429, 402), exc.message
            return None

    return [r for r in await asyncio.gather(*(one(i) for i in range(n))) if r is not None]


async def wait_up(conn: RedisConn, timeout_s: float = 8.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not conn.up:
        assert time.monotonic() < deadline, "RedisConn did not come back up"
        await asyncio.sleep(0.05)


async def test_cluster_scripts_run_in_one_slot_and_stay_exact(redis_cluster, make_conn) -> None:
    clock = Clock()
    lims = [Limiter(await make_conn(redis_cluster.url, cluster=True), clock=clock) for _ in range(2)]
    # Many names, so the keys' slots land on all three masters.
    names = [f"team-{i}" for i in range(12)]
    for name in names:
        vk = key(name, rpm=5, tpm=10_000, budget_nanos=10**9)
        res = await admitted(lims, vk, 20, tokens=100, cost=1000)
        assert len(res) == 5
        for r in res:
            await lims[1].settle(r, 50, 500)
        left = await lims[0].remaining(vk)
        assert left["available"] and left["tpm_remaining"] == 10_000 - 250
        assert left["budget_spent_usd"] == pytest.approx(2500e-9) and left["budget_reserved_usd"] == 0
    vk = key("cluster-rpm", rpm=37)
    assert len(await admitted(lims, vk, 200)) == 37
    for lim in lims:
        assert lim.stats == {"degraded_admits": 0, "degraded_rejects": 0, "settle_failures": 0, "script_errors": 0}
    # One slot per key: the three counters of a key live on one master.
    from redis.crc import key_slot

    keys = lims[0]._keys(vk, 1, 1)
    assert len({key_slot(k.encode()) for k in keys}) == 1


async def test_outage_fail_open_then_exact_again(redis_server, redis_url, make_conn) -> None:
    clock = Clock()
    conn = await make_conn(redis_url, timeout_s=1.0)
    other = await make_conn(redis_url, timeout_s=1.0)
    open_lim = Limiter(conn, "fail_open", clock=clock)
    closed_lim = Limiter(conn, "fail_closed", clock=clock)
    vk = key(rpm=3, budget_nanos=1000)
    assert len(await admitted([open_lim], vk, 5, cost=1)) == 3
    held = await open_lim.admit(key("held", tpm=1000), 100, 0)

    redis_server.kill()
    started = time.monotonic()
    res = [await open_lim.admit(vk, 0, 1) for _ in range(10)]  # over the RPM: nobody can check it
    assert all(r.degraded for r in res) and res[0].headers() == {}
    assert open_lim.stats["degraded_admits"] == 10 and open_lim.degraded
    with pytest.raises(ApiError) as info:
        await closed_lim.admit(vk, 0, 1)
    err = info.value
    assert (err.status, err.code, err.headers) == (503, "limits_unavailable", {"retry-after": "1"})
    assert closed_lim.stats["degraded_rejects"] == 1
    # Once Redis is known to be down, nothing waits on it: no per-request timeouts.
    assert time.monotonic() - started < 2.0
    # A key without limits is not affected by the outage even when failing closed.
    assert not (await closed_lim.admit(key("free"), 1, 1)).degraded
    left = await open_lim.remaining(vk)
    assert left["available"] is False and left["rpm_remaining"] is None
    await open_lim.settle(held, 10, 0)  # cannot reach Redis: counted, never raised
    assert open_lim.stats["settle_failures"] == 1

    redis_server.start()
    await wait_up(conn)
    clock.t += 60  # (the restarted Redis lost its data anyway)
    other.failed(ConnectionError("the other instance noticed too"))
    await wait_up(other)
    lims = [open_lim, Limiter(other, "fail_closed", clock=clock)]
    vk = key("after", rpm=37)
    assert len(await admitted(lims, vk, 200)) == 37
    assert open_lim.stats["degraded_admits"] == 10


async def test_redis_down_at_start_follows_the_policy(make_conn) -> None:
    from support.redis_server import free_port

    conn = await make_conn(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    assert not conn.up
    with pytest.raises(ApiError) as info:
        await Limiter(conn, "fail_closed").admit(key(rpm=1), 0, 0)
    assert info.value.status == 503
    lim = Limiter(conn, "fail_open")
    assert (await lim.admit(key(rpm=1), 0, 0)).degraded


async def test_a_refused_script_is_not_a_silent_fallback(redis_server, redis_url, make_conn, caplog) -> None:
    """Peers silently fell back to per-process limits when Redis refused EVAL (ACLs, managed Redis
    with scripting off). Here it is logged as an error, counted, and the policy applies."""
    redis_server.cli("acl", "setuser", "noscript", "on", ">pw", "~*", "+@all", "-evalsha", "-eval")
    try:
        conn = await make_conn(redis_url.replace("redis://", "redis://noscript:pw@"))
        assert conn.up
        lim = Limiter(conn, "fail_open")
        assert (await lim.admit(key(rpm=1), 0, 0)).degraded
        assert (await lim.admit(key(rpm=1), 0, 0)).degraded
        assert lim.stats["script_errors"] == 2 and lim.stats["degraded_admits"] == 2
        assert conn.up  # Redis itself is fine: other users of the connection keep working
        assert any(r.levelname == "ERROR" and "refused the limiter script" in r.getMessage() for r in caplog.records)
        with pytest.raises(ApiError) as info:
            await Limiter(conn, "fail_closed").admit(key(rpm=1), 0, 0)
        assert info.value.code == "limits_unavailable"
    finally:
        redis_server.cli("acl", "deluser", "noscript")


async def test_script_cache_flush_falls_back_to_eval(redis_server, redis_url, make_conn) -> None:
    lim = Limiter(await make_conn(redis_url), clock=Clock())
    vk = key(rpm=2)
    await lim.admit(vk, 0, 0)
    redis_server.cli("script", "flush")  # as after a Redis restart or failover
    await lim.admit(vk, 0, 0)
    with pytest.raises(ApiError):
        await lim.admit(vk, 0, 0)
    assert lim.stats["script_errors"] == 0


async def test_pool_exhaustion_is_not_an_outage(redis_url, make_conn) -> None:
    """More concurrent admissions than the connection pool holds: they wait for a connection,
    Redis is not marked down and no request is admitted unchecked."""
    conn = await make_conn(redis_url, max_connections=3)
    lim = Limiter(conn, "fail_open", clock=Clock())
    assert len(await admitted([lim], key(rpm=50), 300)) == 50
    # Other users (cache, accounting) hold every connection for a while: the limiter waits for one.
    blockers = [asyncio.create_task(conn.client.blpop([f"nothing-{i}"], timeout=0.2)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert len(await admitted([lim], key("second", rpm=50), 100)) == 50
    await asyncio.gather(*blockers)
    assert conn.up and lim.stats["degraded_admits"] == 0
