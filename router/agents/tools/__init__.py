"""Server-side tools of an agent: built-ins by name, HTTP tools from config, MCP servers' tools.

`ToolBox` owns what the tools share (the HTTP client sessions, the MCP server connections; started
and closed with the app) and builds an agent's tool set (`name -> Tool`) from its `tools` list, and
the gateway's whole catalog for `/mcp`; both without the tools a virtual key may not use. The SSRF
guard (`guard.py`) is shared by `http_fetch`, by HTTP tools that follow redirects and by MCP
servers a request names.
"""

from __future__ import annotations

from ...auth import VirtualKey
from ...config.agents import MCP_PREFIX, AgentConfig, AgentHttpToolConfig, AgentSettingsConfig
from ...config.mcp import McpConfig
from .base import Tool, ToolError, ToolOutcome, execute, parse_arguments, schema_problem
from .builtin import calculate, calculator, current_time
from .guard import AddressGuard, FetchRefused, GuardedResolver, Resolve
from .http_fetch import HttpFetcher
from .http_tool import HttpTools
from .mcp import McpServers

__all__ = [
    "AddressGuard", "FetchRefused", "GuardedResolver", "HttpFetcher", "HttpTools", "Resolve", "Tool", "ToolBox",
    "ToolError", "ToolOutcome", "calculate", "execute", "parse_arguments", "schema_problem", "usable",
]


class ToolBox:
    def __init__(self, settings: AgentSettingsConfig, mcp: McpConfig | None = None,
                 agents: dict[str, AgentConfig] | None = None, resolve: Resolve | None = None) -> None:
        self.fetcher = HttpFetcher(settings.http_fetch, resolve)
        # redirect hops of HTTP tools off their configured origin: any host, the addresses http_fetch may reach
        self.http = HttpTools(AddressGuard(["*"], settings.http_fetch.allow_private), resolve)
        self.mcp = McpServers(mcp.servers if mcp is not None else {})
        self._builtin: dict[str, Tool] = {"calculator": calculator(), "current_time": current_time(),
                                          "http_fetch": self.fetcher.tool()}
        # Every HTTP tool an agent of the config declares (the first of a name wins), for the catalog.
        self._http_tools: dict[str, Tool] = {}
        for agent in (agents or {}).values():
            for spec in agent.tools:
                if isinstance(spec, AgentHttpToolConfig) and spec.name not in self._http_tools:
                    self._http_tools[spec.name] = self.http.tool(spec)

    def tools(self, specs: tuple[str | AgentHttpToolConfig, ...], key: VirtualKey | None = None) -> dict[str, Tool]:
        """An agent's tools (an MCP server's as it lists them now), less those the key may not use."""
        out: dict[str, Tool] = {}
        for spec in specs:
            if isinstance(spec, str) and spec.startswith(MCP_PREFIX):
                out.update(self.mcp.tools(spec[len(MCP_PREFIX):]))
                continue
            tool = self._builtin[spec] if isinstance(spec, str) else self.http.tool(spec)
            out[tool.name] = tool
        return usable(out, key)

    def catalog(self, key: VirtualKey | None = None) -> dict[str, Tool]:
        """What `/mcp` offers: the built-ins, every configured HTTP tool and every MCP server's tools."""
        out = {**self._builtin, **self._http_tools}
        for name in self.mcp.servers:
            for tool_name, tool in self.mcp.tools(name).items():
                out.setdefault(tool_name, tool)
        return usable(out, key)

    async def start(self) -> None:
        await self.mcp.start()

    async def close(self) -> None:
        await self.mcp.close()
        await self.fetcher.close()
        await self.http.close()


def usable(tools: dict[str, Tool], key: VirtualKey | None) -> dict[str, Tool]:
    """The tools the key may see and call."""
    if key is None or key.tools is None:
        return tools
    return {name: tool for name, tool in tools.items() if key.allows_tool(name)}
