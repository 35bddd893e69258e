"""The configuration file's shape, as typed objects. Unknown keys and wrong types are errors.

Pydantic validates at start-up only; nothing here is touched on the request path (the routing core
works from the plain objects built in `router/routing/`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .agents import MCP_PREFIX, AgentConfig, AgentSettingsConfig
from .mcp import McpConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientTimeoutsConfig(_Strict):
    """Deadlines for clients: slow or stalled ones are answered 408 and their connection closed."""

    headers_s: float = Field(10.0, gt=0)  # from a request's first byte to its last header
    body_s: float = Field(60.0, gt=0)  # to read the whole request body
    idle_s: float = Field(75.0, gt=0)  # a connection with no request (new, or kept alive) is closed


class CorsConfig(_Strict):
    """Browser pages on these origins may call the gateway (see router/cors.py)."""

    allow_origins: list[str] = Field(min_length=1)  # "https://app.example.com", or "*" for any
    allow_headers: list[str] = Field(default_factory=lambda: ["*"])  # "*": whatever the preflight asks
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE", "OPTIONS"])
    max_age_s: int = Field(600, ge=0, le=86400)  # how long a browser may cache a preflight
    allow_credentials: bool = False  # cookies / HTTP auth; the API itself uses bearer keys
    admin: bool = False  # the admin API (/admin/*) answers browsers too

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        out = []
        for origin in v:
            if origin != "*":
                scheme, sep, rest = origin.partition("://")
                if scheme.lower() not in ("http", "https") or not sep or not rest or "/" in rest.rstrip("/"):
                    raise ValueError(f"{origin!r}: an origin is '*' or scheme://host[:port], with no path")
            out.append(origin)
        return out

    @model_validator(mode="after")
    def _credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_credentials with allow_origins '*' would let every site act with the "
                             "user's credentials: list the origins")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(8190, ge=1024, le=65536)  # one header line (and the request line): else 431
    max_headers: int = Field(100, ge=16, le=1000)  # more header fields: 431
    timeouts: ClientTimeoutsConfig = ClientTimeoutsConfig()
    cors: CorsConfig | None = None  # absent: no browser page on another origin may read an answer
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


Strategy = Literal["weighted", "least_latency", "least_busy"]


class RetryConfig(_Strict):
    """Backoff for retries on the same deployment: full jitter, exponential, capped."""

    base_s: float = Field(0.1, gt=0)
    max_s: float = Field(2.0, gt=0)
    max_wait_s: float = Field(2.0, ge=0)  # a longer Retry-After moves on to the next deployment


class CooldownConfig(_Strict):
    """Circuit breaker per deployment (provider + key + model) and cool-down per rejected key."""

    failures: int = Field(3, ge=1)  # failures within `window_s` that open the breaker
    window_s: float = Field(30.0, gt=0)
    cooldown_s: float = Field(15.0, ge=0)  # open for this long, then one probe (half-open)
    key_cooldown_s: float = Field(60.0, ge=0)  # a key the vendor rejected (401/403) is skipped this long


class RoutingConfig(_Strict):
    strategy: Strategy = "weighted"  # default order of an alias's targets
    request_timeout_s: float = Field(600.0, gt=0)  # deadline for the whole chain, retries included
    retry: RetryConfig = RetryConfig()
    cooldown: CooldownConfig = CooldownConfig()
    # Caller-side errors that should still fall back (to a model with a bigger window, a laxer filter).
    fallback_on: list[Literal["context_window", "content_policy"]] = Field(default_factory=list)


class TargetConfig(_Strict):
    model: str
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`targets: [openai/gpt-4o-mini]` is short for weight 1."""
        return {"model": data} if isinstance(data, str) else data


class AliasConfig(_Strict):
    targets: list[TargetConfig] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    strategy: Strategy | None = None  # overrides routing.strategy for this alias
    hedge_after_ms: float | None = Field(None, gt=0)  # start the next target in parallel after this long

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`fast: openai/gpt-4o-mini` is short for one target."""
        if isinstance(data, str):
            return {"targets": [{"model": data}]}
        return data


class PriceConfig(_Strict):
    """USD per million tokens; overrides genai-prices for one `provider/model`. An entry with only
    `max_output_tokens` keeps the catalogue's prices."""

    input_per_mtok: float | None = Field(None, ge=0)
    output_per_mtok: float | None = Field(None, ge=0)
    cache_read_per_mtok: float | None = Field(None, ge=0)
    cache_write_per_mtok: float | None = Field(None, ge=0)
    # The most this model writes in one answer: what a request without max_tokens reserves against
    # a budget (else `auth.max_output_tokens`).
    max_output_tokens: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _prices(self) -> PriceConfig:
        if (self.input_per_mtok is None) != (self.output_per_mtok is None):
            raise ValueError("input_per_mtok and output_per_mtok go together")
        if self.input_per_mtok is None and (self.cache_read_per_mtok is not None
                                            or self.cache_write_per_mtok is not None):
            raise ValueError("cache prices need input_per_mtok and output_per_mtok")
        if self.input_per_mtok is None and self.max_output_tokens is None:
            raise ValueError("give prices (input_per_mtok, output_per_mtok) or max_output_tokens")
        return self


