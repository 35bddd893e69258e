"""Token and cost accounting: exact totals in memory and in real Redis (standalone and Cluster),
idempotent batches, outages (a killed redis-server) and shutdown flushes, and `GET /v1/usage`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from router.accounting import Accountant, Billed, UsageRecord, store
from router.accounting.record import utc_day
from router.app import build_app
from router.config import parse_config
from router.config.schema import AccountingConfig, RedisConfig
from router.gateway import GATEWAY
from router.redis_conn import RedisConn

DAYS = ("2025-01-30", "2025-01-31", "2025-02-01", "2025-02-02")
KEYS = ("team-a", "team-b", "anonymous", "ops")
MODELS = {"openai": ("gpt-4o-mini", "gpt-4o"), "anthropic": ("claude-haiku-4-5",), "demo": ("echo",),
          "local": ("llama3.1",)}
ROW_FIELDS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cached_tokens",
              "total_tokens", "cost_nanos", "estimated_requests", "unpriced_requests")


def make_records(n: int, seed: int, days: Iterable[str] = DAYS) -> list[UsageRecord]:
    """Records as the handlers will make them: priced, unpriced, cache hits, failures, estimates."""
    rng = random.Random(seed)
    days = tuple(days)
    out = []
    for _ in range(n):
        provider = rng.choice(list(MODELS))
        model = f"{provider}/{rng.choice(MODELS[provider])}"
        roll = rng.random()
        cache_hit, ok = roll < 0.1, not 0.1 <= roll < 0.15
        prompt = rng.randint(1, 20000) if ok else 0
        completion = rng.randint(0, 4000) if ok else 0
        cached = rng.randint(0, prompt) if ok and rng.random() < 0.3 else 0
        if not ok or provider == "local":
            cost = None  # failure without usage, or a model with no known price
        elif provider == "demo":
            cost = 0.0
        else:  # what the pricer returns: float USD rounded to 10 decimals
            cost = round((prompt - cached) * 1.5e-7 + cached * 7.5e-8 + completion * 6e-7, 10)
        out.append(UsageRecord(rng.choice(KEYS), provider, model, prompt, completion, cached, cost,
                               estimated=ok and rng.random() < 0.05, cache_hit=cache_hit, ok=ok,
                               day=rng.choice(days)))
    return out


def reference(records: Iterable[UsageRecord], group_by: Iterable[str] = (), key: str | None = None,
              days: Iterable[str] | None = None) -> dict[tuple, dict[str, int]]:
    """Totals computed independently from the records (cost in nanos)."""
    group_by = tuple(group_by)
    wanted = set(days) if days is not None else None
    out: dict[tuple, Counter] = defaultdict(Counter)
    for r in records:
        if (key is not None and r.key != key) or (wanted is not None and r.day not in wanted):
            continue
        c = out[tuple(getattr(r, g) for g in group_by)]
        c["requests"] += 1
        c["errors"] += not r.ok
        if r.cache_hit:
            c["cache_hits"] += 1
            continue
        c["prompt_tokens"] += r.prompt_tokens
        c["completion_tokens"] += r.completion_tokens
        c["total_tokens"] += r.prompt_tokens + r.completion_tokens
        c["cached_tokens"] += r.cached_tokens
        c["cost_nanos"] += round(r.cost_usd * 1e9) if r.cost_usd is not None else 0
        c["estimated_requests"] += r.estimated
        c["unpriced_requests"] += r.cost_usd is None and bool(r.prompt_tokens or r.completion_tokens)
    return {g: {f: c[f] for f in ROW_FIELDS} for g, c in out.items()}


def as_table(rows: list[dict], group_by: Iterable[str] = ()) -> dict[tuple, dict[str, int]]:
    group_by = tuple(group_by)
    table = {}
    for row in rows:
        assert row["cost_usd"] == round(row["cost_nanos"] / 1e9, 9)
        assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
        table[tuple(row[g] for g in group_by)] = {f: row[f] for f in ROW_FIELDS}
    return table


async def assert_exact(acct: Accountant, records: list[UsageRecord]) -> None:
    """Totals equal the records' sums for every grouping, a key filter and a sub-range."""
    for group_by in ((), ("model",), ("provider",), ("key",), ("day",), ("day", "key", "provider", "model"),
                     ("key", "model")):
        rows = await acct.totals(DAYS[0], DAYS[-1], group_by=group_by)
        assert as_table(rows, group_by) == reference(records, group_by)
    rows = await acct.totals(DAYS[0], DAYS[-1], key="team-b", group_by=("model",))
    assert as_table(rows, ("model",)) == reference(records, ("model",), key="team-b")
    rows = await acct.totals(DAYS[1], DAYS[2], group_by=("day",))
    assert as_table(rows, ("day",)) == reference(records, ("day",), days=DAYS[1:3])


