"""Tools from MCP servers, through the official `mcp` SDK (the `mcp` extra).

One `McpServer` per server. A task of its own owns the SDK client, because the SDK's task groups
must be entered and left by the same task: it connects, lists the tools (every page), keeps the
list fresh when the server says it changed (handshake-era servers send a notification on the
session; 2026-07-28 servers answer a `subscriptions/listen` stream), and reconnects with backoff
when the connection is lost. Tool calls come from any task and share the one session.

A call never raises past the agent loop: an `isError` result, a timeout, a server that is down or
dies mid-call all become a `ToolError` the model reads. A call made while the server is down asks
for a reconnect at once and waits for it (at most `connect_timeout_s`), so a restarted server is
used again on the next call, not after the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ...config.mcp import McpServerConfig
from ...errors import where
from ...globs import matcher
from .base import Tool, ToolError

log = logging.getLogger("switchboard")

MISSING_SDK = "the MCP client needs the `mcp` extra: pip install 'switchboard[mcp]'"
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_-]")
_BACKOFF_S = (0.5, 30.0)
_MAX_PAGES = 100
# JSON-RPC errors about the call itself (the session is fine); any other failure may mean it is gone.
# Not -32600 (invalid request): the SDK reports HTTP 404 as that, the server no longer knowing the
# session (it restarted), and only a new session cures it.
_CALL_ERRORS = frozenset({-32601, -32602, -32603})
_SESSION_GONE = -32600


def exposed_name(server: str, tool: str) -> str:
    """`<server>-<tool>` as a function name every vendor accepts (letters, digits, `_`, `-`; 64 at most)."""
    return _NOT_A_NAME.sub("_", f"{server}-{tool}")[:64]


def result_text(result: dict[str, Any]) -> str:
    """The text of an MCP `CallToolResult`'s content blocks, other blocks named by their kind."""
    parts = []
    for block in result.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            parts.append(block.get("text") or "")
        elif kind == "resource":
            resource = block.get("resource") or {}
            parts.append(resource.get("text") or f"[resource {resource.get('uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.get('uri', '')}]")
        else:
            parts.append(f"[{kind} content, {block.get('mimeType', 'unknown type')}]")
    return "\n".join(parts)


def agent_output(result: dict[str, Any]) -> Any:
    """What the model reads of a result: its structured content when there is one, else its text."""
    if result.get("isError"):
        raise ToolError(result_text(result) or "the MCP tool reported an error")
    structured = result.get("structuredContent")
    return structured if structured is not None else result_text(result)


