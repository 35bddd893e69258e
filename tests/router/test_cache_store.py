"""Response cache backends (memory, Redis, Redis Cluster), stored entries and request coalescing.

Redis tests run against the session's private redis-server (`redis_url`) and a private 3-master
cluster (`redis_cluster`); outages are real (`redis_server.kill()`).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from router.cache import (
    CachedResponse,
    MemoryCache,
    RedisCache,
    SingleFlight,
    StreamRecorder,
    build_cache,
    build_single_flight,
)
from router.config.schema import CacheConfig, RedisConfig
from router.redis_conn import RedisConn

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cached_tokens": 0, "cost_usd": 1e-6}
BODY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
CHUNKS = [
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "think"}, "finish_reason": None}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                       "function": {"name": "f", "arguments": "{\"a\""}}]},
                  "finish_reason": None}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "tool_calls"}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
]


def json_entry(**overrides) -> CachedResponse:
    return CachedResponse.from_body({**BODY, **overrides}, provider="openai", model="openai/gpt-4o-mini",
                                    billed_usage=USAGE)


def sse_entry() -> CachedResponse:
    return CachedResponse.from_chunks(CHUNKS, provider="openai", model="openai/gpt-4o-mini", billed_usage=USAGE)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- entries -------------------------------------------------------------------------------------------
def test_json_entry_round_trip_drops_extra_fields():
    entry = CachedResponse.from_body({**BODY, "extra_fields": {"latency": 3}}, provider="openai",
                                     model="openai/gpt-4o-mini", billed_usage=USAGE)
    back = CachedResponse.decode(entry.encode())
    assert back == entry
    assert back.kind == "json" and back.body == BODY and "extra_fields" not in back.body
    assert (back.provider, back.model, back.billed_usage) == ("openai", "openai/gpt-4o-mini", USAGE)
    assert abs(back.stored_at - time.time()) < 5


def test_sse_entry_replays_every_chunk_faithfully():
    sent = [{**CHUNKS[0], "extra_fields": {"provider": "openai"}}, *CHUNKS[1:-1],
            {**CHUNKS[-1], "extra_fields": {"latency": 1}}]
    entry = CachedResponse.decode(CachedResponse.from_chunks(sent, provider="openai", model="openai/x",
                                                             billed_usage=USAGE).encode())
    assert entry is not None and entry.chunks == CHUNKS  # reasoning_content and tool-call deltas intact
    assert "extra_fields" in sent[0]  # the caller's chunks were not mutated
    payload = entry.sse_payload({"provider": "openai", "model": "openai/x"}, {"cache": {"status": "hit"}})
    events = [block[len(b"data: "):] for block in payload.split(b"\n\n") if block]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[0]["extra_fields"] == {"provider": "openai", "model": "openai/x"}
    assert chunks[-1]["extra_fields"] == {"cache": {"status": "hit"}}
    assert [{k: v for k, v in c.items() if k != "extra_fields"} for c in chunks] == CHUNKS
    assert all("extra_fields" not in c for c in entry.chunks)  # serving did not mutate the entry
    plain = entry.sse_payload()
    assert b"extra_fields" not in plain and plain.endswith(b"data: [DONE]\n\n")


def test_single_chunk_replay_carries_the_full_extra_fields():
    entry = CachedResponse.from_chunks(CHUNKS[:1], provider="p", model="p/m", billed_usage=None)
    first = orjson.loads(entry.sse_payload({"head": 1}, {"tail": 1}).split(b"\n\n")[0][6:])
    assert first["extra_fields"] == {"tail": 1}


def test_response_body_is_a_new_dict():
    entry = json_entry()
    served = entry.response_body({"cache": {"status": "hit"}})
    assert served["extra_fields"] == {"cache": {"status": "hit"}} and "extra_fields" not in entry.body
    assert entry.response_body() == BODY


@pytest.mark.parametrize("garbage", [
    None, b"", b"garbage", b"\xff\xfe", b"[]", b"{}", b"null", b'"str"',
    b'{"v": 2, "k": "json", "b": {}, "c": null, "p": null, "m": null, "u": null, "t": 1}',
    b'{"v": 1, "k": "xml", "b": {}, "c": null, "p": null, "m": null, "u": null, "t": 1}',
    b'{"v": 1, "k": "json", "b": [], "c": null, "p": null, "m": null, "u": null, "t": 1}',
    b'{"v": 1, "k": "sse", "b": null, "c": [], "p": null, "m": null, "u": null, "t": 1}',
    b'{"v": 1, "k": "sse", "b": null, "c": [1], "p": null, "m": null, "u": null, "t": 1}',
    b'{"v": 1, "k": "json", "b": {}, "c": null, "p": 5, "m": null, "u": null, "t": 1}',
    b'{"v": 1, "k": "json", "b": {}, "c": null, "p": null, "m": null, "u": [], "t": 1}',
    b'{"v": 1, "k": "json", "b": {}, "c": null, "p": null, "m": null, "u": null, "t": "x"}',
    b'{"v": 1, "k": "json", "b": {}, "c": null, "p": null, "m": null, "u": null, "t": true}',
])
def test_decode_rejects_garbage(garbage):
    assert CachedResponse.decode(garbage) is None


def test_decode_truncated_entry_is_none():
    data = sse_entry().encode()
    assert all(CachedResponse.decode(data[:cut]) is None for cut in range(0, len(data), 7))


def test_stream_recorder_builds_an_entry_or_gives_up_when_too_big():
    rec = StreamRecorder(max_bytes=10_000)
    for chunk in CHUNKS:
        rec.add(chunk)
    entry = rec.entry(provider="p", model="p/m", billed_usage=USAGE)
    assert entry is not None and entry.kind == "sse" and entry.chunks == CHUNKS
    small = StreamRecorder(max_bytes=200)
    for chunk in CHUNKS:
        small.add(chunk)
    assert small.overflowed and small.entry(provider="p", model="p/m", billed_usage=None) is None
    assert StreamRecorder(100).entry(provider="p", model="p/m", billed_usage=None) is None  # nothing streamed


# -- memory backend ------------------------------------------------------------------------------------
async def test_memory_round_trip_returns_fresh_copies():
    cache = MemoryCache(max_entries=10, max_entry_bytes=100_000)
    assert await cache.get("k") is None
    await cache.set("k", json_entry(), 60)
    hit = await cache.get("k")
    assert hit.body == BODY and (hit.provider, hit.model, hit.billed_usage) == ("openai", "openai/gpt-4o-mini", USAGE)
    hit.body["choices"][0]["message"]["content"] = "mutated"  # a handler adding things must not corrupt
    again = await cache.get("k")
    assert again.body["choices"][0]["message"]["content"] == "hello"
    assert (cache.hits, cache.misses, cache.stores) == (2, 1, 1)


async def test_memory_ttl_expiry_per_entry():
    clock = Clock()
    cache = MemoryCache(max_entries=10, max_entry_bytes=100_000, clock=clock)
    await cache.set("short", json_entry(), 5)
    await cache.set("long", json_entry(), 50)
    clock.now += 4.9
    assert await cache.get("short") is not None
    clock.now += 0.2
    assert await cache.get("short") is None
    assert await cache.get("long") is not None
    clock.now += 50
    assert await cache.get("long") is None
    await cache.set("again", json_entry(), 1)  # expired entries are purged on the next write
    assert len(cache) == 1


async def test_memory_ttl_with_the_real_clock():
    cache = MemoryCache(max_entries=10, max_entry_bytes=100_000)
    await cache.set("k", json_entry(), 0.05)
    assert await cache.get("k") is not None
    await asyncio.sleep(0.1)
    assert await cache.get("k") is None


async def test_memory_is_an_lru_bounded_by_entries():
    cache = MemoryCache(max_entries=3, max_entry_bytes=100_000)
    for k in "abc":
        await cache.set(k, json_entry(), 60)
    assert await cache.get("a") is not None  # "a" is now the most recently used
    await cache.set("d", json_entry(), 60)
    assert len(cache) == 3
    assert await cache.get("b") is None
    assert all([await cache.get(k) for k in "acd"])


async def test_memory_skips_oversize_entries():
    entry = json_entry(choices=[{"index": 0, "message": {"role": "assistant", "content": "x" * 5000}}])
    cache = MemoryCache(max_entries=10, max_entry_bytes=4096)
    await cache.set("big", entry, 60)
    assert await cache.get("big") is None
    assert cache.oversize == 1 and cache.stores == 0 and len(cache) == 0


async def test_memory_total_bytes_bound_evicts_lru():
    entry = json_entry()  # one entry: the encoded size of stored_at varies from call to call
    size = len(entry.encode())
    cache = MemoryCache(max_entries=100, max_entry_bytes=100_000, max_total_bytes=size * 3)
    for k in "abcd":
        await cache.set(k, entry, 60)
    assert len(cache) == 3 and cache.total_bytes <= size * 3
    assert await cache.get("a") is None


async def test_memory_zero_ttl_is_not_stored():
    cache = MemoryCache(max_entries=10, max_entry_bytes=100_000)
    await cache.set("k", json_entry(), 0)
    assert await cache.get("k") is None and cache.stores == 0


def test_build_cache_from_config():
    assert build_cache(None, None) is None
    assert build_cache(CacheConfig(backend="off"), None) is None
    memory = build_cache(CacheConfig(max_entries=5, max_entry_bytes=2048), None)
    assert isinstance(memory, MemoryCache) and memory.max_entries == 5 and memory.max_entry_bytes == 2048
    conn = RedisConn(RedisConfig(url="redis://127.0.0.1:1/0"))
    assert isinstance(build_cache(CacheConfig(backend="redis"), conn), RedisCache)
    with pytest.raises(ValueError):
        build_cache(CacheConfig(backend="redis"), None)
    assert isinstance(build_single_flight(CacheConfig()), SingleFlight)
    assert build_single_flight(CacheConfig(coalesce=False)) is None
    assert build_single_flight(None) is None


# -- Redis backend -------------------------------------------------------------------------------------
@pytest.fixture
async def redis_conn(redis_url):
    conn = RedisConn(RedisConfig(url=redis_url, key_prefix="sbtest"))
    await conn.start()
    assert conn.up
    yield conn
    await conn.close()


async def test_redis_round_trip_and_ttl(redis_conn, redis_server):
    cache = RedisCache(redis_conn, max_entry_bytes=100_000)
    assert await cache.get("k1") is None
    await cache.set("k1", json_entry(), 60)
    await cache.set("k2", sse_entry(), 0.5)
    hit = await cache.get("k1")
    assert hit.kind == "json" and hit.body == BODY and hit.billed_usage == USAGE
    assert (await cache.get("k2")).chunks == CHUNKS
    assert cache.redis_key("k1") == "sbtest:{cache:k1}"
    pttl = int(redis_server.cli("pttl", "sbtest:{cache:k1}"))
    assert 59_000 < pttl <= 60_000
    assert 0 < int(redis_server.cli("pttl", "sbtest:{cache:k2}")) <= 500
    assert cache.stores == 2 and cache.errors == 0


async def test_redis_entry_expires(redis_conn):
    cache = RedisCache(redis_conn, max_entry_bytes=100_000)
    await cache.set("k", json_entry(), 0.05)
    deadline = time.monotonic() + 2
    while await cache.get("k") is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_redis_corrupted_entry_is_a_miss(redis_conn):
    cache = RedisCache(redis_conn, max_entry_bytes=100_000)
    await redis_conn.client.set(cache.redis_key("bad"), b"\x00not an entry")
    assert await cache.get("bad") is None
    assert cache.corrupt == 1 and cache.misses == 1 and cache.errors == 0 and redis_conn.up
    await cache.set("bad", json_entry(), 60)  # the next fresh answer overwrites it
    assert await cache.get("bad") is not None


async def test_redis_skips_oversize_entries(redis_conn, redis_server):
    cache = RedisCache(redis_conn, max_entry_bytes=1024)
    entry = json_entry(choices=[{"index": 0, "message": {"role": "assistant", "content": "x" * 2000}}])
    await cache.set("big", entry, 60)
    assert cache.oversize == 1 and redis_server.cli("exists", "sbtest:{cache:big}").strip() == "0"


async def test_redis_refused_command_counts_an_error_without_marking_redis_down(redis_conn):
    cache = RedisCache(redis_conn, max_entry_bytes=100_000)
    await redis_conn.client.rpush(cache.redis_key("list"), b"x")  # GET on a list: WRONGTYPE
    assert await cache.get("list") is None
    assert cache.errors == 1 and cache.refused == 1 and redis_conn.up


async def test_redis_down_fails_open_fast_then_recovers(redis_conn, redis_server):
    cache = RedisCache(redis_conn, max_entry_bytes=100_000)
    await cache.set("k", json_entry(), 60)
    assert await cache.get("k") is not None
    redis_server.kill()
    try:
        started = time.monotonic()
        assert await cache.get("k") is None  # the failing call: a miss, not an exception
        assert not redis_conn.up and cache.errors == 1
        for i in range(10):
            await cache.set(f"x{i}", json_entry(), 60)
            assert await cache.get(f"x{i}") is None
        assert time.monotonic() - started < 1.0
        assert cache.errors == 1  # once down, Redis is not even tried
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while not redis_conn.up:
        assert time.monotonic() < deadline, "redis never came back"
        await asyncio.sleep(0.05)
    await cache.set("k", json_entry(), 60)
    assert await cache.get("k") is not None


async def test_redis_not_reachable_at_start_is_a_miss(refused_url):
    conn = RedisConn(RedisConfig(url=refused_url.replace("http://", "redis://").removesuffix("/v1")))
    await conn.start()
    try:
        cache = RedisCache(conn, max_entry_bytes=100_000)
        await cache.set("k", json_entry(), 60)
        assert await cache.get("k") is None and not conn.up
    finally:
        await conn.close()


async def test_redis_cluster_spreads_entries_over_every_master(redis_cluster):
    prefix = "sbt" + uuid.uuid4().hex[:8]
    conn = RedisConn(RedisConfig(url=redis_cluster.url, cluster=True, key_prefix=prefix))
    await conn.start()
    try:
        assert conn.up
        cache = RedisCache(conn, max_entry_bytes=100_000)
        keys = [f"{i:064x}" for i in range(60)]
        for k in keys:
            await cache.set(k, json_entry(id=k), 60)
        for k in keys:
            hit = await cache.get(k)
            assert hit is not None and hit.body["id"] == k
        assert cache.errors == 0 and cache.hits == 60
        per_node = [len(node.cli("--scan", "--pattern", f"{prefix}:*").split()) for node in redis_cluster.nodes]
        assert sum(per_node) == 60 and all(n > 0 for n in per_node), per_node
    finally:
        await conn.close()


# -- coalescing ----------------------------------------------------------------------------------------
async def test_single_flight_runs_concurrent_identical_work_once():
    flight: SingleFlight[dict] = SingleFlight()
    calls = 0

    async def work() -> dict:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"answer": 42}

    async with asyncio.timeout(5):
        results = await asyncio.gather(*(flight.run("k", work) for _ in range(20)))
    assert calls == 1 and all(r == {"answer": 42} for r in results)
    assert (flight.led, flight.shared, flight.released) == (1, 19, 0) and len(flight) == 0
    await flight.run("k", work)  # the flight ended: new work runs again
    assert calls == 2


async def test_single_flight_keys_are_independent():
    flight: SingleFlight[str] = SingleFlight()
    calls: list[str] = []

    async def work(k: str) -> str:
        calls.append(k)
        await asyncio.sleep(0.02)
        return k

    async with asyncio.timeout(5):
        results = await asyncio.gather(*(flight.run(k, lambda k=k: work(k)) for k in ["a", "b", "a", "b"]))
    assert results == ["a", "b", "a", "b"] and sorted(calls) == ["a", "b"]


async def test_single_flight_leader_failure_is_not_shared():
    flight: SingleFlight[str] = SingleFlight()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        mine = calls
        await asyncio.sleep(0.05)
        if mine == 1:
            raise RuntimeError("upstream failed")
        return "ok"

    async with asyncio.timeout(5):
        results = await asyncio.gather(*(flight.run("k", work) for _ in range(20)), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1:] == ["ok"] * 19  # followers made their own calls
    assert calls == 20 and flight.released == 19 and len(flight) == 0


async def test_single_flight_leader_cancelled_releases_followers():
    flight: SingleFlight[str] = SingleFlight()
    leader_started = asyncio.Event()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            leader_started.set()
            await asyncio.sleep(30)  # a stuck upstream call, cancelled below
        return "ok"

    leader = asyncio.create_task(flight.run("k", work))
    await leader_started.wait()
    followers = [asyncio.create_task(flight.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0.01)
    leader.cancel()
    async with asyncio.timeout(2):
        results = await asyncio.gather(*followers)
    assert results == ["ok"] * 5 and leader.cancelled() and len(flight) == 0


async def test_single_flight_follower_cancelled_does_not_disturb_the_others():
    flight: SingleFlight[str] = SingleFlight()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return "ok"

    leader = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(flight.run("k", work))
    stayer = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0.02)
    quitter.cancel()
    async with asyncio.timeout(2):
        assert await leader == "ok" and await stayer == "ok"
    assert quitter.cancelled() and calls == 1


async def test_single_flight_slot_leader_may_decline_to_share():
    """A leader whose answer is not cacheable (an error, a partial stream) publishes nothing."""
    flight: SingleFlight[str] = SingleFlight()
    order: list[str] = []

    async def request(i: int) -> str:
        async with flight.slot("k") as slot:
            if slot.shared:
                return "shared"
            await asyncio.sleep(0.02)
            order.append("leader" if slot.leader else "own")
            return "own"

    async with asyncio.timeout(2):
        results = await asyncio.gather(*(request(i) for i in range(4)))
    assert results == ["own"] * 4 and order == ["leader", "own", "own", "own"]


async def test_single_flight_publish_releases_followers_before_the_leader_finishes():
    flight: SingleFlight[str] = SingleFlight()
    leader_may_finish = asyncio.Event()

    async def leader() -> None:
        async with flight.slot("k") as slot:
            assert slot.leader
            slot.publish("entry")
            slot.publish("ignored")
            await leader_may_finish.wait()  # e.g. still writing its own response

    task = asyncio.create_task(leader())
    await asyncio.sleep(0)
    async with asyncio.timeout(2), flight.slot("k") as slot:
        # A new arrival after publish starts a new flight (it would have hit the cache first).
        assert slot.leader
    leader_may_finish.set()
    await task


async def test_single_flight_wait_bound_sends_followers_on_their_own():
    flight: SingleFlight[str] = SingleFlight(wait_s=0.05)
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        mine = calls
        await asyncio.sleep(0.3 if mine == 1 else 0)
        return f"call{mine}"

    async with asyncio.timeout(2):
        results = await asyncio.gather(flight.run("k", work), flight.run("k", work))
    assert results == ["call1", "call2"] and flight.released == 1
