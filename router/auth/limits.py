"""RPM, TPM and budget limits per virtual key: checked and reserved in one atomic step.

`admit` runs before the upstream call and reserves, all-or-nothing, one request in the key's RPM
counter, the estimated prompt tokens in its TPM counter and the estimated cost in its budget. A
request refused by one limit consumes none of the others. `settle` runs after the call and
replaces the estimates with the real usage. With Redis this is one Lua script per step, so any
number of workers and instances sharing the Redis admit exactly as many requests as the limits
allow; without Redis the same logic runs in memory (per process).

Windows (all aligned to the epoch, from the clock of the instance doing the check; keep instances
NTP-synced):
- RPM and TPM: fixed one-minute windows, `floor(now / 60)`. The RPM counter counts admitted
  requests; the TPM counter holds the estimates of requests in flight and the real token counts of
  settled ones (charged to the minute the request was admitted in).
- Budget: fixed periods of `budget_period_s`, `floor(now / budget_period_s)`, so `30d` resets every
  30 days counted from the epoch (not from the key's creation). Spend of a request is charged to
  the period it was admitted in.

Decisions:
- A request whose own estimate is larger than the key's TPM is refused (429, no Retry-After: waiting
  does not help), as OpenAI does; admitting it would break the limit.
- A request with an estimated cost of 0 (a free or unpriced model) passes the budget check even
  when the budget is spent: it cannot spend anything.
- Budget reservations expire after `reservation_ttl_s` (keep it above the longest request), so a
  worker that dies between admit and settle does not hold budget until the period ends.
- The estimate covers the most a call may cost (the pipeline reserves the prompt plus the most
  output the call allows), so concurrent calls cannot overrun a budget; only a vendor counting more
  prompt tokens than tiktoken did, or an answer longer than the configured maximum when the request
  sets no `max_tokens`, can make the actual cost exceed its reservation.
- Redis unreachable (`conn.up` False, or a command fails): `fail_open` admits without checking and
  counts `stats["degraded_admits"]`; `fail_closed` answers 503 `limits_unavailable`. Never a silent
  fall back to per-process limits. A script Redis refuses (NOPERM, scripting disabled) is treated
  the same way and logged as an error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import (
    BusyLoadingError,
    ClusterError,
    MaxConnectionsError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from ..errors import ApiError
from ..redis_conn import REDIS_ERRORS, RedisConn
from .keys import NANOS_PER_USD, VirtualKey, format_period
from .lua import ADMIT, PEEK, SETTLE, LuaScript

log = logging.getLogger("switchboard")

WINDOW_S = 60
OK, RPM, TPM, TOO_LARGE, BUDGET = 0, 1, 2, 3, 4


@dataclass(slots=True)
class Reservation:
    """What `admit` reserved; hand it back to `settle` exactly once."""

    vk: VirtualKey | None
    minute: int = 0
    period: int = 0
    est_tokens: int = 0
    est_cost_nanos: int = 0
    requests: int = 0  # requests admitted in the minute, this one included
    tokens: int = 0  # tokens charged in the minute, this reservation included
    reset_s: int = 0  # seconds to the end of the minute
    degraded: bool = False  # admitted without checking (Redis down, fail_open)
    settled: bool = False

    def headers(self) -> dict[str, str]:
        """OpenAI-style `x-ratelimit-*` response headers (empty when the key has no RPM/TPM)."""
        vk = self.vk
        if vk is None or self.degraded:
            return {}
        return _rate_headers(vk, self.requests, self.tokens, self.reset_s)


UNLIMITED = Reservation(None, settled=True)


def _rate_headers(vk: VirtualKey, requests: int, tokens: int, reset_s: int) -> dict[str, str]:
    out: dict[str, str] = {}
    if vk.rpm is not None:
        out["x-ratelimit-limit-requests"] = str(vk.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(0, vk.rpm - requests))
        out["x-ratelimit-reset-requests"] = f"{reset_s}s"
    if vk.tpm is not None:
        out["x-ratelimit-limit-tokens"] = str(vk.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(0, vk.tpm - tokens))
        out["x-ratelimit-reset-tokens"] = f"{reset_s}s"
    return out


class _Unavailable(Exception):
    pass


class Limiter:
    def __init__(self, conn: RedisConn | None, on_redis_down: Literal["fail_open", "fail_closed"] = "fail_open",
                 *, clock: Callable[[], float] = time.time, reservation_ttl_s: float = 900.0) -> None:
        if on_redis_down not in ("fail_open", "fail_closed"):
            raise ValueError(f"on_redis_down: {on_redis_down!r}")
        self.conn = conn
        self.fail_open = on_redis_down == "fail_open"
        self.clock = clock
        self.reservation_minutes = max(1, math.ceil(reservation_ttl_s / WINDOW_S))
        self.stats = {"degraded_admits": 0, "degraded_rejects": 0, "settle_failures": 0, "script_errors": 0}
        self._memory = _Memory(self.reservation_minutes) if conn is None else None
        # At most as many scripts in flight as the pool has connections: beyond that, wait in line
        # here (fairly) rather than have redis-py refuse with "Too many connections".
        self._slots = asyncio.Semaphore(conn.config.max_connections) if conn is not None else None
        self._warned = False

    @property
    def degraded(self) -> bool:
        """Redis is configured but unreachable: limits follow `on_redis_down`."""
        return self.conn is not None and not self.conn.up

    # -- admit ----------------------------------------------------------------------------------
    async def admit(self, vk: VirtualKey | None, est_tokens: int, est_cost_nanos: int, *,
                    count_request: bool = True) -> Reservation:
        """Reserve one request; ApiError 429/402 (or 503 when fail_closed and Redis is down).

        `count_request=False` reserves tokens and cost only: a further model call of a request that
        was already counted (the later steps of an agent run) neither counts against nor is
        refused by the RPM limit."""
        if vk is None or not vk.has_limits:
            return UNLIMITED
        now = self.clock()
        minute = int(now // WINDOW_S)
        period = int(now // vk.budget_period_s)
        est_tokens = max(0, int(est_tokens))
        est_cost_nanos = max(0, int(est_cost_nanos))
        rpm = -1 if vk.rpm is None or not count_request else vk.rpm
        args = (rpm, -1 if vk.tpm is None else vk.tpm, est_tokens,
                -1 if vk.budget_nanos is None else vk.budget_nanos, est_cost_nanos)
        oldest = minute - self.reservation_minutes
        if self._memory is not None:
            status, count, used, spent, reserved = self._memory.admit(vk, minute, period, oldest, *args)
        else:
            keys = self._keys(vk, minute, period)
            try:
                status, count, used, spent, reserved = await self._redis(
                    ADMIT, keys, [*args, self._minute_ttl(now, minute), self._budget_ttl(now, vk, period),
                                  f"r:{minute}", oldest])
            except _Unavailable:
                return self._degraded(vk)
        reset_s = max(1, math.ceil((minute + 1) * WINDOW_S - now))
        if status == OK:
            return Reservation(vk, minute, period, est_tokens, est_cost_nanos if vk.budget_nanos is not None else 0,
                               count, used, reset_s)
        raise self._rejection(vk, status, now, period, reset_s, est_tokens, est_cost_nanos, count, used, spent,
                              reserved)

    def _rejection(self, vk: VirtualKey, status: int, now: float, period: int, reset_s: int, est_tokens: int,
                   est_cost_nanos: int, count: int, used: int, spent: int, reserved: int) -> ApiError:
        name = vk.name
        if status == BUDGET:
            assert vk.budget_nanos is not None
            period_reset = max(1, math.ceil((period + 1) * vk.budget_period_s - now))
            return ApiError(
                402, f"budget exhausted for key '{name}': {vk.budget_nanos / NANOS_PER_USD:.2f} USD per "
                     f"{format_period(vk.budget_period_s)}, {spent / NANOS_PER_USD:.6f} USD spent and "
                     f"{reserved / NANOS_PER_USD:.6f} USD reserved by requests in flight, and this request may "
                     f"cost up to {est_cost_nanos / NANOS_PER_USD:.6f} USD (a lower max_tokens reserves less); "
                     f"the budget resets in {period_reset}s", type="insufficient_quota", code="budget_exceeded",
                headers={"retry-after": str(period_reset)})
        headers = _rate_headers(vk, count, used, reset_s)
        if status == TOO_LARGE:
            return ApiError(429, f"request too large for key '{name}': about {est_tokens} tokens, more than its "
                                 f"limit of {vk.tpm} tokens per minute; shorten the prompt",
                            code="rate_limit_exceeded", headers=headers)
        headers["retry-after"] = str(reset_s)
        if status == RPM:
            what = f"{vk.rpm} requests per minute"
        else:
            what = f"{vk.tpm} tokens per minute ({used} used, about {est_tokens} requested)"
        return ApiError(429, f"rate limit exceeded for key '{name}': {what}; retry after {reset_s}s",
                        code="rate_limit_exceeded", headers=headers)

    def _degraded(self, vk: VirtualKey) -> Reservation:
        if not self._warned:
            self._warned = True
            log.warning("limits cannot be checked (Redis unreachable): %s",
                        "admitting requests unchecked (fail_open)" if self.fail_open
                        else "refusing limited keys with 503 (fail_closed)")
        if self.fail_open:
            self.stats["degraded_admits"] += 1
            return Reservation(vk, degraded=True, settled=True)
        self.stats["degraded_rejects"] += 1
        raise ApiError(503, "rate limits and budgets cannot be checked right now; retry shortly",
                       code="limits_unavailable", headers={"retry-after": "1"})

    # -- settle ---------------------------------------------------------------------------------
    async def settle(self, res: Reservation, actual_tokens: int, actual_cost_nanos: int) -> None:
        """Replace the reservation with the real usage. Never raises; a second call is a no-op.
        Call it also when the request failed (with the usage billed, usually 0)."""
        if res.settled:
            return
        res.settled = True
        vk = res.vk
        assert vk is not None
        delta = max(0, int(actual_tokens)) - res.est_tokens if vk.tpm is not None else 0
        has_budget = vk.budget_nanos is not None
        cost = max(0, int(actual_cost_nanos)) if has_budget else 0
        if delta == 0 and (not has_budget or (cost == 0 and res.est_cost_nanos == 0)):
            return  # nothing to change: no Redis call
        if self._memory is not None:
            self._memory.settle(vk, res, delta, cost)
            return
        keys = self._keys(vk, res.minute, res.period)[1:]
        now = self.clock()
        try:
            await self._redis(SETTLE, keys, ["" if vk.tpm is None else delta, cost if has_budget else -1,
                                             f"r:{res.minute}", res.est_cost_nanos,
                                             self._budget_ttl(now, vk, res.period)])
        except _Unavailable:
            self.stats["settle_failures"] += 1

    # -- remaining ------------------------------------------------------------------------------
    async def remaining(self, vk: VirtualKey) -> dict[str, Any]:
        """What is left in the current windows, for metrics and the admin API. `available` is False
        when Redis cannot be read (the numbers are then None)."""
        now = self.clock()
        minute = int(now // WINDOW_S)
        period = int(now // vk.budget_period_s)
        out: dict[str, Any] = {"available": True, "rpm_limit": vk.rpm, "rpm_remaining": None,
                               "tpm_limit": vk.tpm, "tpm_remaining": None,
                               "window_reset_s": max(1, math.ceil((minute + 1) * WINDOW_S - now)),
                               "budget_usd": None if vk.budget_nanos is None else vk.budget_nanos / NANOS_PER_USD,
                               "budget_spent_usd": None, "budget_reserved_usd": None, "budget_remaining_usd": None,
                               "budget_reset_s": max(1, math.ceil((period + 1) * vk.budget_period_s - now))}
        if not vk.has_limits:
            return out
        oldest = minute - self.reservation_minutes
        if self._memory is not None:
            count, used, spent, reserved = self._memory.peek(vk, minute, period, oldest)
        else:
            try:
                count, used, spent, reserved = await self._redis(PEEK, self._keys(vk, minute, period), [oldest])
            except _Unavailable:
                out["available"] = False
                return out
        if vk.rpm is not None:
            out["rpm_remaining"] = max(0, vk.rpm - count)
        if vk.tpm is not None:
            out["tpm_remaining"] = max(0, vk.tpm - used)
        if vk.budget_nanos is not None:
            out["budget_spent_usd"] = spent / NANOS_PER_USD
            out["budget_reserved_usd"] = reserved / NANOS_PER_USD
            out["budget_remaining_usd"] = max(0, vk.budget_nanos - spent - reserved) / NANOS_PER_USD
        return out

    # -- Redis ----------------------------------------------------------------------------------
    def _keys(self, vk: VirtualKey, minute: int, period: int) -> list[str]:
        assert self.conn is not None
        tag = "vk:" + vk.name
        key = self.conn.key
        return [key(tag, "rpm", str(minute)), key(tag, "tpm", str(minute)),
                key(tag, "budget", str(vk.budget_period_s), str(period))]

    @staticmethod
    def _minute_ttl(now: float, minute: int) -> int:
        return max(WINDOW_S, math.ceil((minute + 2) * WINDOW_S - now))

    @staticmethod
    def _budget_ttl(now: float, vk: VirtualKey, period: int) -> int:
        return max(WINDOW_S, math.ceil((period + 2) * vk.budget_period_s - now))

    async def _redis(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        conn = self.conn
        assert conn is not None
        if conn.client is None or not conn.up:
            raise _Unavailable
        assert self._slots is not None
        async with self._slots:
            result = await self._run(conn, script, keys, args)
        self._warned = False
        return result

    async def _run(self, conn: RedisConn, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        delay, waited, reconnects = 0.001, 0.0, 2
        while True:
            if conn.client is None or not conn.up:  # another request found it down meanwhile
                raise _Unavailable
            try:
                return await script(conn.client, keys, args)
            except MaxConnectionsError:
                # Other Redis users took the pool's connections, Redis is fine: wait for one, up to
                # the command timeout.
                if waited >= conn.config.timeout_s:
                    raise _Unavailable from None
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.02)
            except ResponseError as exc:
                if isinstance(exc, ClusterError | TryAgainError):
                    conn.failed(exc)
                else:  # Redis answers but refuses the script: nothing will work until someone fixes it
                    self.stats["script_errors"] += 1
                    if self.stats["script_errors"] == 1 or self.stats["script_errors"] % 1000 == 0:
                        log.error("limits: Redis refused the limiter script (%s); limits follow on_redis_down",
                                  exc)
                raise _Unavailable from None
            except RedisConnectionError as exc:
                # A pooled connection that died with an earlier Redis (restart, failover) fails once and
                # is replaced: try again on a fresh one before calling Redis down. A dead Redis refuses
                # the new connection at once.
                if reconnects and not isinstance(exc, BusyLoadingError):
                    reconnects -= 1
                    continue
                conn.failed(exc)
                raise _Unavailable from None
            except (*REDIS_ERRORS, RedisClusterException) as exc:
                conn.failed(exc)
                raise _Unavailable from None


class _Memory:
    """The same counters and checks as the Lua scripts, for one process without Redis."""

    def __init__(self, reservation_minutes: int) -> None:
        self.reservation_minutes = reservation_minutes
        self.rpm: dict[str, list[int]] = {}  # name -> [minute, requests]
        self.tpm: dict[str, list[int]] = {}  # name -> [minute, tokens]
        self.budget: dict[str, _Budget] = {}

    def _counter(self, table: dict[str, list[int]], name: str, minute: int) -> list[int]:
        c = table.get(name)
        if c is None or c[0] != minute:
            c = table[name] = [minute, 0]
        return c

    def _budget(self, vk: VirtualKey, period: int, oldest: int) -> _Budget:
        b = self.budget.get(vk.name)
        if b is None or b.period != (vk.budget_period_s, period):
            b = self.budget[vk.name] = _Budget((vk.budget_period_s, period))
        for m in [m for m in b.reserved if m < oldest]:
            del b.reserved[m]
        return b

    def admit(self, vk: VirtualKey, minute: int, period: int, oldest: int, rpm: int, tpm: int, est: int,
              budget: int, cost: int) -> tuple[int, int, int, int, int]:
        count = used = spent = reserved = 0
        b = None
        if budget >= 0:
            b = self._budget(vk, period, oldest)
            spent, reserved = b.spent, sum(b.reserved.values())
            if cost > 0 and spent + reserved + cost > budget:
                return BUDGET, count, used, spent, reserved
        r = t = None
        if rpm >= 0:
            r = self._counter(self.rpm, vk.name, minute)
            count = r[1]
            if count + 1 > rpm:
                return RPM, count, used, spent, reserved
        if tpm >= 0:
            t = self._counter(self.tpm, vk.name, minute)
            used = t[1]
            if est > tpm:
                return TOO_LARGE, count, used, spent, reserved
            if used + est > tpm:
                return TPM, count, used, spent, reserved
        if r is not None:
            r[1] += 1
            count = r[1]
        if t is not None:
            t[1] += est
            used = t[1]
        if b is not None and cost > 0:
            b.reserved[minute] = b.reserved.get(minute, 0) + cost
            reserved += cost
        return OK, count, used, spent, reserved

    def settle(self, vk: VirtualKey, res: Reservation, delta: int, cost: int) -> None:
        t = self.tpm.get(vk.name)
        if delta and t is not None and t[0] == res.minute:
            t[1] += delta
        b = self.budget.get(vk.name)
        if vk.budget_nanos is None or b is None or b.period != (vk.budget_period_s, res.period):
            return
        if res.est_cost_nanos and res.minute in b.reserved:
            left = b.reserved[res.minute] - res.est_cost_nanos
            if left > 0:
                b.reserved[res.minute] = left
            else:
                del b.reserved[res.minute]
        b.spent += cost

    def peek(self, vk: VirtualKey, minute: int, period: int, oldest: int) -> tuple[int, int, int, int]:
        r, t, b = self.rpm.get(vk.name), self.tpm.get(vk.name), self.budget.get(vk.name)
        count = r[1] if r is not None and r[0] == minute else 0
        used = t[1] if t is not None and t[0] == minute else 0
        if b is None or b.period != (vk.budget_period_s, period):
            return count, used, 0, 0
        return count, used, b.spent, sum(v for m, v in b.reserved.items() if m >= oldest)


class _Budget:
    __slots__ = ("period", "reserved", "spent")

    def __init__(self, period: tuple[int, int]) -> None:
        self.period = period
        self.spent = 0
        self.reserved: dict[int, int] = {}
