"""The one Redis connection of a worker: standalone or Cluster, with an up/down state.

Every Redis user (cache, accounting, keys, limits) goes through `RedisConn`: it builds the client
from `redis:` config, names keys (hash-tagged so a multi-key script stays in one Cluster slot), and
tracks whether Redis is reachable. A failed command marks it down; a background probe marks it up
again, so callers can degrade at once instead of waiting on a dead server for every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .config.schema import RedisConfig
from .tasks import stop

log = logging.getLogger("switchboard")

# What a Redis call may raise when the server is down, slow or restarting.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, asyncio.TimeoutError)


class RedisConn:
    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.prefix = config.key_prefix
        self.client: redis_asyncio.Redis | RedisCluster | None = None
        self.up = False
        self.down_since: float | None = None
        self._probe: asyncio.Task | None = None
        self._listeners: list[Callable[[bool], None]] = []

    def key(self, tag: str, *parts: str) -> str:
        """`prefix:{tag}:part:…`; keys that share `tag` share a Cluster hash slot."""
        return ":".join((self.prefix, "{" + tag + "}", *parts))

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(up)` whenever reachability changes (e.g. to flush buffered writes)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        cfg = self.config
        common = {"socket_timeout": cfg.timeout_s, "socket_connect_timeout": cfg.timeout_s,
                  "max_connections": cfg.max_connections, "decode_responses": False}
        if cfg.cluster:
            self.client = RedisCluster.from_url(cfg.url, **common)
        else:
            # A blocking pool queues commands beyond `max_connections` instead of failing them (which
            # would look like an outage under load); one immediate retry on a fresh connection hides
            # the stale pooled connections a Redis restart leaves behind.
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                cfg.url, timeout=cfg.timeout_s, retry=Retry(NoBackoff(), 1),
                retry_on_error=[RedisConnectionError], **common)
            self.client = redis_asyncio.Redis(connection_pool=pool)
        try:
            await self.client.ping()
            self._set(True)
        except REDIS_ERRORS as exc:
            log.warning("redis is not reachable at start-up (%s); degrading until it is", type(exc).__name__)
            self._set(False)

    async def close(self) -> None:
        await stop(self._probe)
        self._probe = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()
            self.client = None

    def failed(self, exc: BaseException) -> None:
        """A command failed because of Redis itself: mark it down (a probe brings it back)."""
        if self.up:
            log.warning("redis is unreachable (%s: %s); degrading until it is back", type(exc).__name__, exc)
        self._set(False)

    async def ping(self) -> bool:
        if self.client is None:
            return False
        try:
            await self.client.ping()
        except REDIS_ERRORS:
            self._set(False)
            return False
        self._set(True)
        return True

    def _set(self, up: bool) -> None:
        changed = up != self.up
        was_down = self.down_since is not None
        self.up = up
        if up:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()
            self._start_probe()
        if changed:
            if up and was_down:
                log.warning("redis is reachable again")
            for listener in self._listeners:
                listener(up)

    def _start_probe(self) -> None:
        if self._probe is None or self._probe.done():
            with contextlib.suppress(RuntimeError):  # no running loop (shutting down)
                self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        delay = 0.1
        while not self.up and self.client is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)  # limits are unchecked (fail_open) until this sees Redis back
            await self.ping()
