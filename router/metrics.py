"""Prometheus metrics (prefix `switchboard_`): definitions, bounded labels and the per-request update.

The request path calls `Metrics.observe` once per request (from the observing middleware, with the
outcomes the pipeline reported) and `Metrics.in_flight(route)` around it. Each call is a few dict
lookups for pre-bound label children plus `inc`/`observe`; nothing is formatted, nothing awaited.
Gauges that mirror state (breakers, budgets, Redis, the accounting buffer) are set by
`router.metrics_gauges` in a background task, never on the request path.

Label values are bounded: provider names, `provider/model` labels and alias names come from the
config (anything else is reported as `other`; `none` means no deployment was tried); virtual key
names are the config's keys plus the first `KEY_LABEL_CAP` other key names seen, then `other`.

Multiprocess (`serve --workers N`): `router.serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh
directory before anything imports prometheus_client, so every value lives in a per-process mmap file
and `/metrics` sums them with `MultiProcessCollector`. The metric objects are created lazily, in the
worker, by `families()`: a parent that created them before forking would leave zero-valued gauge
files of a process that never serves. Gauge modes (how workers combine) are chosen per gauge and
listed in `GAUGE_MODES`; `live*` modes drop a worker's values when it dies (`mark_process_dead`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .accounting.record import ANONYMOUS
from .config.schema import Config

if TYPE_CHECKING:
    from .exchange import Exchange

OTHER = "other"  # a label value outside the configured set
NONE = "none"  # no deployment was tried (the request was refused before routing)
KEY_LABEL_CAP = 1000  # distinct non-config key names that become labels; later ones are `other`
TOOL_LABEL_CAP = 500  # distinct tool names that become labels; later ones are `other`

# LLM latencies: a few ms (cache hits, embeddings) to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
                   45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
# The router's own time: tens of µs to tens of ms.
OVERHEAD_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)

# How each gauge combines across workers (prometheus_client multiprocess modes).
GAUGE_MODES = {
    "in_flight_requests": "livesum",  # requests being served now, all live workers together
    "deployment_state": "livemax",  # the worst breaker state any live worker sees (breakers are per worker)
    "deployment_cooldown_seconds": "livemax",
    "key_cooldown_seconds": "livemax",
    "budget_usd": "livemax",  # configured, identical in every worker
    "budget_spent_usd": "livemax",
    "budget_remaining_usd": "livemin",  # with Redis every worker reads the same value; without, the lowest
    "rate_limit_remaining": "livemin",
    "redis_up": "livemin",  # 1 only when every live worker reaches Redis
    "limits_degraded": "livemax",  # 1 when any worker admits without checking limits
    "accounting_buffered_records": "livesum",  # usage groups waiting for Redis, all workers together
}

_STATUS_CLASS = {i: f"{i}xx" for i in range(1, 6)}


def multiprocess() -> bool:
    """True when prometheus_client keeps values in PROMETHEUS_MULTIPROC_DIR (fixed at its import)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


_families: SimpleNamespace | None = None