class RedisConfig(_Strict):
    """Shared state for every worker and instance: cache, accounting, budgets, rate limits."""

    url: str  # redis://[user:password@]host:port/db or rediss://…; with `cluster`, any one node
    cluster: bool = False  # Redis Cluster: keys are hash-tagged so multi-key scripts stay in one slot
    key_prefix: str = "sb"
    timeout_s: float = Field(0.5, gt=0)  # per command; slower counts as Redis being down
    max_connections: int = Field(64, ge=1)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):  # "" = unset: Redis off
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v


class CacheConfig(_Strict):
    """Exact-match response cache. `backend: redis` needs the `redis:` section."""

    backend: Literal["off", "memory", "redis"] | None = None  # default: redis when configured, else memory
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, ge=1)  # memory backend (LRU beyond this)
    max_entry_bytes: int = Field(1024 * 1024, ge=1024)  # larger responses are not cached
    coalesce: bool = True  # concurrent identical misses wait for one upstream call


class ResponsesConfig(_Strict):
    """Stored Responses (`store: true`, the default): kept for retrieval and `previous_response_id`."""

    backend: Literal["memory", "redis"] | None = None  # default: redis when configured, else memory
    ttl_s: float = Field(30 * 86400.0, gt=0)  # OpenAI keeps responses 30 days
    max_responses: int = Field(10_000, ge=1)  # memory backend (least recently used dropped)


class VirtualKeyConfig(_Strict):
    """A client key: `Authorization: Bearer <key>`. Limits absent = unlimited."""

    name: str = Field(min_length=1)
    key: str
    # Globs over model names: every name a request writes (model, fallbacks, agent:<id>) and every
    # deployment (`provider/model`) it can reach must match one; absent = every model.
    models: list[str] | None = None
    # Globs over tool names (built-ins, HTTP tools, `<server>-<tool>` of MCP servers): what the key's
    # agents may call and what /mcp lists and runs for it; absent = every tool.
    tools: list[str] | None = None
    budget_usd: float | None = Field(None, ge=0)
    budget_period: str = "30d"  # Nd | Nh | Nm: the budget resets every period
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)

    @field_validator("budget_period")
    @classmethod
    def _period(cls, v: str) -> str:
        if len(v) < 2 or v[-1] not in "dhm" or not v[:-1].isdigit() or int(v[:-1]) <= 0:
            raise ValueError("must look like 30d, 12h or 90m")
        return v


class AuthConfig(_Strict):
    admin_token: str | None = None  # admin API and /v1/usage; empty = those routes are closed
    keys: list[VirtualKeyConfig] = Field(default_factory=list)
    # When Redis cannot be reached: let requests through (limits unchecked) or refuse them (503).
    on_redis_down: Literal["fail_open", "fail_closed"] = "fail_open"
    # Output a request without max_tokens reserves against a budget, for models whose maximum is not
    # configured (`pricing.<provider/model>.max_output_tokens`); the real cost is settled afterwards.
    max_output_tokens: int = Field(4096, ge=1)


class AccountingConfig(_Strict):
    flush_interval_s: float = Field(1.0, gt=0)  # Redis writes are batched this often
    max_buffered_records: int = Field(100_000, ge=1)  # kept in memory while Redis is down


class LoggingConfig(_Strict):
    """Access log, log level and optional OpenTelemetry traces (see README "Observability")."""

    access_log: bool = True  # one JSON line per request on stdout (logger `switchboard.access`)
    include_content: bool = False  # add the request's messages/input to the access log line
    # Level of the router's own logger (`switchboard`); unset = as configured (`serve`: WARNING and up).
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    otlp_endpoint: str | None = None  # e.g. http://127.0.0.1:4318/v1/traces; needs the `otel` extra

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v or None  # "" (an unset ${VAR}) = no tracing


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, AliasConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    redis: RedisConfig | None = None
    cache: CacheConfig | None = None  # absent = no response cache
    auth: AuthConfig | None = None  # absent = open (no client keys)
    accounting: AccountingConfig = AccountingConfig()
    pricing: dict[str, PriceConfig] = Field(default_factory=dict)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)  # id -> agent (config/agents.py)
    agent_settings: AgentSettingsConfig = AgentSettingsConfig()
    responses: ResponsesConfig = ResponsesConfig()
    mcp: McpConfig = McpConfig()  # MCP servers for agents, the /mcp face (config/mcp.py)
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _mcp_servers_named(self) -> Config:
        for agent_id, agent in self.agents.items():
            for tool in agent.tools:
                if isinstance(tool, str) and tool.startswith(MCP_PREFIX) \
                        and tool[len(MCP_PREFIX):] not in self.mcp.servers:
                    raise ValueError(f"agents.{agent_id}.tools: '{tool}' names no server of mcp.servers")
        return self
