"""Deployment health: circuit breakers per deployment and cool-downs per key.

A deployment is one provider key serving one model. After `failures` failures within `window_s`
its breaker opens and the deployment is skipped for `cooldown_s`; then one probe request is let
through (half-open): success closes the breaker, failure opens it again. A 429 with `Retry-After`
opens it for at least that long. A key the vendor rejects (401/403) is skipped for `key_cooldown_s`.
Latency (EWMA of time to first byte) and in-flight counts feed the load-balancing strategies.

State is per worker process: it reacts within a handful of requests, which is what a breaker
needs, and costs no network round trip on the hot path.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from ..config.schema import CooldownConfig


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class Deployment:
    """Circuit breaker of one (provider/model, key)."""

    label: str
    key_id: str
    state: BreakerState = BreakerState.CLOSED
    failures: deque = field(default_factory=deque)
    open_until: float = 0.0
    probing: bool = False
    successes: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class LabelStats:
    """Load-balancing inputs of one `provider/model`, over all its keys."""

    in_flight: int = 0
    ttfb_ewma_ms: float | None = None
    measured_at: float = 0.0


class HealthRegistry:
    def __init__(self, policy: CooldownConfig | None = None, clock=time.monotonic, ewma_alpha: float = 0.3,
                 latency_ttl_s: float = 30.0) -> None:
        self.policy = policy or CooldownConfig()
        self.latency_ttl_s = latency_ttl_s
        self._clock = clock
        self._alpha = ewma_alpha
        self._deployments: dict[tuple[str, str], Deployment] = {}
        self._labels: dict[str, LabelStats] = {}
        self._bad_keys: dict[str, float] = {}  # key id -> cool-down end

    def deployment(self, label: str, key_id: str) -> Deployment:
        dep = self._deployments.get((label, key_id))
        if dep is None:
            dep = self._deployments[(label, key_id)] = Deployment(label, key_id)
        return dep

    def stats(self, label: str) -> LabelStats:
        stats = self._labels.get(label)
        if stats is None:
            stats = self._labels[label] = LabelStats()
        return stats

    def latency_ms(self, label: str) -> float:
        """EWMA time to first byte, for `least_latency`; 0 when unmeasured or stale, so that a
        deployment that was slow once is measured again now and then instead of never chosen."""
        stats = self._labels.get(label)
        if stats is None or stats.ttfb_ewma_ms is None or self._clock() - stats.measured_at > self.latency_ttl_s:
            return 0.0
        return stats.ttfb_ewma_ms

    # -- admission --------------------------------------------------------------------------
    def available(self, dep: Deployment) -> bool:
        """May a request go to this deployment now? An expired open breaker becomes half-open."""
        if dep.state is BreakerState.CLOSED:
            return True
        if dep.state is BreakerState.OPEN:
            if self._clock() < dep.open_until:
                return False
            dep.state = BreakerState.HALF_OPEN
            dep.probing = False
        return not dep.probing  # one probe at a time while half-open

    def key_ok(self, key_id: str) -> bool:
        until = self._bad_keys.get(key_id)
        if until is None:
            return True
        if self._clock() >= until:
            del self._bad_keys[key_id]
            return True
        return False

    def key_failed(self, key_id: str) -> None:
        if self.policy.key_cooldown_s > 0:
            self._bad_keys[key_id] = self._clock() + self.policy.key_cooldown_s

    # -- one request's life on a deployment -------------------------------------------------
    def start(self, dep: Deployment) -> None:
        self.stats(dep.label).in_flight += 1
        if dep.state is BreakerState.HALF_OPEN:
            dep.probing = True

    def finish(self, dep: Deployment) -> None:
        stats = self.stats(dep.label)
        stats.in_flight = max(0, stats.in_flight - 1)
        dep.probing = False

    def success(self, dep: Deployment, ttfb_ms: float | None = None) -> None:
        dep.successes += 1
        dep.state = BreakerState.CLOSED
        dep.probing = False
        dep.failures.clear()
        if ttfb_ms is not None:
            stats = self.stats(dep.label)
            prev = stats.ttfb_ewma_ms
            stats.ttfb_ewma_ms = ttfb_ms if prev is None else self._alpha * ttfb_ms + (1 - self._alpha) * prev
            stats.measured_at = self._clock()

    def failure(self, dep: Deployment, reason: str, retry_after: float | None = None) -> None:
        """Count a failure; open the breaker on too many, on a failed probe, or when told to wait."""
        dep.errors += 1
        dep.last_error = reason
        now = self._clock()
        window = dep.failures
        window.append(now)
        while window and now - window[0] > self.policy.window_s:
            window.popleft()
        tripped = dep.state is BreakerState.HALF_OPEN or len(window) >= self.policy.failures
        cooldown = max(self.policy.cooldown_s if tripped else 0.0, retry_after or 0.0)
        if cooldown > 0:
            dep.state = BreakerState.OPEN
            dep.probing = False
            dep.open_until = now + cooldown
            window.clear()

    # -- reporting --------------------------------------------------------------------------
    def snapshot(self) -> list[dict]:
        """Deployment states for `/readyz` and the health gauges."""
        now = self._clock()
        out = []
        for dep in self._deployments.values():
            state = "half_open" if dep.state is BreakerState.OPEN and now >= dep.open_until else dep.state.value
            stats = self.stats(dep.label)
            out.append({
                "deployment": dep.label, "key": dep.key_id, "state": state,
                "cooldown_remaining_s": round(max(0.0, dep.open_until - now), 3) if state == "open" else 0.0,
                "successes": dep.successes, "errors": dep.errors, "last_error": dep.last_error,
                "ttfb_ewma_ms": None if stats.ttfb_ewma_ms is None else round(stats.ttfb_ewma_ms, 3),
                "in_flight": stats.in_flight})
        for key_id, until in self._bad_keys.items():
            if until > now:
                out.append({"deployment": None, "key": key_id, "state": "key_cooldown",
                            "cooldown_remaining_s": round(until - now, 3)})
        return out
