"""Which agent a request runs: agents from config, an inline `agent` of a request, the default `main`.

`main` always exists: configured under `agents.main`, or else an assistant with no tools on
`agent_settings.default_model` (or, when that is unset, the first alias in `models:`, else the
first model a provider declares). An inline agent (`agent: {...}` on the UI face) accepts the
Odeus field names and their CRUD aliases (`instruction`, `creativity`, flat capability booleans);
its tools come from `capabilities` (`webSearch` -> `http_fetch`, `dataAnalyst` -> `calculator`)
and an optional `tools` list of built-in names. HTTP tools and MCP servers from config are never
given to inline agents; `mcp_servers` may name MCP servers by URL when the router allows it
(`mcp.request_servers`, behind the SSRF guard: tools/mcp_request.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..config.agents import BUILTIN_TOOLS, AgentConfig, AgentHttpToolConfig
from ..config.mcp import McpServerConfig
from ..errors import ApiError
from .output import OutputSpec
from .tools.mcp_request import parse_servers

DEFAULT_AGENT = "main"
DEFAULT_MAX_STEPS = 8
MAX_STEPS = 20
_CAPABILITY_TOOLS = {"webSearch": "http_fetch", "dataAnalyst": "calculator"}


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    model: str | None
    name: str = ""
    instructions: str = ""
    tools: tuple[str | AgentHttpToolConfig, ...] = ()
    max_steps: int = DEFAULT_MAX_STEPS
    history: str = "client"
    temperature: float | None = None
    output: OutputSpec | None = None
    description: str = ""
    inline: bool = False
    capabilities: dict[str, bool] = field(default_factory=dict)
    mcp_servers: tuple[tuple[str, McpServerConfig], ...] = ()  # an inline agent's servers, from its request

    @property
    def label(self) -> str:
        """What `authorize` checks and `model_requested` reports: `agent:<id>`."""
        return f"agent:{self.id}"


def _from_config(agent_id: str, spec: AgentConfig, default_model: str | None) -> Agent:
    output = None
    if spec.output is not None:
        output = OutputSpec.parse(spec.output.model_dump(by_alias=True, exclude_none=True),
                                  f"agents.{agent_id}.output")
    return Agent(id=agent_id, model=spec.model or default_model, name=spec.name or agent_id,
                 instructions=spec.instructions, tools=tuple(spec.tools), max_steps=spec.max_steps,
                 history=spec.history, temperature=spec.temperature, output=output, description=spec.description)


def _default_model(config: Config) -> str | None:
    settings = config.agent_settings
    if settings.default_model:
        return settings.default_model
    main = config.agents.get(DEFAULT_AGENT)
    if main is not None and main.model:
        return main.model
    if config.models:
        return next(iter(config.models))
    for name, provider in config.providers.items():
        if provider.models:
            return f"{name}/{provider.models[0]}"
    return None


class Registry:
    def __init__(self, config: Config) -> None:
        self.default_model = _default_model(config)
        self.allow_inline = config.agent_settings.allow_inline_agents
        self.request_servers = config.mcp.request_servers
        self.agents: dict[str, Agent] = {
            agent_id: _from_config(agent_id, spec, self.default_model) for agent_id, spec in config.agents.items()}
        self.agents.setdefault(DEFAULT_AGENT, Agent(id=DEFAULT_AGENT, model=self.default_model, name=DEFAULT_AGENT,
                                                    instructions="You are a helpful assistant."))

    def get(self, agent_id: str, param: str = "model") -> Agent:
        """The agent, or 404 `agent_not_found` naming the request member it came from."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, f"agent '{agent_id}' does not exist", param=param, code="agent_not_found")
        return agent

    def inline(self, spec: Any, param: str = "agent") -> Agent:
        """A temporary agent from a request's `agent` object (400 naming the bad member)."""
        if not self.allow_inline:
            raise ApiError(400, "inline agents are disabled on this router (agent_settings.allow_inline_agents)",
                           param=param, code="inline_agents_disabled")
        if not isinstance(spec, dict):
            raise ApiError(400, f"'{param}' must be an object", param=param, code="invalid_type")

        def text(key: str, limit: int) -> str | None:
            value = spec.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise ApiError(400, f"'{param}.{key}' must be a string of at most {limit} characters",
                               param=f"{param}.{key}", code="invalid_value")
            return value

        def number(key: str) -> float | None:
            value = spec.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not 0 <= value <= 1):
                raise ApiError(400, f"'{param}.{key}' must be a number between 0 and 1", param=f"{param}.{key}",
                               code="invalid_value")
            return None if value is None else float(value)

        name, description, model = text("name", 64), text("description", 256), text("model", 256)
        instructions = text("instructions", 16384)
        alias = text("instruction", 16384)
        temperature, creativity = number("temperature"), number("creativity")
        flat = {}
        for cap in _CAPABILITY_TOOLS:
            value = spec.get(cap)
            if value is not None and not isinstance(value, bool):
                raise ApiError(400, f"'{param}.{cap}' must be a boolean", param=f"{param}.{cap}",
                               code="invalid_type")
            if value is not None:
                flat[cap] = value
        capabilities = spec.get("capabilities")
        if capabilities is not None and not (isinstance(capabilities, dict)
                                             and all(isinstance(v, bool) for v in capabilities.values())):
            raise ApiError(400, f"'{param}.capabilities' must be an object of booleans",
                           param=f"{param}.capabilities", code="invalid_value")
        capabilities = {**flat, **(capabilities or {})}
        tools = [tool for cap, tool in _CAPABILITY_TOOLS.items() if capabilities.get(cap)]
        extra = spec.get("tools")
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(t, str) and t in BUILTIN_TOOLS for t in extra):
                raise ApiError(400, f"'{param}.tools' must be an array of built-in tool names "
                                    f"({', '.join(BUILTIN_TOOLS)})", param=f"{param}.tools", code="invalid_value")
            tools += [t for t in extra if t not in tools]
        mcp_servers = parse_servers(spec.get("mcp_servers"), self.request_servers, f"{param}.mcp_servers")
        instructions = instructions if instructions is not None else alias
        temperature = temperature if temperature is not None else creativity
        return Agent(id="inline", model=model or self.default_model, name=name or "inline",
                     instructions=instructions or "", tools=tuple(tools), temperature=temperature,
                     description=description or "", inline=True, capabilities=dict(capabilities),
                     mcp_servers=mcp_servers)


def clamp_steps(agent: Agent, requested: Any, param: str) -> int:
    """The run's step limit: the agent's `max_steps`, lowered (never raised) by the request (1..20)."""
    if requested is None:
        return agent.max_steps
    if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= MAX_STEPS:
        raise ApiError(400, f"'{param}' must be an integer between 1 and {MAX_STEPS}", param=param,
                       code="invalid_value")
    return min(agent.max_steps, requested) if not agent.inline else requested