async def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def redis_conn(url: str, cluster: bool = False) -> RedisConn:
    """A connection with a key prefix of its own, so tests never see each other's counters."""
    conn = RedisConn(RedisConfig(url=url, cluster=cluster, key_prefix=f"t{uuid.uuid4().hex[:10]}"))
    await conn.start()
    assert conn.up
    return conn


@pytest.fixture
async def conn(redis_url):
    conn = await redis_conn(redis_url)
    yield conn
    await conn.close()


# -- records ------------------------------------------------------------------------------------------
def test_record_from_billed_and_day():
    billed = Billed.from_dict({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "cached_tokens": 4,
                               "cost_usd": 1.25e-05, "estimated": True})
    rec = UsageRecord.from_billed(None, "openai", "openai/gpt-4o-mini", billed)
    assert (rec.key, rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens, rec.cost_usd, rec.estimated) == \
        ("anonymous", 12, 5, 4, 1.25e-05, True)
    assert rec.day == time.strftime("%Y-%m-%d", time.gmtime())
    assert utc_day(0) == "1970-01-01" and utc_day(86399.9) == "1970-01-01" and utc_day(86400) == "1970-01-02"
    failed = UsageRecord.from_billed("team-a", "openai", "openai/gpt-4o", None, ok=False)
    assert (failed.ok, failed.prompt_tokens, failed.cost_usd) == (False, 0, None)
    hit = UsageRecord.from_billed("team-a", "openai", "openai/gpt-4o", billed, cache_hit=True)
    assert (hit.cache_hit, hit.prompt_tokens, hit.cost_usd) == (True, 0, 0.0)  # a hit is never billed


# -- memory backend -------------------------------------------------------------------------------------
async def test_memory_backend_totals_exact():
    acct = Accountant(None, AccountingConfig())
    records = make_records(3000, seed=1)
    for rec in records:
        acct.record(rec)
    assert acct.backend == "memory" and acct.buffered == 0
    assert await acct.flush() is True  # nothing to flush: the aggregate is the store
    await assert_exact(acct, records)
    # cost is summed in integer nanos: no float drift however many records
    total = (await acct.totals(DAYS[0], DAYS[-1]))[0]
    assert total["cost_nanos"] == sum(round(r.cost_usd * 1e9) for r in records if r.cost_usd and not r.cache_hit)
    assert await acct.totals("2024-01-01", "2024-01-31") == []
    with pytest.raises(ValueError):
        await acct.totals(DAYS[0], DAYS[-1], group_by=("tenant",))
    await acct.close()


async def test_cache_hits_errors_and_unpriced():
    acct = Accountant(None)
    day = DAYS[0]
    acct.record(UsageRecord("k", "openai", "openai/gpt-4o", 100, 10, 0, 0.001, cache_hit=True, day=day))
    acct.record(UsageRecord("k", "openai", "openai/gpt-4o", 0, 0, 0, None, ok=False, day=day))
    acct.record(UsageRecord("k", "openai", "openai/gpt-4o", 30, 3, 0, None, day=day))
    acct.record(UsageRecord("k", "openai", "openai/gpt-4o", 10, 2, 5, 0.1234567891, estimated=True, day=day))
    [row] = await acct.totals(day, day, group_by=("model",))
    assert row == {"model": "openai/gpt-4o", "requests": 4, "errors": 1, "cache_hits": 1, "prompt_tokens": 40,
                   "completion_tokens": 5, "cached_tokens": 5, "total_tokens": 45, "cost_usd": 0.123456789,
                   "cost_nanos": 123456789, "estimated_requests": 1, "unpriced_requests": 1}


