"""The `mcp:` config section: MCP servers whose tools agents use, and the `/mcp` server face.

```yaml
mcp:
  servers:                    # name -> server; an agent names one in its tools as "mcp:<name>"
    docs:                     # Streamable HTTP; header values may use ${VAR}
      url: "https://docs.example.com/mcp"
      headers: {authorization: "Bearer ${DOCS_TOKEN}"}
      allowed_tools: ["search*"]   # globs over the server's own tool names; absent = all
      blocked_tools: ["delete_*"]  # applied after allowed_tools
    files:                    # stdio: the command is started once and kept running
      command: "uvx"
      args: ["mcp-server-filesystem", "/srv/shared"]
      env: {LOG_LEVEL: "warning"}
  serve: true                 # POST /mcp: the gateway's tools for MCP clients (Claude Code, Cursor)
  request_servers:            # MCP servers an inline agent of a request may name (SSRF-guarded)
    allowed_hosts: []         # "mcp.example.com", "*.example.com"; empty = requests may name none
    allow_private: []         # CIDRs exempt from the private-address block
```

A server's tools reach the model (and `/mcp`) as `<server>-<tool>`, so two servers may offer a tool
of the same name; a virtual key's `tools` globs match those names.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .agents import Cidrs

SERVER_NAME = r"^[A-Za-z0-9_]{1,32}$"  # no '-': it separates the server from the tool in a tool's name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpServerConfig(_Strict):
    """One MCP server: `url` (Streamable HTTP) or `command` (stdio), never both."""

    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)  # added to a minimal environment (PATH, HOME, …)
    cwd: str | None = None
    allowed_tools: list[str] | None = None
    blocked_tools: list[str] = Field(default_factory=list)
    connect_timeout_s: float = Field(10.0, gt=0, le=300)  # connecting and listing the tools
    timeout_s: float | None = Field(None, gt=0, le=3600)  # per tool call; absent: agent_settings.tool_timeout_s

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of 'url' (Streamable HTTP) or 'command' (stdio)")
        if self.command is not None and self.headers:
            raise ValueError("'headers' are for 'url' servers; a stdio server takes 'env'")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("'args', 'env' and 'cwd' are for 'command' servers")
        return self


class RequestServersConfig(_Strict):
    """MCP servers named by a request (an inline agent's `mcp_servers`): allow-listed hosts, public addresses."""

    allowed_hosts: list[str] = Field(default_factory=list)
    allow_private: Cidrs = Field(default_factory=list)
    max_servers: int = Field(4, ge=1, le=32)  # per request


class McpConfig(_Strict):
    servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    serve: bool = True
    request_servers: RequestServersConfig = RequestServersConfig()

    @field_validator("servers", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        for name in v if isinstance(v, dict) else ():
            if not re.match(SERVER_NAME, name):
                raise ValueError(f"server name '{name}' must be 1-32 letters, digits or '_'")
        return v
