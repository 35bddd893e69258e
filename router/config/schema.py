"""The configuration file's shape, as typed objects. Unknown keys and wrong types are errors.

Pydantic validates at start-up only; nothing here is touched on the request path (the routing core
works from the plain objects built in `router/routing/`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    extra_fields: bool = True
    # Lets clients ask for the vendor's untranslated body with `x-switchboard-raw-response: true`.
    allow_raw_response_header: bool = True


class TimeoutsConfig(_Strict):
    connect_s: float = Field(5.0, gt=0)
    first_byte_s: float = Field(60.0, gt=0)
    idle_s: float = Field(60.0, gt=0)
    total_s: float = Field(600.0, gt=0)


class KeyConfig(_Strict):
    value: str
    weight: float = Field(1.0, gt=0)
    models: list[str] | None = None  # globs; absent = every model


class ProviderConfig(_Strict):
    type: str | None = None  # absent: the provider's name is its type
    base_url: str | None = None
    keys: list[KeyConfig] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: TimeoutsConfig = TimeoutsConfig()
    max_retries: int = Field(1, ge=0, le=10)
    models: list[str] = Field(default_factory=list)  # models this provider declares (bare-name lookup)
    raw_response: bool = False
    api_version: str | None = None  # azure
    deployments: dict[str, str] = Field(default_factory=dict)  # azure: model -> deployment name
    region: str | None = None  # bedrock, vertex
    project: str | None = None  # vertex
    options: dict[str, Any] = Field(default_factory=dict)  # type-specific settings (e.g. mock latency)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class TargetConfig(_Strict):
    model: str
    weight: float = Field(1.0, gt=0)


class AliasConfig(_Strict):
    targets: list[TargetConfig] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`fast: openai/gpt-4o-mini` is short for one target."""
        if isinstance(data, str):
            return {"targets": [{"model": data}]}
        return data


class PriceConfig(_Strict):
    """USD per million tokens; overrides genai-prices for one `provider/model`."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(None, ge=0)
    cache_write_per_mtok: float | None = Field(None, ge=0)


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, AliasConfig] = Field(default_factory=dict)
    pricing: dict[str, PriceConfig] = Field(default_factory=dict)