async def test_record_never_raises_on_a_malformed_record():
    acct = Accountant(None)
    acct.record(UsageRecord("k", "p", "p/m", "many", 1, 0, 0.1, day=DAYS[0]))  # type: ignore[arg-type]
    acct.record(UsageRecord("k", "p", "p/m", 1, 1, 0, float("nan"), day=DAYS[0]))
    assert acct.dropped == 2
    assert await acct.totals(DAYS[0], DAYS[0]) == []  # nothing half-applied


# -- Redis --------------------------------------------------------------------------------------------
async def test_redis_flush_totals_exact_across_instances(conn, redis_url, monkeypatch):
    """Two accountants (two instances) write into the same counters; a third reads them."""
    monkeypatch.setattr(store, "CHUNK", 7)  # many batches per flush
    other = await redis_conn(redis_url)
    other.prefix = conn.prefix
    a, b = Accountant(conn, AccountingConfig()), Accountant(other, AccountingConfig())
    records_a, records_b = make_records(2500, seed=2), make_records(2500, seed=3)
    for rec in records_a:
        a.record(rec)
    for rec in records_b:
        b.record(rec)
    assert a.buffered > 7
    assert await a.flush() and await b.flush()
    assert a.buffered == b.buffered == 0 and a.dropped == b.dropped == 0
    await assert_exact(Accountant(conn), records_a + records_b)
    # the layout: one hash per day, every key under the {usage} hash tag, one marker per writer
    keys = sorted(k.decode() for k in await conn.client.keys(conn.prefix + ":*"))
    assert [k for k in keys if ":day:" in k] == [f"{conn.prefix}:{{usage}}:day:{d}" for d in DAYS]
    assert sorted(k for k in keys if ":writer:" in k) == sorted(
        f"{conn.prefix}:{{usage}}:writer:{acct.writer_id}" for acct in (a, b))
    await other.close()


async def test_batch_applied_twice_counts_once(conn):
    acct = Accountant(conn)
    records = make_records(400, seed=4)
    for rec in records:
        acct.record(rec)
    batches = acct._seal()
    assert batches
    for batch in batches:
        assert await acct._apply(batch) == 1
        assert await acct._apply(batch) == 0  # same writer, same number: already applied
    assert await acct.flush()
    await assert_exact(acct, records)


async def test_lost_reply_is_retried_without_double_counting(conn):
    """The script ran but its reply never arrived: the batch is retried and counted once."""
    acct = Accountant(conn, AccountingConfig(flush_interval_s=0.05))
    await acct.start()
    real_apply = acct._apply
    results: list[int] = []

    async def apply_then_lose_reply(batch):
        results.append(await real_apply(batch))
        if len(results) == 1:
            raise RedisConnectionError("Connection closed by server.")
        return results[-1]

    acct._apply = apply_then_lose_reply
    records = make_records(300, seed=5)
    for rec in records:
        acct.record(rec)
    assert await acct.flush() is False
    assert acct.buffered > 0
    await wait_for(lambda: acct.buffered == 0, what="the retried batch")  # probe -> up -> flusher
    assert results[:2] == [1, 0]
    await assert_exact(acct, records)
    await acct.close()


async def test_redis_killed_mid_stream_then_restarted(redis_server, conn):
    """Redis dies while records arrive: record() keeps working, the usage is buffered, and it is all
    written when Redis is back (the flusher is woken by the reconnect, not by its interval)."""
    acct = Accountant(conn, AccountingConfig(flush_interval_s=3600))
    await acct.start()
    records = make_records(3000, seed=6)
    before, during, after = records[:1000], records[1000:2000], records[2000:]
    for rec in before:
        acct.record(rec)
    redis_server.kill()  # nothing flushed yet: a non-persistent Redis loses nothing of ours
    slowest = 0.0
    for i, rec in enumerate(during):
        t = time.perf_counter()
        acct.record(rec)
        slowest = max(slowest, time.perf_counter() - t)
        if i == 500:
            assert await acct.flush() is False  # the outage is noticed by a failed write
            assert not conn.up
    assert slowest < 0.05  # never blocks on the dead server (a record() is microseconds)
    assert acct.buffered > 0 and acct.dropped == 0
    await asyncio.to_thread(redis_server.start)
    await wait_for(lambda: conn.up and acct.buffered == 0, what="the flush after reconnect")
    for rec in after:
        acct.record(rec)
    assert await acct.flush()
    await assert_exact(acct, records)
    await acct.close()


