"""Model resolution: from the name a client sent to the ordered list of deployments to try.

Built once at start-up from the config; on the request path resolution is a dict lookup plus a
weighted shuffle of an alias's targets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from cachetools import LRUCache

from providers import ErrorKind, Provider, UpstreamError, create_provider

from ..config import KeyConfig, LoadedConfig, TimeoutsConfig
from ..config.loader import provider_settings


class RouteError(Exception):
    """A model name that cannot be routed; carries the OpenAI error fields."""

    def __init__(self, status: int, message: str, code: str, param: str = "model") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


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
    _keys_for_model: LRUCache = field(default_factory=lambda: LRUCache(4096))

    def pick_key(self, model: str, rng: random.Random, exclude: str | None = None) -> str | None:
        """Weighted choice among the keys allowed for `model` (avoiding `exclude` when possible)."""
        if not self.keys:
            return None
        eligible = self._keys_for_model.get(model)
        if eligible is None:
            eligible = [k for k in self.keys
                        if k.models is None or any(fnmatchcase(model, g) for g in k.models)]
            self._keys_for_model[model] = eligible
        if not eligible:
            raise UpstreamError(ErrorKind.NOT_FOUND, f"{self.name}: no configured key may use model '{model}'",
                                code="model_not_allowed")
        if len(eligible) == 1:
            return eligible[0].value
        pool = [k for k in eligible if k.value != exclude] or eligible
        return rng.choices(pool, weights=[k.weight for k in pool])[0].value


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


class RoutingTable:
    """Resolves model names; see DESIGN.md "Model names" and "Fallbacks"."""

    def __init__(self, loaded: LoadedConfig, rng: random.Random | None = None) -> None:
        config = loaded.config
        self.rng = rng or random.Random()
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
            self.aliases[alias] = Alias(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs),
                                        tuple(spec.fallbacks))
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

    def plan(self, requested: str, request_fallbacks: list[str] | None = None) -> list[Target]:
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
        return unique

    def _ordered(self, alias: Alias) -> list[Target]:
        """Weighted random order (Efraimidis-Spirakis): the first is the weighted pick."""
        if len(alias.targets) <= 1:
            return list(alias.targets)
        rnd = self.rng.random
        keyed = sorted(((rnd() ** (1.0 / w), i) for i, w in enumerate(alias.weights)), reverse=True)
        return [alias.targets[i] for _, i in keyed]

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