def families() -> SimpleNamespace:
    """The metric objects of this process, created on first use (in the worker, after the fork)."""
    global _families
    if _families is not None:
        return _families
    disable_created_metrics()  # no `*_created` series: they double the series count for nothing we chart
    pm = ("provider", "model")

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"switchboard_{name}", doc, labels, multiprocess_mode=GAUGE_MODES[name])

    f = SimpleNamespace(
        requests=Counter("switchboard_requests", "Proxied requests by route, provider, model and HTTP status class.",
                         ("route", *pm, "status_class")),
        errors=Counter("switchboard_errors", "Failed proxied requests by error class.", ("route", *pm, "class")),
        key_requests=Counter("switchboard_key_requests", "Proxied requests per virtual key by outcome "
                             "(ok or the error class).", ("key", "outcome")),
        tokens=Counter("switchboard_tokens", "Tokens billed by the vendor (type: prompt, completion, cached).",
                       (*pm, "key", "type")),
        cost=Counter("switchboard_cost_usd", "Cost in USD as billed (unpriced models count 0).", (*pm, "key")),
        cache_hits=Counter("switchboard_cache_hits", "Responses served from the router's cache.", (*pm, "key")),
        cache_misses=Counter("switchboard_cache_misses", "Cache lookups that missed.", (*pm, "key")),
        fallbacks=Counter("switchboard_fallbacks", "Moves to another deployment after a failure (hedges included); "
                          "provider/model is the deployment moved to.", ("requested", *pm)),
        retries=Counter("switchboard_retries", "Retries of the same deployment (another key or after a backoff).",
                        pm),
        dropped=Counter("switchboard_accounting_dropped_records", "Usage records dropped because the buffer "
                        "for Redis was full."),
        latency=Histogram("switchboard_request_duration_seconds", "End-to-end latency: request received to "
                          "response complete (streams: last byte).", ("route", *pm), buckets=LATENCY_BUCKETS),
        upstream=Histogram("switchboard_upstream_duration_seconds", "One attempt at one deployment (streams: up "
                           "to the first content chunk).", pm, buckets=LATENCY_BUCKETS),
        overhead=Histogram("switchboard_overhead_seconds", "Router overhead: end-to-end (streams: to the first "
                           "token) minus time waiting on the upstream; requests served by their first attempt.",
                           ("route",), buckets=OVERHEAD_BUCKETS),
        ttft=Histogram("switchboard_time_to_first_token_seconds", "Streams: request received to the first "
                       "content chunk sent.", pm, buckets=LATENCY_BUCKETS),
        tool_calls=Counter("switchboard_tool_calls", "Tool calls by tool, by who called (agent: an agent's loop; "
                           "mcp: a client of /mcp) and outcome (ok or error).", ("tool", "via", "outcome")),
        tool_duration=Histogram("switchboard_tool_duration_seconds", "One tool call, arguments checked to result.",
                                ("tool", "via"), buckets=LATENCY_BUCKETS),
        in_flight=gauge("in_flight_requests", "Proxied requests being served.", ("route",)),
        deployment_state=gauge("deployment_state", "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open.",
                               (*pm, "slot")),
        deployment_cooldown=gauge("deployment_cooldown_seconds", "Seconds until an open breaker lets a probe "
                                  "through.", (*pm, "slot")),
        key_cooldown=gauge("key_cooldown_seconds", "Seconds a provider key the vendor rejected is skipped.",
                           ("provider", "slot")),
        budget=gauge("budget_usd", "Budget per period of a virtual key.", ("key",)),
        budget_spent=gauge("budget_spent_usd", "Spent in the key's current budget period.", ("key",)),
        budget_remaining=gauge("budget_remaining_usd", "Budget left (minus reservations in flight).", ("key",)),
        rate_remaining=gauge("rate_limit_remaining", "Requests (rpm) or tokens (tpm) left in the current minute.",
                             ("key", "limit")),
        redis_up=gauge("redis_up", "1 when Redis is reachable; only with `redis:` configured (mode: standalone "
                       "or cluster).", ("mode",)),
        limits_degraded=gauge("limits_degraded", "1 when Redis is down and limits follow `on_redis_down`."),
        buffered=gauge("accounting_buffered_records", "Usage groups buffered until Redis takes them."),
    )
    _families = f
    return f


def exposition() -> bytes:
    """The text exposition of every metric of this process, or of all workers in multiprocess mode."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


_tool_labels: dict[str, str] = {}


def observe_tool(tool: str, via: str, error: bool, seconds: float) -> None:
    """One tool call. Tool names come from the config and the MCP servers; past TOOL_LABEL_CAP distinct
    names the rest count as `other`."""
    label = _tool_labels.get(tool)
    if label is None:
        label = _tool_labels[tool] = tool if len(_tool_labels) < TOOL_LABEL_CAP else OTHER
    f = families()
    f.tool_calls.labels(label, via, "error" if error else "ok").inc()
    f.tool_duration.labels(label, via).observe(seconds)


class Labels:
    """Bounded label values: the config's names map to themselves, anything else to `other`."""

    def __init__(self, config: Config, key_cap: int = KEY_LABEL_CAP) -> None:
        providers = set(config.providers)
        models = {f"{p}/{m}" for p, pc in config.providers.items() for m in pc.models}
        for spec in config.models.values():
            models.update(t.model for t in spec.targets)
            models.update(spec.fallbacks)
        models.update(config.pricing)
        models = {m for m in models if m.partition("/")[0] in providers}
        self.providers = {p: p for p in providers}
        self.models = {m: m for m in models}
        self.requested = {**self.models, **{alias: alias for alias in config.models}}
        self.keys = {ANONYMOUS: ANONYMOUS}
        if config.auth is not None:
            self.keys.update((k.name, k.name) for k in config.auth.keys)
        self._key_room = key_cap

    def provider(self, name: str | None) -> str:
        return NONE if not name else self.providers.get(name, OTHER)

    def model(self, label: str | None) -> str:
        return NONE if not label else self.models.get(label, OTHER)

    def key(self, name: str | None) -> str:
        if name is None:
            return ANONYMOUS
        label = self.keys.get(name)
        if label is None:
            if self._key_room > 0:  # an admin-created key: the first KEY_LABEL_CAP become labels
                self._key_room -= 1
                label = self.keys[name] = name
            else:
                label = OTHER
        return label


