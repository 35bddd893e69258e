"""Cache backends with one contract: `get` a `CachedResponse` or None, `set` with a TTL.

Both store the encoded bytes, never live objects: a hit always decodes a fresh copy (the handler
may add `extra_fields` without corrupting the entry), both backends behave the same, and the size
limit is measured on what is actually kept.

A cache must never fail a request: a backend problem is a miss on read and a skipped write.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from cachetools import TLRUCache
from redis.exceptions import ClusterError, ResponseError

from ..redis_conn import REDIS_ERRORS, RedisConn
from .entry import CachedResponse

log = logging.getLogger("switchboard")


class ResponseCache:
    """The backend contract plus plain counters (exported as metrics later)."""

    name = "none"

    def __init__(self, max_entry_bytes: int) -> None:
        self.max_entry_bytes = max_entry_bytes
        self.hits = 0
        self.misses = 0  # includes corrupt entries and reads skipped because the backend is down
        self.stores = 0
        self.oversize = 0  # entries not stored because they exceed max_entry_bytes
        self.corrupt = 0  # stored values that did not decode (served as misses)
        self.errors = 0  # backend failures (Redis errors, timeouts)

    async def get(self, key: str) -> CachedResponse | None:
        raise NotImplementedError

    async def set(self, key: str, entry: CachedResponse, ttl_s: float) -> None:
        raise NotImplementedError

    def _encode(self, entry: CachedResponse) -> bytes | None:
        """The bytes to store, or None (counted) when the entry is over the size limit."""
        data = entry.encode()
        if len(data) > self.max_entry_bytes:
            self.oversize += 1
            return None
        return data

    def _decoded(self, data: bytes | None) -> CachedResponse | None:
        entry = CachedResponse.decode(data) if data is not None else None
        if entry is None:
            if data is not None:
                self.corrupt += 1
            self.misses += 1
        else:
            self.hits += 1
        return entry


class MemoryCache(ResponseCache):
    """In-process LRU with a TTL per entry (cachetools `TLRUCache`), bounded three ways.

    At most `max_entries` entries, none larger than `max_entry_bytes`, and - when
    `max_total_bytes` is given - at most that many bytes in all (entries x max entry size can be
    far more memory than anyone meant to give). Least recently used entries go first; expired ones
    are dropped lazily. Per worker process: workers do not share it (use the Redis backend for that).
    """

    name = "memory"

    def __init__(self, max_entries: int, max_entry_bytes: int, max_total_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_entry_bytes)
        self.max_entries = max_entries
        self._lru: TLRUCache[str, tuple[bytes, float]] = TLRUCache(
            maxsize=max_total_bytes if max_total_bytes is not None else math.inf,
            ttu=_expires_at, timer=clock, getsizeof=_stored_size)

    async def get(self, key: str) -> CachedResponse | None:
        slot = self._lru.get(key)
        return self._decoded(slot[0] if slot is not None else None)

    async def set(self, key: str, entry: CachedResponse, ttl_s: float) -> None:
        data = self._encode(entry)
        if data is None or ttl_s <= 0:
            return
        if len(data) > self._lru.maxsize:
            self.oversize += 1
            return
        lru = self._lru
        lru[key] = (data, ttl_s)
        while len(lru) > self.max_entries:
            lru.popitem()
        self.stores += 1

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def total_bytes(self) -> int:
        return int(self._lru.currsize)


def _expires_at(key: str, value: tuple[bytes, float], now: float) -> float:
    return now + value[1]


def _stored_size(value: tuple[bytes, float]) -> int:
    return len(value[0])


class RedisCache(ResponseCache):
    """Entries in Redis, shared by every worker and instance; fails open.

    One key per entry (`prefix:{cache:<hash>}`), written with `SET … PX` and read with `GET`:
    single-key commands only, so Redis Cluster needs no hash-tag co-location and entries spread
    over every master. While `conn.up` is False Redis is not even tried (a dead server must not
    cost each request a timeout); any Redis error marks the connection down and counts as a miss
    or a skipped store. `RedisConn`'s probe brings it back.
    """

    name = "redis"

    def __init__(self, conn: RedisConn, max_entry_bytes: int) -> None:
        super().__init__(max_entry_bytes)
        self.conn = conn
        self.refused = 0  # errors where Redis answered but refused the command (subset of errors)

    def redis_key(self, key: str) -> str:
        # The whole `cache:<hash>` is the hash tag, so keys spread over every Cluster slot.
        return self.conn.key("cache:" + key)

    async def get(self, key: str) -> CachedResponse | None:
        client = self.conn.client
        if client is None or not self.conn.up:
            self.misses += 1
            return None
        try:
            data = await client.get(self.redis_key(key))
        except REDIS_ERRORS as exc:
            self._failed(exc)
            self.misses += 1
            return None
        return self._decoded(data)

    async def set(self, key: str, entry: CachedResponse, ttl_s: float) -> None:
        client = self.conn.client
        if client is None or not self.conn.up or ttl_s <= 0:
            return
        data = self._encode(entry)
        if data is None:
            return
        try:
            await client.set(self.redis_key(key), data, px=max(1, round(ttl_s * 1000)))
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return
        self.stores += 1

    def _failed(self, exc: BaseException) -> None:
        """Count the error; mark Redis down unless the server answered and merely refused this
        command (e.g. OOM under maxmemory): that is no reason to degrade every Redis user."""
        self.errors += 1
        if isinstance(exc, ResponseError) and not isinstance(exc, ClusterError):
            self.refused += 1
            if self.refused % 1000 == 1:  # the first, then one in a thousand: no log flood
                log.warning("redis refused a cache command (%d so far): %s", self.refused, exc)
            return
        self.conn.failed(exc)