@dataclass(slots=True)
class McpServer:
    name: str
    config: McpServerConfig
    http_client: Callable[[dict[str, str]], Any] | None = None  # an httpx2.AsyncClient factory (guarded)
    state: str = "starting"  # starting | up | down | closed
    error: str | None = None
    listed: dict[str, Tool] = field(default_factory=dict)  # exposed name -> tool, rebuilt when the list changes
    _client: Any = None
    _task: asyncio.Task | None = None
    _settled: asyncio.Condition = field(default_factory=asyncio.Condition)  # a connect attempt ended
    _failures: int = 0  # connect attempts that failed
    _attempted: asyncio.Event = field(default_factory=asyncio.Event)  # the first connect attempt ended
    _lost: asyncio.Event = field(default_factory=asyncio.Event)
    _stale: asyncio.Event = field(default_factory=asyncio.Event)
    _wanted: asyncio.Event = field(default_factory=asyncio.Event)  # a caller wants a reconnect now

    # -- life -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the owner task and wait until its first attempt is over (at most connect_timeout_s)."""
        if self._task is None:
            self._task = asyncio.create_task(self._own(), name=f"mcp:{self.name}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.connect_timeout_s):
                await self._attempted.wait()

    async def close(self) -> None:
        self.state = "closed"
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "tools": len(self.listed)}
        if self.error:
            out["error"] = self.error
        return out

    # -- tools ----------------------------------------------------------------------------------
    def tools(self) -> dict[str, Tool]:
        """The server's tools as the agent loop and /mcp use them (empty while it was never reached)."""
        return self.listed

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The server's `CallToolResult` (JSON form); ToolError when the server cannot answer.

        A session the server no longer knows (it restarted) is renewed and the call sent once more: the
        server refused it before running anything, so the retry cannot run a tool twice."""
        from mcp.shared.exceptions import MCPError

        for attempt in (1, 2):
            client = await self._connected()
            try:
                result = await client.call_tool(tool, arguments)
                break
            except MCPError as exc:
                if exc.code in _CALL_ERRORS:
                    raise ToolError(f"MCP server '{self.name}': {exc}") from None
                self._lose(exc)
                if exc.code != _SESSION_GONE or attempt == 2:
                    raise ToolError(f"MCP server '{self.name}': {exc}") from None
            except (asyncio.CancelledError, TimeoutError):
                raise
            except Exception as exc:  # the transport failed: the session is gone
                self._lose(exc)
                raise ToolError(f"MCP server '{self.name}' failed during the call: {_describe(exc)}") from None
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def _connected(self) -> Any:
        if self.state == "closed":
            raise ToolError(f"MCP server '{self.name}' is closed")
        if not self._usable():
            # Wait for the reconnect asked for (or the attempt under way) to end, not for a later one:
            # when it fails the server is still down, and the backoff's next attempts are not the call's.
            failures = self._failures
            self._wanted.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.connect_timeout_s), self._settled:
                    await self._settled.wait_for(lambda: self._usable() or self._failures > failures)
        client = self._client if self._usable() else None
        if client is None:
            raise ToolError(f"MCP server '{self.name}' is unavailable: {self.error or 'not connected'}")
        return client

    def _usable(self) -> bool:
        return self._client is not None and not self._lost.is_set()

    def _lose(self, exc: BaseException) -> None:
        if not self._lost.is_set():
            self.error = _describe(exc)
            if self.state == "up":
                self.state = "down"
            log.warning("MCP server %s: connection lost: %s", self.name, self.error)
            self._lost.set()

    # -- the owner task -------------------------------------------------------------------------
    async def _own(self) -> None:
        delay = _BACKOFF_S[0]
        while True:
            self._wanted.clear()
            self._lost.clear()
            connected = False
            try:
                async with self._open() as client:
                    await self._refresh(client)
                    self._client, self.state, self.error = client, "up", None
                    connected = True
                    self._attempted.set()
                    await self._settle()
                    delay = _BACKOFF_S[0]
                    await self._serve(client)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if self.state != "closed":
                    self.error = _describe(exc)
                    log.warning("MCP server %s is unavailable: %s", self.name, self.error)
            finally:
                self._client = None
            if self.state == "closed":
                return
            self.state = "down"
            self._attempted.set()
            if not connected:  # a session that was up and is lost is not a failed attempt: reconnect first
                self._failures += 1
                await self._settle()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wanted.wait()
            delay = min(delay * 2, _BACKOFF_S[1])

    async def _settle(self) -> None:
        """Wake the calls waiting for a connect attempt to end (up, or failed)."""
        async with self._settled:
            self._settled.notify_all()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        try:
            from mcp import Client, StdioServerParameters
            from mcp.client.stdio import get_default_environment
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client
        except ImportError:
            raise RuntimeError(MISSING_SDK) from None
        config = self.config
        options = {"message_handler": self._on_message, "read_timeout_seconds": None, "cache": None}
        async with contextlib.AsyncExitStack() as stack:
            if config.url is not None:
                make = self.http_client or (lambda headers: create_mcp_http_client(headers=headers))
                http = await stack.enter_async_context(make(dict(config.headers)))
                target: Any = streamable_http_client(config.url, http_client=http)
            else:
                assert config.command is not None
                target = StdioServerParameters(command=config.command, args=list(config.args),
                                               env={**get_default_environment(), **config.env}, cwd=config.cwd)
            async with asyncio.timeout(config.connect_timeout_s):
                client = await stack.enter_async_context(Client(target, **options))
            yield client

    async def _serve(self, client: Any) -> None:
        """Until the connection is lost: re-list the tools whenever the server says they changed."""
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        listener = (asyncio.create_task(self._listen(client)) if client.protocol_version in MODERN_PROTOCOL_VERSIONS
                    else None)
        try:
            while True:
                lost, stale = asyncio.ensure_future(self._lost.wait()), asyncio.ensure_future(self._stale.wait())
                try:
                    await asyncio.wait({lost, stale}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    lost.cancel()
                    stale.cancel()
                if self._lost.is_set():
                    return
                self._stale.clear()
                try:
                    await self._refresh(client)
                except Exception as exc:
                    self._lose(exc)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(BaseException):
                    await listener

    async def _listen(self, client: Any) -> None:
        """2026-07-28 servers: list changes arrive on a `subscriptions/listen` stream; its end is a lost connection."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    self._stale.set()
            self._lose(ConnectionError("the server closed the subscription stream"))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._lose(exc)

    async def _on_message(self, message: Any) -> None:
        """Handshake-era servers: `notifications/tools/list_changed` on the session."""
        import mcp_types

        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._stale.set()
        elif isinstance(message, Exception):
            self._lose(message)

    async def _refresh(self, client: Any) -> None:
        allowed, blocked = matcher(self.config.allowed_tools), matcher(self.config.blocked_tools)
        timeout = self.config.timeout_s
        listed: dict[str, Tool] = {}
        cursor = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            for tool in page.tools:
                if (allowed is not None and not allowed(tool.name)) or (blocked is not None and blocked(tool.name)):
                    continue
                exposed = exposed_name(self.name, tool.name)
                if exposed in listed:
                    log.warning("MCP server %s: tool %r is listed twice (as %s); the first is kept", self.name,
                                tool.name, exposed)
                    continue
                listed[exposed] = Tool(exposed, tool.description or "", dict(tool.input_schema or {}),
                                       _Runner(self, tool.name), timeout_s=timeout, validate=False,
                                       relay=_Relay(self, tool.name))
            cursor = page.next_cursor
            if not cursor:
                break
        self.listed = listed


