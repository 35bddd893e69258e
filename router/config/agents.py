"""The `agents:` and `agent_settings:` config sections (validated at start-up, like the rest).

```yaml
agents:                       # id -> agent; a default `main` exists even when absent
  main:
    model: fast               # alias, provider/model or bare name; absent: agent_settings.default_model
    instructions: "You are …"
    tools: [calculator, current_time, http_fetch, "mcp:docs",   # mcp:<server>: that server's tools
            {name: lookup_order, description: "…", url: "http://orders.internal/lookup", method: POST,
             headers: {authorization: "Bearer ${ORDERS_TOKEN}"},
             parameters: {type: object, properties: {id: {type: string}}, required: [id]},
             follow_redirects: false, max_redirects: 3}]   # redirects: off unless switched on
    max_steps: 8              # 1..20; a request may lower it
    history: client           # client | session | last_message
agent_settings:
  endpoints: {openai: true, ui: true}
  rate_limits: {per_ip: 60/hour, per_key: null}
  http_fetch: {allowed_hosts: ["*.wikipedia.org"]}
```
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

BUILTIN_TOOLS = ("calculator", "current_time", "http_fetch")
MCP_PREFIX = "mcp:"  # `mcp:<server>` in an agent's tools: every tool of that server (`mcp.servers`)
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
AGENT_ID = r"^[A-Za-z0-9_.-]{1,64}$"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _cidrs(v: list[str]) -> list[str]:
    for cidr in v:
        ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad one
    return v


Cidrs = Annotated[list[str], AfterValidator(_cidrs)]  # networks, e.g. "10.0.0.0/8"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AgentHttpToolConfig(_Strict):
    """A tool served by an HTTP endpoint: called with the (validated) arguments as a JSON body
    (as the query string for GET). Header values may use `${VAR}` (expanded when the config loads)."""

    name: str = Field(pattern=TOOL_NAME)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(10.0, gt=0, le=300)
    # Off: a 3xx is a tool error naming the target. On: followed by hand, each hop off the configured
    # origin passes the http_fetch address guard and is sent without `headers`.
    follow_redirects: bool = False
    max_redirects: int = Field(3, ge=1, le=10)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class AgentOutputConfig(_Strict):
    """Structured output: `object` (optionally with a JSON Schema), `array` of `schema` items, or `enum`."""

    type: Literal["object", "array", "enum"]
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    enum: list[str] | None = None

    @model_validator(mode="after")
    def _enum(self) -> AgentOutputConfig:
        if self.type == "enum" and not self.enum:
            raise ValueError("type enum needs a non-empty 'enum' list")
        return self


class AgentConfig(_Strict):
    model: str | None = None  # absent: agent_settings.default_model
    name: str | None = Field(None, max_length=64)
    description: str = Field("", max_length=256)
    instructions: str = ""
    tools: list[str | AgentHttpToolConfig] = Field(default_factory=list)
    max_steps: int = Field(8, ge=1, le=20)
    history: Literal["client", "session", "last_message"] = "client"
    temperature: float | None = Field(None, ge=0, le=2)
    output: AgentOutputConfig | None = None

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list) -> list:
        names: set[str] = set()
        for tool in v:
            name = tool if isinstance(tool, str) else tool.name
            if isinstance(tool, str) and tool not in BUILTIN_TOOLS and not tool.startswith(MCP_PREFIX):
                raise ValueError(f"unknown built-in tool '{tool}' (known: {', '.join(BUILTIN_TOOLS)}; "
                                 f"an MCP server's tools: '{MCP_PREFIX}<server>')")
            if name in names:
                raise ValueError(f"tool '{name}' is listed twice")
            names.add(name)
        return v


class AgentEndpointsConfig(_Strict):
    openai: bool = True  # `model: "agent:<id>"` / `x-agent-id` on POST /v1/chat/completions
    ui: bool = True  # POST /agent/v1/chat/completions (Vercel AI SDK UI messages)


def parse_rate(value: str) -> tuple[int, int]:
    """`"60/hour"` -> (60, 3600)."""
    m = _RATE.match(value)
    if m is None or int(m.group(1)) < 1:
        raise ValueError("must look like 60/hour (N/second|minute|hour|day, N >= 1)")
    return int(m.group(1)), _PERIODS[m.group(2)]


class AgentRateLimitsConfig(_Strict):
    """Requests to the agent endpoints, per client IP and per virtual key (null: no limit)."""

    per_ip: str | None = "60/hour"
    per_key: str | None = None
    trust_forwarded_for: bool = False  # client IP from the first X-Forwarded-For entry (behind a proxy)

    @field_validator("per_ip", "per_key")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is not None:
            parse_rate(v)
        return v


class AgentSessionsConfig(_Strict):
    backend: Literal["memory", "redis"] | None = None  # default: redis when `redis:` is configured
    ttl_s: float = Field(86400.0, gt=0)
    max_messages: int = Field(200, ge=2)  # history kept per session (oldest dropped first)
    max_runs: int = Field(20, ge=1)  # step traces kept per session
    max_sessions: int = Field(10_000, ge=1)  # memory backend (least recently used dropped)


class HttpFetchConfig(_Strict):
    """The `http_fetch` built-in: GET only, allow-listed hosts, public addresses only by default."""

    allowed_hosts: list[str] = Field(default_factory=list)  # "example.com", "*.example.com", "*" (any)
    allow_private: Cidrs = Field(default_factory=list)  # CIDRs exempt from the private-address block
    max_bytes: int = Field(200_000, ge=1024)
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_redirects: int = Field(3, ge=0, le=10)


class AgentSettingsConfig(_Strict):
    default_model: str | None = None  # the model of `main` and of inline agents without one
    endpoints: AgentEndpointsConfig = AgentEndpointsConfig()
    rate_limits: AgentRateLimitsConfig = AgentRateLimitsConfig()
    sessions: AgentSessionsConfig = AgentSessionsConfig()
    http_fetch: HttpFetchConfig = HttpFetchConfig()
    non_stream_timeout_s: float = Field(100.0, gt=0)  # a longer non-stream run is a 504 (use stream: true)
    tool_timeout_s: float = Field(30.0, gt=0)  # per tool call
    max_tool_result_bytes: int = Field(32_000, ge=256)  # what the model sees of one tool result
    max_identical_calls: int = Field(2, ge=1)  # loop guard: the same tool + arguments at most this often
    allow_inline_agents: bool = True  # `agent: {...}` in a /agent/v1 request
    cache_steps: bool = True  # agent steps use the response cache (when `cache:` is configured)
    ui_finish_reason: bool = True  # `finish.finishReason` in UI streams (ai >= 5.0.92)
    heartbeat_s: float = Field(15.0, gt=0)  # `: ping` comment lines while a stream is quiet
