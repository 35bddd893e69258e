"""Load, expand and validate a config file; every problem is reported with its config path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from providers import PROVIDER_TYPES, ProviderSettings, create_provider

from .env import expand
from .schema import Config, ProviderConfig

# Wire formats whose translator needs a base_url from the config.
_NEEDS_BASE_URL = frozenset({"azure"})


class ConfigError(Exception):
    """The config cannot be used; `problems` has one line per problem, each naming its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    warnings: list[str] = field(default_factory=list)
    disabled: frozenset[str] = frozenset()  # providers switched off because their keys are empty
    source: str = "<memory>"


def provider_type(name: str, provider: ProviderConfig) -> str:
    return provider.type or name


def provider_settings(name: str, pc: ProviderConfig) -> ProviderSettings:
    """The translator's view of a provider's config (no keys: those are passed per request)."""
    return ProviderSettings(
        name=name, type=provider_type(name, pc), base_url=pc.base_url, headers=dict(pc.headers),
        api_version=pc.api_version, region=pc.region, project=pc.project,
        deployments=dict(pc.deployments), options=dict(pc.options))


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read a YAML file and validate it (see `parse_config`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: cannot read config: not UTF-8 text (byte {exc.start})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {_yaml_problem(exc)}"]) from None
    loaded = parse_config(raw if raw is not None else {}, environ)
    return LoadedConfig(loaded.config, loaded.warnings, loaded.disabled, str(path))


def parse_config(raw: object, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Validate an already-parsed config document; raise `ConfigError` listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(["<root>: the config must be a mapping"])
    try:
        config = Config.model_validate(expand(raw, environ))
    except ValidationError as exc:
        raise ConfigError([_format(err) for err in exc.errors()]) from None

    problems: list[str] = []
    warnings: list[str] = []
    disabled: set[str] = set()
    providers = dict(config.providers)
    for name, provider in config.providers.items():
        where = f"providers.{name}"
        if "/" in name:
            problems.append(f"{where}: a provider name cannot contain '/'")
        ptype = provider_type(name, provider)
        if ptype not in PROVIDER_TYPES:
            field_path = f"{where}.type" if provider.type else where
            known = ", ".join(sorted(PROVIDER_TYPES))
            problems.append(f"{field_path}: unknown provider type '{ptype}' (known: {known})")
        elif ptype in _NEEDS_BASE_URL and not provider.base_url:
            problems.append(f"{where}.base_url: required for type '{ptype}'")
        else:
            try:  # the translator checks its own type-specific settings (e.g. `options`)
                create_provider(provider_settings(name, provider))
            except (ValueError, TypeError) as exc:
                message = str(exc)
                problems.append(message if message.startswith(where) else f"{where}: {message}")
        if provider.keys:
            usable = [k for k in provider.keys if k.value.strip()]
            if not usable:
                disabled.add(name)
                warnings.append(f"{where}: every key is empty; provider disabled")
            elif len(usable) < len(provider.keys):
                warnings.append(f"{where}.keys: {len(provider.keys) - len(usable)} empty key(s) ignored")
                providers[name] = provider.model_copy(update={"keys": usable})

    for alias, spec in config.models.items():
        where = f"models.{alias}"
        if "/" in alias or alias.startswith("agent:"):
            problems.append(f"{where}: an alias cannot contain '/' or start with 'agent:'")
        for i, target in enumerate(spec.targets):
            problems.extend(_check_ref(target.model, f"{where}.targets[{i}].model", config, allow_alias=False))
        for i, ref in enumerate(spec.fallbacks):
            problems.extend(_check_ref(ref, f"{where}.fallbacks[{i}]", config, allow_alias=True))
    if config.redis is not None and not config.redis.url.strip():
        warnings.append("redis.url: empty; running without Redis (cache, accounting and limits in process)")
        config = config.model_copy(update={"redis": None})
    if config.cache is not None and config.cache.backend == "redis" and config.redis is None:
        problems.append("cache.backend: 'redis' needs the redis section (redis.url)")
    if config.auth is not None:
        seen_names: set[str] = set()
        seen_keys: set[str] = set()
        for i, vk in enumerate(config.auth.keys):
            if vk.name in seen_names:
                problems.append(f"auth.keys[{i}].name: duplicate key name '{vk.name}'")
            if vk.key and vk.key in seen_keys:
                problems.append(f"auth.keys[{i}].key: the same key value is given twice")
            seen_names.add(vk.name)
            seen_keys.add(vk.key)
    for ref in config.pricing:
        if "/" not in ref:
            problems.append(f"pricing.{ref}: must be 'provider/model'")

    if problems:
        raise ConfigError(problems)
    config = config.model_copy(update={"providers": providers})
    return LoadedConfig(config, warnings, frozenset(disabled))


def _check_ref(ref: str, where: str, config: Config, *, allow_alias: bool) -> list[str]:
    provider, sep, model = ref.partition("/")
    if sep and provider in config.providers and model:
        return []
    if allow_alias and not sep and ref in config.models:
        return []
    expected = "'provider/model' with a configured provider" + (" or an alias" if allow_alias else "")
    return [f"{where}: '{ref}' is not {expected}"]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: what is wrong and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.context + ': ' if exc.context else ''}{exc.problem}{where}"
    return " ".join(str(exc).split())


def _format(err: Mapping) -> str:
    path = ""
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("str", "function-before[_shorthand()]") or str(part).startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    return f"{path or '<root>'}: {message}"