async def test_crash_mid_stream_with_persistent_redis_is_exact(tmp_path):
    """A crash of a Redis that persists every write (AOF, fsync always) while the flusher runs every
    50 ms and records stream in: totals are exact, a batch cut by the crash is applied exactly once."""
    from support.redis_server import RedisServer

    server = RedisServer(None, "--appendonly", "yes", "--appendfsync", "always").start()
    conn = await redis_conn(server.url)
    acct = Accountant(conn, AccountingConfig(flush_interval_s=0.05))
    await acct.start()
    records = make_records(10000, seed=7)
    stop = asyncio.Event()
    sent: list[UsageRecord] = []

    async def produce():
        for rec in records:
            acct.record(rec)
            sent.append(rec)
            if len(sent) % 10 == 0:
                await asyncio.sleep(0.002)
            if stop.is_set():
                return

    try:
        producer = asyncio.create_task(produce())
        await wait_for(lambda: len(sent) > 1000, what="records before the crash")
        server.kill()
        await wait_for(lambda: not conn.up, what="the outage to be noticed")
        mark = len(sent)
        await wait_for(lambda: len(sent) > mark + 500 or producer.done(), what="records during the outage")
        assert acct.buffered > 0
        await asyncio.to_thread(server.start)
        await wait_for(lambda: conn.up, what="reconnect")
        await wait_for(lambda: len(sent) > mark + 1500 or producer.done(), what="records after the restart")
        stop.set()
        await producer
        assert await acct.flush()
        assert acct.dropped == 0
        await assert_exact(acct, sent)
    finally:
        await acct.close()
        await conn.close()
        server.cleanup()


async def test_close_flushes_pending(conn):
    acct = Accountant(conn, AccountingConfig(flush_interval_s=3600))
    await acct.start()
    records = make_records(500, seed=8)
    for rec in records:
        acct.record(rec)
    assert acct.buffered > 0
    await acct.close()  # what app shutdown (SIGTERM) does
    assert acct.buffered == 0
    await assert_exact(Accountant(conn), records)  # a fresh reader sees it all


async def test_buffer_bound_counts_groups_not_requests(refused_url, caplog):
    """While Redis is down, requests for groups already waiting are still counted; new groups beyond
    `max_buffered_records` are dropped, counted and logged once."""
    port = refused_url.split(":")[2].split("/")[0]
    conn = RedisConn(RedisConfig(url=f"redis://127.0.0.1:{port}/0"))
    with caplog.at_level(logging.WARNING, logger="switchboard"):
        await conn.start()
        assert not conn.up
        acct = Accountant(conn, AccountingConfig(max_buffered_records=3))
        for model in ("m1", "m2", "m3", "m4", "m5"):
            acct.record(UsageRecord("k", "p", f"p/{model}", 1, 1, 0, 0.5, day=DAYS[0]))
        for _ in range(100):
            acct.record(UsageRecord("k", "p", "p/m1", 1, 1, 0, 0.5, day=DAYS[0]))
        assert await acct.flush() is False
        acct.record(UsageRecord("k", "p", "p/m6", 1, 1, 0, 0.5, day=DAYS[0]))
    assert acct.buffered == 3 and acct.dropped == 3
    assert acct.memory_snapshot()[(DAYS[0], "k", "p", "p/m1")][store.REQUESTS] == 101
    assert sum("max_buffered_records" in r.getMessage() for r in caplog.records) == 1
    assert any("buffering" in r.getMessage() for r in caplog.records)
    await conn.close()


async def test_redis_cluster(redis_cluster):
    conn = await redis_conn(redis_cluster.url, cluster=True)
    acct = Accountant(conn)
    records = make_records(1500, seed=9)
    for rec in records:
        acct.record(rec)
    batch = acct._seal()[0]
    assert await acct._apply(batch) == 1 and await acct._apply(batch) == 0
    assert await acct.flush()
    await assert_exact(acct, records)
    await conn.close()


