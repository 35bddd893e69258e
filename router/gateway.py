"""Per-process state shared by the handlers: routing table, transport, pricing, switches.

Built once at start-up from the loaded config; handlers read plain attributes from it so nothing
on the request path looks the config up again.
"""

from __future__ import annotations

import random
import time

from aiohttp import web

from providers import ErrorKind

from .config import LoadedConfig
from .pricing import Pricer
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
        self.transport = Transport(self.table.runtimes.values())
        policy = ErrorPolicy(routing.retry, frozenset(ErrorKind(k) for k in routing.fallback_on))
        self.chain = Chain(self.transport, self.health, policy, routing.request_timeout_s, self.rng)
        self.pricer = Pricer(config.pricing)
        self.extra_fields_enabled = config.server.extra_fields
        self.allow_raw_header = config.server.allow_raw_response_header
        self.max_body_bytes = config.server.max_body_bytes
        self.ready = False
        self.started_at = int(time.time())

    async def start(self) -> None:
        await self.transport.start()
        # Load the tokenizer now, not on the first request that needs an estimate (~150 ms).
        from providers.tokens import count_text

        count_text("warm up", "gpt-4o")
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self.transport.close()


GATEWAY = web.AppKey("gateway", Gateway)
