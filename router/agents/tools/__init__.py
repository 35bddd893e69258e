"""Server-side tools of an agent: built-ins by name and HTTP tools from config.

`ToolBox` owns the client sessions the tools share (closed with the app) and builds an agent's
tool set (`name -> Tool`) from its `tools` list. The SSRF guard (`guard.py`) is shared by
`http_fetch` and by HTTP tools that follow redirects.
"""

from __future__ import annotations

from ...config.agents import AgentHttpToolConfig, AgentSettingsConfig
from .base import Tool, ToolError, ToolOutcome, execute, parse_arguments, schema_problem
from .builtin import calculate, calculator, current_time
from .guard import AddressGuard, FetchRefused, GuardedResolver, Resolve
from .http_fetch import HttpFetcher
from .http_tool import HttpTools

__all__ = [
    "AddressGuard", "FetchRefused", "GuardedResolver", "HttpFetcher", "HttpTools", "Resolve", "Tool", "ToolBox",
    "ToolError", "ToolOutcome", "calculate", "execute", "parse_arguments", "schema_problem",
]


class ToolBox:
    def __init__(self, settings: AgentSettingsConfig, resolve: Resolve | None = None) -> None:
        self.fetcher = HttpFetcher(settings.http_fetch, resolve)
        # redirect hops of HTTP tools off their configured origin: any host, the addresses http_fetch may reach
        self.http = HttpTools(AddressGuard(["*"], settings.http_fetch.allow_private), resolve)
        self._builtin: dict[str, Tool] = {"calculator": calculator(), "current_time": current_time(),
                                          "http_fetch": self.fetcher.tool()}

    def tools(self, specs: tuple[str | AgentHttpToolConfig, ...]) -> dict[str, Tool]:
        out: dict[str, Tool] = {}
        for spec in specs:
            tool = self._builtin[spec] if isinstance(spec, str) else self.http.tool(spec)
            out[tool.name] = tool
        return out

    async def close(self) -> None:
        await self.fetcher.close()
        await self.http.close()
