"""Model resolution: from the name a client sent to the ordered list of deployments to try.

Built once at start-up from the config; on the request path resolution is a dict lookup plus a
weighted shuffle of an alias's targets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import NamedTuple

from cachetools import LRUCache

from providers import ErrorKind, Provider, UpstreamError, create_provider
from providers.capabilities import honours_all

from ..config import KeyConfig, LoadedConfig, TimeoutsConfig
from ..config.loader import provider_settings
from .health import HealthRegistry


class RouteError(Exception):
    """A model name that cannot be routed; carries the OpenAI error fields."""

    def __init__(self, status: int, message: str, code: str, param: str = "model") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


class KeySlot(NamedTuple):
    """One provider key as the chain sees it; `id` ("openai#0") names it in logs and health."""

    id: str
    value: str | None
    weight: float


@dataclass(slots=True, eq=False)
class ProviderRuntime:
    """One configured provider: its translator plus what the router needs to call it."""

    name: str
    provider: Provider
    keys: list[KeyConfig]
    timeouts: TimeoutsConfig
    max_retries: int
    raw_response: bool
    declared_models: list[str]
    _slots_for_model: LRUCache = field(default_factory=lambda: LRUCache(4096))
    honours_all: bool = field(init=False)  # no chat parameter can be refused (no per-request check)

    def __post_init__(self) -> None:
        self.honours_all = honours_all(self.provider.capabilities)

    def key_slots(self, model: str) -> tuple[KeySlot, ...]:
        """The keys allowed to call `model` (a key's `models` globs restrict it); memoised."""
        slots = self._slots_for_model.get(model)
        if slots is None:
            if not self.keys:
                slots = (KeySlot(f"{self.name}#-", None, 1.0),)
            else:
                slots = tuple(KeySlot(f"{self.name}#{i}", k.value, k.weight) for i, k in enumerate(self.keys)
                              if k.models is None or any(fnmatchcase(model, g) for g in k.models))
            self._slots_for_model[model] = slots
        if not slots:
            raise UpstreamError(ErrorKind.NOT_FOUND, f"{self.name}: no configured key may use model '{model}'",
                                code="model_not_allowed")
        return slots


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment to attempt: a provider and the vendor's model id."""

    runtime: ProviderRuntime
    model: str
    label: str  # "provider/model", as reported in extra_fields


@dataclass(frozen=True, slots=True)
class Alias:
    targets: tuple[Target, ...]
    weights: tuple[float, ...]
    fallbacks: tuple[str, ...]
    strategy: str
    hedge_after_s: float | None


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered deployments for one request; `hedge_after_s` races the first two."""

    targets: list[Target]
    hedge_after_s: float | None = None


class RoutingTable:
    """Resolves model names; see DESIGN.md "Model names" and "Fallbacks"."""

    def __init__(self, loaded: LoadedConfig, rng: random.Random | None = None,
                 health: HealthRegistry | None = None) -> None:
        config = loaded.config
        self.rng = rng or random.Random()
        self.health = health or HealthRegistry(config.routing.cooldown)
        self.disabled = loaded.disabled
        self.runtimes: dict[str, ProviderRuntime] = {}
        for name, pc in config.providers.items():
            if name in loaded.disabled:
                continue
            self.runtimes[name] = ProviderRuntime(
                name=name, provider=create_provider(provider_settings(name, pc)), keys=list(pc.keys),
                timeouts=pc.timeouts, max_retries=pc.max_retries, raw_response=pc.raw_response,
                declared_models=list(pc.models))
        self.aliases: dict[str, Alias] = {}
        for alias, spec in config.models.items():
            pairs = [(t, spec_t.weight) for spec_t in spec.targets
                     if (t := self._direct(spec_t.model)) is not None]
            hedge = spec.hedge_after_ms / 1000.0 if spec.hedge_after_ms else None
            self.aliases[alias] = Alias(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs),
                                        tuple(spec.fallbacks), spec.strategy or config.routing.strategy, hedge)
        # Bare provider model names, resolvable only when exactly one provider declares them.
        owners: dict[str, list[str]] = {}
        for rt in self.runtimes.values():
            for m in rt.declared_models:
                owners.setdefault(m, []).append(rt.name)
        self.bare: dict[str, Target | None] = {
            m: (self._direct(f"{names[0]}/{m}") if len(names) == 1 else None) for m, names in owners.items()}
        self._direct_cache: LRUCache = LRUCache(8192)

    # -- resolution -------------------------------------------------------------------------
    def _direct(self, ref: str) -> Target | None:
        provider, _, model = ref.partition("/")
        rt = self.runtimes.get(provider)
        if rt is None or not model:
            return None
        return Target(rt, model, ref)

    def direct(self, ref: str) -> Target | None:
        """`provider/model` for a configured, enabled provider (memoised, bounded)."""
        target = self._direct_cache.get(ref)
        if target is None:
            target = self._direct(ref)
            if target is not None:
                self._direct_cache[ref] = target
        return target

    def expand(self, name: str) -> list[Target] | None:
        """Every target one name stands for, in the order to try them; None if unknown."""
        alias = self.aliases.get(name)
        if alias is not None:
            return self._ordered(alias)
        provider, sep, _ = name.partition("/")
        if sep and provider in self.runtimes:
            target = self.direct(name)
            return [target] if target else None
        bare = self.bare.get(name)
        return [bare] if bare is not None else None

    def plan(self, requested: str, request_fallbacks: list[str] | None = None) -> Plan:
        """The attempt chain: the requested model's targets, its alias fallbacks, then the request's."""
        primary = self.expand(requested)
        if primary is None:
            raise self._not_found(requested, "model")
        chain = list(primary)
        alias = self.aliases.get(requested)
        refs: list[tuple[str, str]] = [(r, "model") for r in alias.fallbacks] if alias else []
        refs += [(r, "fallbacks") for r in request_fallbacks or ()]
        for ref, param in refs:
            targets = self.expand(ref)
            if targets is None:
                if param == "fallbacks" and ref.partition("/")[0] not in self.disabled:
                    raise self._not_found(ref, "fallbacks", status=400)
                continue  # a fallback on a disabled provider is skipped, not an error
            chain.extend(targets)
        seen: set[str] = set()
        unique = [t for t in chain if not (t.label in seen or seen.add(t.label))]
        if not unique:
            raise RouteError(503, f"model '{requested}' has no enabled deployment (check provider keys)",
                             "no_deployment_available")
        return Plan(unique, alias.hedge_after_s if alias and len(unique) > 1 else None)

    def _ordered(self, alias: Alias) -> list[Target]:
        """The alias's targets in the order its strategy prefers.

        `weighted`: weighted random order (Efraimidis-Spirakis), the first is the weighted pick.
        `least_latency`: lowest EWMA time to first byte first (unmeasured first, to measure them).
        `least_busy`: fewest requests in flight first. Ties keep the weighted random order.
        """
        targets = alias.targets
        if len(targets) <= 1:
            return list(targets)
        rnd = self.rng.random
        weighted = [-(rnd() ** (1.0 / w)) for w in alias.weights]
        if alias.strategy == "least_latency":
            stats = [self.health.latency_ms(t.label) for t in targets]
            order = sorted(range(len(targets)), key=lambda i: (stats[i], weighted[i]))
        elif alias.strategy == "least_busy":
            busy = [self.health.stats(t.label).in_flight for t in targets]
            order = sorted(range(len(targets)), key=lambda i: (busy[i], weighted[i]))
        else:
            order = sorted(range(len(targets)), key=weighted.__getitem__)
        return [targets[i] for i in order]

    def _not_found(self, name: str, param: str, status: int = 404) -> RouteError:
        provider = name.partition("/")[0]
        if provider in self.disabled:
            return RouteError(status, f"provider '{provider}' is disabled (its API key is not set)",
                              "provider_disabled", param)
        return RouteError(status, f"the model '{name}' does not exist or is not configured",
                          "model_not_found", param)

    # -- listing ----------------------------------------------------------------------------
    def model_ids(self) -> list[tuple[str, str]]:
        """(id, owned_by) for `/v1/models`: aliases, then each provider's declared models."""
        out = [(alias, "switchboard") for alias in self.aliases]
        for rt in self.runtimes.values():
            out.extend((f"{rt.name}/{m}", rt.name) for m in rt.declared_models)
        return out