@dataclass(frozen=True, slots=True)
class _Runner:
    """`Tool.run` of an MCP tool: what the model reads."""

    server: McpServer
    tool: str

    async def __call__(self, arguments: dict[str, Any]) -> Any:
        return agent_output(await self.server.call(self.tool, arguments))


@dataclass(frozen=True, slots=True)
class _Relay:
    """`Tool.relay` of an MCP tool: the server's whole result, for /mcp to pass on unchanged."""

    server: McpServer
    tool: str

    async def __call__(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self.server.call(self.tool, arguments)


def _describe(exc: BaseException) -> str:
    """A short reason for a failure; exception groups (anyio) are unwrapped to their first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return where(exc) if not str(exc) else f"{type(exc).__name__}: {str(exc)[:300]}"


class McpServers:
    """Every configured server of this process, started with the app and closed with it."""

    def __init__(self, configs: dict[str, McpServerConfig]) -> None:
        self.servers = {name: McpServer(name, config) for name, config in configs.items()}

    async def start(self) -> None:
        await asyncio.gather(*(server.start() for server in self.servers.values()))

    async def close(self) -> None:
        await asyncio.gather(*(server.close() for server in self.servers.values()))

    def tools(self, name: str) -> dict[str, Tool]:
        server = self.servers.get(name)
        return server.tools() if server is not None else {}

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: server.status() for name, server in self.servers.items()}

    def readiness(self) -> tuple[dict[str, dict[str, Any]], bool]:
        """(each server's state, whether all are up) for /readyz."""
        status = self.status()
        return status, all(s["state"] == "up" for s in status.values())
