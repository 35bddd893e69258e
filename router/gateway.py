"""Per-process state shared by the handlers: routing, transport, pricing, Redis-backed state.

Built once at start-up from the loaded config; handlers read plain attributes from it so nothing
on the request path looks the config up again. With `redis:` configured, the cache, accounting,
keys and limits share one `RedisConn`; without it each works in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from aiohttp import web

from providers import ErrorKind

from .accounting import Accountant
from .auth import Authenticator, KeyStore, Limiter
from .cache import build_cache, build_single_flight
from .config import LoadedConfig
from .pricing import Pricer
from .redis_conn import RedisConn
from .routing import RoutingTable
from .routing.chain import Chain
from .routing.health import HealthRegistry
from .routing.policy import ErrorPolicy
from .upstream import Transport


class Gateway:
    def __init__(self, loaded: LoadedConfig, rng: random.Random | None = None) -> None:
        config = loaded.config
        self.loaded = loaded
        self.rng = rng or random.Random()
        routing = config.routing
        self.health = HealthRegistry(routing.cooldown)
        self.table = RoutingTable(loaded, self.rng, self.health)
        self.transport = Transport({name: rt.timeouts for name, rt in self.table.runtimes.items()})
        policy = ErrorPolicy(routing.retry, frozenset(ErrorKind(k) for k in routing.fallback_on))
        self.chain = Chain(self.transport, self.health, policy, routing.request_timeout_s, self.rng)
        self.pricer = Pricer(config.pricing)
        self.extra_fields_enabled = config.server.extra_fields
        self.allow_raw_header = config.server.allow_raw_response_header
        self.max_body_bytes = config.server.max_body_bytes
        self.body_timeout_s = config.server.timeouts.body_s
        self.redis = RedisConn(config.redis) if config.redis is not None else None
        self.cache = build_cache(config.cache, self.redis)
        self.cache_ttl_s = config.cache.ttl_s if config.cache is not None else 0.0
        self.flight = build_single_flight(config.cache)
        self.accountant = Accountant(self.redis, config.accounting)
        self.keys = KeyStore(self.redis, config.auth) if config.auth is not None else None
        self.authenticator = Authenticator(self.keys, config.auth) if self.keys is not None else None
        self.limiter = Limiter(self.redis, config.auth.on_redis_down if config.auth else "fail_open",
                               reservation_ttl_s=config.routing.request_timeout_s + 60)
        self.admin_token = config.auth.admin_token if config.auth is not None else None
        self._background: set[asyncio.Future] = set()
        self.ready = False
        self.started_at = int(time.time())

    def background(self, task: asyncio.Future) -> None:
        """Keep a fire-and-forget task alive until it ends; shutdown waits for the stragglers."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        if self.redis is not None:
            await self.redis.start()
        await self.accountant.start()
        await self.transport.start()
        if self._counts_tokens():
            # Load the tokenizer now (~40 MB, ~150 ms), not on the first request that needs it.
            from providers.tokens import count_text

            count_text("warm up", "gpt-4o")
        self.ready = True

    def _counts_tokens(self) -> bool:
        """Whether requests routinely need tiktoken: the mock provider counts every answer, and
        keys with TPM or budget limits estimate every prompt. Otherwise it loads on first use
        (a stream whose vendor reported no usage), keeping idle workers small."""
        config = self.loaded.config
        if any(rt.provider.settings.type == "mock" for rt in self.table.runtimes.values()):
            return True
        auth = config.auth
        return auth is not None and any(k.tpm is not None or k.budget_usd is not None for k in auth.keys)

    async def close(self) -> None:
        self.ready = False
        if self._background:
            with contextlib.suppress(Exception):
                await asyncio.wait(list(self._background), timeout=5.0)
        await self.accountant.close()  # flushes buffered usage: a stopped worker loses nothing
        if self.keys is not None:
            await self.keys.close()
        await self.transport.close()
        if self.redis is not None:
            await self.redis.close()


GATEWAY = web.AppKey("gateway", Gateway)