# -- GET /v1/usage (HTTP behaviour only) --------------------------------------------------------------
@pytest.fixture
async def usage_api():
    servers: list[TestServer] = []
    session = aiohttp.ClientSession()

    async def start(accountant: Accountant, admin_token: str | None):
        """The real app, serving the given accountant's totals."""
        app = build_app(parse_config({"auth": {"admin_token": admin_token}} if admin_token else {}))
        app[GATEWAY].accountant = accountant
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        base = str(server.make_url("/v1/usage"))

        async def get(query: str = "", token: str | None = "s3cret") -> tuple[int, dict]:
            headers = {"authorization": f"Bearer {token}"} if token is not None else {}
            async with session.get(base + query, headers=headers) as resp:
                return resp.status, await resp.json()

        return get

    yield start
    await session.close()
    for server in servers:
        await server.close()


async def test_usage_endpoint_auth_and_validation(usage_api):
    get = await usage_api(Accountant(None), "s3cret")
    status, body = await get(token=None)
    assert status == 401 and body["error"]["code"] == "invalid_admin_token"
    status, body = await get(token="wrong")
    assert status == 401 and body["error"]["code"] == "invalid_admin_token"
    for query, param in (("?from=2025-1-1", "from"), ("?to=yesterday", "to"), ("?from=2025-02-30", "from"),
                         ("?from=2025-02-02&to=2025-02-01", "from"), ("?from=2020-01-01&to=2025-01-01", "from"),
                         ("?group_by=model,tenant", "group_by")):
        status, body = await get(query)
        assert status == 400 and body["error"]["param"] == param, (query, body)
        assert body["error"]["type"] == "invalid_request_error"
    status, body = await get()
    assert status == 200 and body["data"] == [] and body["totals"]["requests"] == 0

    closed = await usage_api(Accountant(None), None)
    status, body = await closed()
    assert status == 403 and "admin_token" in body["error"]["message"]


async def test_usage_endpoint_totals_from_redis(usage_api, conn):
    acct = Accountant(conn, AccountingConfig(flush_interval_s=3600))
    records = make_records(800, seed=10)
    for rec in records:
        acct.record(rec)
    get = await usage_api(acct, "s3cret")
    # not flushed yet: the handler flushes this worker's records before reading
    status, body = await get(f"?from={DAYS[0]}&to={DAYS[-1]}&group_by=provider&group_by=model")
    assert status == 200, body
    assert body["object"] == "usage" and body["backend"] == "redis"
    assert (body["from"], body["to"], body["group_by"]) == (DAYS[0], DAYS[-1], ["provider", "model"])
    assert as_table(body["data"], ("provider", "model")) == reference(records, ("provider", "model"))
    assert {k: body["totals"][k] for k in ROW_FIELDS} == reference(records)[()]
    status, body = await get(f"?from={DAYS[0]}&to={DAYS[-1]}&key=team-a&group_by=day")
    assert as_table(body["data"], ("day",)) == reference(records, ("day",), key="team-a")
    # default range: the 30 days ending today
    acct.record(UsageRecord("team-a", "demo", "demo/echo", 5, 5, 0, 0.0))
    status, body = await get("?group_by=key")
    assert body["to"] == utc_day() and [row["key"] for row in body["data"]] == ["team-a"]
    await acct.close()


async def test_usage_endpoint_memory_backend_and_redis_down(usage_api, refused_url):
    acct = Accountant(None)
    records = make_records(300, seed=11)
    for rec in records:
        acct.record(rec)
    get = await usage_api(acct, "s3cret")
    status, body = await get(f"?from={DAYS[0]}&to={DAYS[-1]}&group_by=key,model&model=openai/gpt-4o")
    assert status == 200 and body["backend"] == "memory"
    expected = reference([r for r in records if r.model == "openai/gpt-4o"], ("key", "model"))
    assert as_table(body["data"], ("key", "model")) == expected

    port = refused_url.split(":")[2].split("/")[0]
    conn = RedisConn(RedisConfig(url=f"redis://127.0.0.1:{port}/0"))
    await conn.start()
    down = await usage_api(Accountant(conn), "s3cret")
    status, body = await down()
    assert status == 503 and body["error"]["code"] == "usage_store_unavailable"
    await conn.close()
