"""Gauges that mirror state: breakers and cool-downs, budgets and rate limits, Redis, the accounting buffer.

Refreshed by one background task per worker every `interval_s` (and once at start-up), never on the
request path. Each worker reports what it sees; `router.metrics.GAUGE_MODES` says how `/metrics`
combines workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .metrics import OTHER, Metrics
from .tasks import stop

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("switchboard")

_STATE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class GaugeRefresher:
    def __init__(self, metrics: Metrics, gw: Gateway, interval_s: float = 5.0) -> None:
        self.metrics = metrics
        self.gw = gw
        self.interval_s = interval_s
        self._task: asyncio.Task | None = None
        self._dropped = 0
        self._key_cooldowns: set[tuple[str, str]] = set()
        self._limit_keys: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await stop(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a gauge must never take the worker down
                log.warning("metrics: refreshing the gauges failed", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def refresh(self) -> None:
        self.refresh_local()
        await self.refresh_limits()

    def refresh_local(self) -> None:
        """Breakers, Redis, limiter and accounting state: in-process reads only."""
        f = self.metrics.f
        labels = self.metrics.labels
        gw = self.gw
        states: dict[tuple[str, str, str], tuple[float, float]] = {}
        cooling: dict[tuple[str, str], float] = {}
        for entry in gw.health.snapshot():
            deployment = entry["deployment"]
            slot = entry["key"]
            if deployment is None:
                key = (labels.provider(slot.partition("#")[0]), slot)
                cooling[key] = max(cooling.get(key, 0.0), entry["cooldown_remaining_s"])
                continue
            key3 = (labels.provider(deployment.partition("/")[0]), labels.model(deployment), slot)
            state, cooldown = states.get(key3, (0.0, 0.0))
            states[key3] = (max(state, _STATE.get(entry["state"], 0.0)), max(cooldown, entry["cooldown_remaining_s"]))
        for (provider, model, slot), (state, cooldown) in states.items():
            f.deployment_state.labels(provider, model, slot).set(state)
            f.deployment_cooldown.labels(provider, model, slot).set(cooldown)
        for provider, slot in self._key_cooldowns - set(cooling):
            f.key_cooldown.labels(provider, slot).set(0.0)  # the cool-down is over
        for (provider, slot), remaining in cooling.items():
            f.key_cooldown.labels(provider, slot).set(remaining)
        self._key_cooldowns |= set(cooling)
        if gw.redis is not None:
            mode = "cluster" if gw.redis.config.cluster else "standalone"
            f.redis_up.labels(mode).set(1.0 if gw.redis.up else 0.0)
        f.limits_degraded.set(1.0 if gw.limiter.degraded else 0.0)
        f.buffered.set(gw.accountant.buffered)
        dropped = gw.accountant.dropped
        if dropped > self._dropped:
            f.dropped.inc(dropped - self._dropped)
        self._dropped = dropped

    async def refresh_limits(self) -> None:
        """What is left of each key's budget and rate limits (one Redis script per key with Redis)."""
        gw = self.gw
        if gw.keys is None:
            return
        f = self.metrics.f
        seen: set[str] = set()
        for vk in await gw.keys.list():
            if not vk.has_limits:
                continue
            name = self.metrics.labels.key(vk.name)
            if name == OTHER:
                continue  # past the label cap: no per-key gauge
            left = await gw.limiter.remaining(vk)
            if not left["available"]:
                continue
            seen.add(name)
            if left["budget_usd"] is not None:
                f.budget.labels(name).set(left["budget_usd"])
                f.budget_spent.labels(name).set(left["budget_spent_usd"])
                f.budget_remaining.labels(name).set(left["budget_remaining_usd"])
            if left["rpm_remaining"] is not None:
                f.rate_remaining.labels(name, "rpm").set(left["rpm_remaining"])
            if left["tpm_remaining"] is not None:
                f.rate_remaining.labels(name, "tpm").set(left["tpm_remaining"])
        for name in self._limit_keys - seen:  # a deleted key: stop reporting it
            for gauge in (f.budget, f.budget_spent, f.budget_remaining):
                with contextlib.suppress(KeyError):
                    gauge.remove(name)
            for limit in ("rpm", "tpm"):
                with contextlib.suppress(KeyError):
                    f.rate_remaining.remove(name, limit)
        self._limit_keys = seen