class Metrics:
    """The per-app face of the metric families: bounded labels and pre-bound children.

    `observe` maps the request's names to bounded label values (three dict lookups), then finds
    every child it needs in one dict lookup keyed by those values, so the steady state is that
    lookup plus the `inc`/`observe` calls.
    """

    def __init__(self, config: Config) -> None:
        self.f = families()
        self.labels = Labels(config)
        self._bundles: dict[tuple, tuple] = {}
        self._deployments: dict[tuple, tuple] = {}
        self._fallbacks: dict[tuple, object] = {}
        self._routes: dict[str, tuple] = {}

    def route(self, route: str) -> tuple:
        """(in-flight gauge, overhead histogram) of a route, bound once."""
        bound = self._routes.get(route)
        if bound is None:
            bound = self._routes[route] = (self.f.in_flight.labels(route), self.f.overhead.labels(route))
        return bound

    def observe(self, ex: Exchange, status: int, error: str | None, end: float) -> None:
        """Everything about one finished request. `error` is its error class (None when it succeeded)."""
        labels = self.labels
        name = ex.provider
        provider = labels.providers.get(name, OTHER) if name else NONE
        name = ex.model
        model = labels.models.get(name, OTHER) if name else NONE
        name = ex.key
        key = labels.keys.get(name) if name is not None else ANONYMOUS
        if key is None:
            key = labels.key(name)
        route = ex.route
        bundle_key = (route, provider, model, status // 100, key, error)
        bundle = self._bundles.get(bundle_key)
        if bundle is None:
            bundle = self._bundles[bundle_key] = self._bind(route, provider, model, status, key, error)
        requests, latency, key_requests, errors, usage, deployment, overhead = bundle
        requests.inc()
        latency.observe(end - ex.started)
        key_requests.inc()
        if errors is not None:
            errors.inc()
        trails = ex.trails
        if trails:
            first = trails[0]
            if len(trails) == 1 and len(first) == 1 and first[0].model == ex.model:  # the common case
                deployment[0].observe(first[0].latency_ms / 1000.0)
                if error is None:  # served by its first attempt: the overhead is the router's alone
                    served = ex.first_token_at if ex.first_token_at is not None else end
                    overhead.observe(max(0.0, served - ex.started - ex.upstream_s))
            else:
                for trail in trails:
                    self._attempts(ex, trail)
        if ex.first_token_at is not None:
            deployment[1].observe(ex.first_token_at - ex.started)
        if ex.recorded:
            billed = ex.billed
            if billed.prompt_tokens:
                usage[0].inc(billed.prompt_tokens)
            if billed.completion_tokens:
                usage[1].inc(billed.completion_tokens)
            if billed.cached_tokens:
                usage[2].inc(billed.cached_tokens)
            if billed.cost_usd:
                usage[3].inc(billed.cost_usd)
            cache = ex.cache
            if cache == "hit":
                usage[4].inc()
            elif cache == "miss":
                usage[5].inc()

    def _bind(self, route: str, provider: str, model: str, status: int, key: str, error: str | None) -> tuple:
        f = self.f
        status_class = _STATUS_CLASS.get(status // 100, "5xx")
        usage = (f.tokens.labels(provider, model, key, "prompt"), f.tokens.labels(provider, model, key, "completion"),
                 f.tokens.labels(provider, model, key, "cached"), f.cost.labels(provider, model, key),
                 f.cache_hits.labels(provider, model, key), f.cache_misses.labels(provider, model, key))
        return (f.requests.labels(route, provider, model, status_class), f.latency.labels(route, provider, model),
                f.key_requests.labels(key, error or "ok"),
                f.errors.labels(route, provider, model, error) if error is not None else None,
                usage, self._deployment(provider, model), self.route(route)[1])

    def _attempts(self, ex: Exchange, attempts: list) -> None:
        """Upstream latency of every attempt; retries and fallbacks from the order of the trail."""
        labels = self.labels
        previous = None
        for attempt in attempts:
            label = attempt.model
            provider = labels.providers.get(label.partition("/")[0], OTHER)
            model = labels.models.get(label, OTHER)
            bound = self._deployment(provider, model)
            bound[0].observe(attempt.latency_ms / 1000.0)
            if previous is not None and (previous.status != 200 or previous.error is not None):
                if label == previous.model:  # after a failure: the same deployment again is a retry
                    bound[2].inc()
                else:  # another deployment is a fallback (fan-out sub-calls follow successes: neither)
                    requested = labels.requested.get(ex.requested, OTHER) if ex.requested else NONE
                    child = self._fallbacks.get((requested, provider, model))
                    if child is None:
                        child = self._fallbacks[(requested, provider, model)] = self.f.fallbacks.labels(
                            requested, provider, model)
                    child.inc()
            previous = attempt

    def _deployment(self, provider: str, model: str) -> tuple:
        """(upstream histogram, TTFT histogram, retries counter) of one provider/model."""
        bound = self._deployments.get((provider, model))
        if bound is None:
            f = self.f
            bound = self._deployments[(provider, model)] = (
                f.upstream.labels(provider, model), f.ttft.labels(provider, model), f.retries.labels(provider, model))
        return bound
