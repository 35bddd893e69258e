"""Exact-match response cache (see DESIGN.md "Caching").

- `keys.cache_key`       - which requests share an answer (tenant-scoped canonical hash).
- `control.CacheDirective` - what the client's headers allow; the status reported back.
- `entry.CachedResponse` - what is stored (JSON body or SSE chunks, without extra_fields).
- `store`                - memory and Redis backends with the same semantics; both fail open.
- `coalesce.SingleFlight` - concurrent identical misses share one upstream call (per process).
"""

from __future__ import annotations

from ..config.schema import CacheConfig
from ..redis_conn import RedisConn
from .coalesce import SingleFlight
from .control import BYPASS, HIT, MISS, OFF, STATUS_HEADER, TTL_HEADER, CacheDirective, status_headers
from .entry import CachedResponse, StreamRecorder
from .keys import ANONYMOUS_TENANT, CHAT, EMBEDDINGS, cache_key
from .store import MemoryCache, RedisCache, ResponseCache

# The memory backend's ceiling on all entries together: `max_entries` x `max_entry_bytes` alone
# allows ~10 GB with the defaults. (A candidate for a `cache.max_total_bytes` setting.)
MEMORY_TOTAL_BYTES = 256 * 1024 * 1024

__all__ = [
    "ANONYMOUS_TENANT", "BYPASS", "CHAT", "EMBEDDINGS", "HIT", "MISS", "OFF", "STATUS_HEADER", "TTL_HEADER",
    "CacheDirective", "CachedResponse", "MemoryCache", "RedisCache", "ResponseCache", "SingleFlight",
    "StreamRecorder", "build_cache", "build_single_flight", "cache_key", "status_headers",
]


def build_cache(cache_config: CacheConfig | None, redis_conn: RedisConn | None) -> ResponseCache | None:
    """The configured backend, or None when caching is off (no `cache:` section or `backend: off`)."""
    if cache_config is None or cache_config.backend == "off":
        return None
    if cache_config.backend == "redis" or (cache_config.backend is None and redis_conn is not None):
        if redis_conn is None:  # the config loader rejects this; guard against wiring mistakes
            raise ValueError("cache.backend 'redis' needs the redis section (redis.url)")
        return RedisCache(redis_conn, cache_config.max_entry_bytes)
    return MemoryCache(cache_config.max_entries, cache_config.max_entry_bytes,
                       max_total_bytes=max(MEMORY_TOTAL_BYTES, cache_config.max_entry_bytes))


def build_single_flight(cache_config: CacheConfig | None) -> SingleFlight[CachedResponse] | None:
    """Coalescing for cache misses, when the cache is on and `cache.coalesce` is true."""
    if cache_config is None or cache_config.backend == "off" or not cache_config.coalesce:
        return None
    return SingleFlight()
