"""Configuration: YAML with `${VAR}` expansion, validated into typed objects."""

from .loader import ConfigError, LoadedConfig, load_config, parse_config, provider_type
from .schema import AliasConfig, Config, KeyConfig, PriceConfig, ProviderConfig, ServerConfig, TimeoutsConfig

__all__ = [
    "AliasConfig",
    "Config",
    "ConfigError",
    "KeyConfig",
    "LoadedConfig",
    "PriceConfig",
    "ProviderConfig",
    "ServerConfig",
    "TimeoutsConfig",
    "load_config",
    "parse_config",
    "provider_type",
]
