"""Rate limits of the agent endpoints: requests per client IP and per virtual key, in fixed windows.

`agent_settings.rate_limits.per_ip` (default `60/hour`, as AgentOS documents) and `per_key` count
agent runs on both faces, on top of the key's own RPM/TPM/budget (which every step still obeys).
Windows are aligned to the epoch. With Redis the counters are shared by every worker (INCR +
EXPIRE); without it they are per process. Redis unreachable: the limit is not checked (fail open).
A refusal is a 429 `rate_limit_exceeded` with `Retry-After` and `x-ratelimit-*` headers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from aiohttp import web

from ..config.agents import AgentRateLimitsConfig, parse_rate
from ..errors import ApiError
from ..redis_conn import REDIS_ERRORS, RedisConn


class AgentLimiter:
    def __init__(self, config: AgentRateLimitsConfig, conn: RedisConn | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.conn = conn
        self.clock = clock
        self.per_ip = parse_rate(config.per_ip) if config.per_ip else None
        self.per_key = parse_rate(config.per_key) if config.per_key else None
        self._memory: dict[str, tuple[int, int]] = {}  # key -> (window, count)

    def client_ip(self, request: web.Request) -> str:
        if self.config.trust_forwarded_for:
            forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
            if forwarded:
                return forwarded
        return request.remote or "unknown"

    async def check(self, request: web.Request, key_name: str | None) -> None:
        """Count this request against each limit; 429 when one is exceeded."""
        if self.per_ip is not None:
            await self._hit("ip", self.client_ip(request), self.per_ip, "client IP")
        if self.per_key is not None and key_name is not None:
            await self._hit("key", key_name, self.per_key, f"key '{key_name}'")

    async def _hit(self, kind: str, who: str, rate: tuple[int, int], label: str) -> None:
        limit, period = rate
        now = self.clock()
        window = int(now // period)
        name = f"{kind}:{who}:{period}"
        count = await self._incr(name, window, period)
        if count is None or count <= limit:
            return
        reset = max(1, math.ceil((window + 1) * period - now))
        raise ApiError(429, f"agent rate limit exceeded for this {label}: {limit} requests per "
                            f"{_period(period)}; retry after {reset}s", code="rate_limit_exceeded",
                       headers={"retry-after": str(reset), "x-ratelimit-limit-requests": str(limit),
                                "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{reset}s"})

    async def _incr(self, name: str, window: int, period: int) -> int | None:
        conn = self.conn
        if conn is None:
            current = self._memory.get(name)
            count = current[1] + 1 if current is not None and current[0] == window else 1
            self._memory[name] = (window, count)
            if len(self._memory) > 100_000:  # drop the counters of past windows
                self._memory = {k: v for k, v in self._memory.items() if v[0] == window}
            return count
        if conn.client is None or not conn.up:
            return None
        key = conn.key("agent-rl:" + name, str(window))
        try:
            async with conn.client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, period + 60)
                count, _ = await pipe.execute()
        except REDIS_ERRORS as exc:
            conn.failed(exc)
            return None
        return int(count)


def _period(seconds: int) -> str:
    return {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds}s")
